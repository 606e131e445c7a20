"""Test sends (`apply --test-to`): each message sent as it is, to test recipients instead.

Every recipient field of a message is replaced by the test recipient(s) before the request
is made, so the request is the real one in all but where it goes: email's `to` (cc and bcc
dropped) and `user_stream_provider_id`; SMS's and WhatsApp's `to` and
`user_stream_provider_id`; and on every channel `user.phone1` and `user.email`. A test send is
recorded under a key of its own, `test:<key>`, so a real key's state never changes and a test
key never blocks the next test send. The test recipients are never part of a key; the ledger
only holds hashes of the request, as for any send.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from commbox_yaml.build import Build
from commbox_yaml.compile import Compiler
from commbox_yaml.errors import UserError
from commbox_yaml.keys import MAX_KEY_LENGTH, TEST_PREFIX
from commbox_yaml.ledger import LedgerView
from commbox_yaml.phones import normalize_phone, phone_problem
from commbox_yaml.plan import Action, Plan, PlannedMessage
from commbox_yaml.render import RenderedMessage

# Channels whose messages go to a phone number, and to an email address.
PHONE_CHANNELS = ("sms", "whatsapp")
EMAIL_CHANNELS = ("email",)
_EMAIL = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]+")
# Wire names a `raw:` or `content:` mapping could use to name a recipient: dropped too.
_RAW_RECIPIENTS = frozenset({"userstreamproviderid", "user"})
_CONTENT_RECIPIENTS = frozenset({"to", "cc", "bcc"})


@dataclass(frozen=True)
class Recipients:
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # as digits, the way CommBox wants them

    def for_channel(self, channel: str) -> tuple[str, ...]:
        if channel in EMAIL_CHANNELS:
            return self.emails
        if channel in PHONE_CHANNELS:
            return self.phones
        return ()

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.emails, *self.phones)


def parse_recipients(values: Iterable[str]) -> Recipients:
    """Each `--test-to` value as an email address or a phone number (written any common
    way); anything else is a usage error, one line."""
    emails: list[str] = []
    phones: list[str] = []
    for value in values:
        text = value.strip()
        if "@" in text:
            if not _EMAIL.fullmatch(text):
                raise UserError(
                    f"--test-to {value!r} is not an email address: give one address such as "
                    "ops@example.com (repeat --test-to for more)"
                )
            if text.lower() not in (e.lower() for e in emails):
                emails.append(text)
            continue
        why = phone_problem(text)
        if why is not None:
            raise UserError(
                f"--test-to {value!r} is neither an email address nor a phone number ({why}): "
                "give an address such as ops@example.com or a number such as +972 54-444-4444"
            )
        digits = normalize_phone(text)
        if digits not in phones:
            phones.append(digits)
    return Recipients(tuple(emails), tuple(phones))


def key_for_test(key: str) -> str:
    """The ledger key a test send of `key` is recorded under: never a real one's."""
    candidate = TEST_PREFIX + key
    if len(candidate) <= MAX_KEY_LENGTH:
        return candidate
    return f"{TEST_PREFIX}sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def is_test_key(key: str) -> bool:
    return key.startswith(TEST_PREFIX)


def skip_reason(message: RenderedMessage, skipped: bool, recipients: Recipients) -> str | None:
    """Why this message cannot be test-sent, or None when it can."""
    channel = message.definition.channel
    if skipped:
        return "'when' is false"
    if channel == "chat":
        return "chat has no recipient to replace"
    if message.values.get("reply_to"):
        return "a reply goes to its parent's conversation"
    if not recipients.for_channel(channel):
        return f"no --test-to for {channel}"
    return None


def redirected(message: RenderedMessage, recipients: Recipients) -> RenderedMessage:
    """The message with every recipient field replaced by the test recipients, under its
    test key; the values sent (with the real sensitive ones) are redirected alike."""
    channel = message.definition.channel
    sent = None if message.sent is None else _redirect(message.sent, channel, recipients)
    return dataclasses.replace(
        message,
        key=key_for_test(message.key),
        values=_redirect(message.values, channel, recipients),
        sent=sent,
    )


def _redirect(values: dict[str, Any], channel: str, recipients: Recipients) -> dict[str, Any]:
    out = dict(values)
    for name in ("to", "cc", "bcc", "user_stream_provider_id"):
        out.pop(name, None)
    mine = recipients.for_channel(channel)
    # A single recipient written as one value stays one value.
    out["to"] = mine[0] if isinstance(values.get("to"), str) else list(mine)
    out["user_stream_provider_id"] = mine[0]
    if isinstance(values.get("user"), dict):
        user = {k: v for k, v in values["user"].items() if k not in ("phone1", "email")}
        if recipients.phones:
            user["phone1"] = recipients.phones[0]
        if recipients.emails:
            user["email"] = recipients.emails[0]
        out["user"] = user
    if isinstance(values.get("content"), dict):
        out["content"] = {
            k: v for k, v in values["content"].items() if str(k).lower() not in _CONTENT_RECIPIENTS
        }
    if isinstance(values.get("raw"), dict):
        out["raw"] = {
            k: v for k, v in values["raw"].items() if str(k).lower() not in _RAW_RECIPIENTS
        }
    return out


@dataclass(frozen=True)
class Redirect:
    """One message to test-send: its real key, and the planned send of its test key."""

    real_key: str
    channel: str
    recipients: tuple[str, ...]
    planned: PlannedMessage

    @property
    def address(self) -> str:
        return self.planned.address

    @property
    def key(self) -> str:
        return self.planned.key

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "key": self.real_key,
            "key_for_test": self.key,
            "channel": self.channel,
            "to": list(self.recipients),
        }


@dataclass(frozen=True)
class Skipped:
    address: str
    key: str
    channel: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "key": self.key, "channel": self.channel,
                "reason": self.reason}  # fmt: skip


@dataclass(frozen=True)
class RedirectPlan:
    sends: list[Redirect]
    skipped: list[Skipped]
    recipients: Recipients

    @property
    def planned(self) -> Sequence[PlannedMessage]:
        return [s.planned for s in self.sends]

    def summary(self) -> dict[str, int]:
        return {"test": len(self.sends), "skipped": len(self.skipped)}


def make_test_plan(
    result: Build, plan: Plan, tests: LedgerView, recipients: Recipients
) -> RedirectPlan:
    """Every message of `plan` (in plan order), test-sent or skipped with the reason; each
    test send is planned against its test key's state in `tests`."""
    compiler = Compiler(result.project, result.variables.redactor())
    sends: list[Redirect] = []
    skipped: list[Skipped] = []
    for real in plan.messages:
        message = real.message
        channel = message.definition.channel
        why = skip_reason(message, real.action is Action.SKIPPED, recipients)
        request = None
        if why is None:
            request, problems = compiler.compile(redirected(message, recipients))
            if request is None:
                why = problems[0].message if problems else "the request could not be made"
        if request is None:
            skipped.append(Skipped(real.address, real.key, channel, why or ""))
            continue
        state = tests.state(request.key)
        planned = PlannedMessage(request.message, request, Action.SEND, state)
        sends.append(Redirect(real.key, channel, recipients.for_channel(channel), planned))
    return RedirectPlan(sends, skipped, recipients)
