"""`reply_to`: a message sent as a child in its parent's CommBox conversation (SPEC section 11).

A child is `POST /streams/{PARENT_STREAM}/objects/{PARENT_OBJECT_ID}/child` with the body
CommBox's `Create_Child_Object` example shows. Its parent is another message of the project,
named by its address; the parent's object id comes from the ledger, or in one apply from the
parent's reply, so the path is made when the child is sent. A child's fingerprint covers its
parent's key (pointing a reply at another message is a change), never the parent's object id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commbox_yaml.channels import CHANNELS
from commbox_yaml.channels.base import wire_phone
from commbox_yaml.compile import Compiler, Request, _changed_literals, fingerprint_of
from commbox_yaml.errors import Problem
from commbox_yaml.hints import did_you_mean
from commbox_yaml.render import RenderedMessage
from commbox_yaml.streams import path_segment

if TYPE_CHECKING:
    from commbox_yaml.store import BuiltMessages

_RECIPIENTS = "the conversation has its recipients"
# Keys a child may not have, and why: the child endpoint takes none of them.
NOT_IN_A_REPLY: dict[str, str] = {
    "to": _RECIPIENTS,
    "cc": _RECIPIENTS,
    "bcc": _RECIPIENTS,
    "subject": "a reply is sent in its parent's conversation, under the parent's subject",
    "attachments": "the child endpoint takes no files",
    "template": "the child endpoint sends text, not a WhatsApp template",
    "user": "the conversation has its customer (the parent's)",
    "content": "the child endpoint takes no Content",
    "status_id": "the conversation has its status (the child endpoint takes no StatusId)",
    "stream_provider_type": "the child endpoint takes no StreamProviderType",
    "stream_provider_id": "the child endpoint takes no StreamProviderId",
    "user_identity": (
        "a reply's UserIdentity is its agent, set from manager_id; the customer is the "
        "conversation's"
    ),
    "sub_stream_id": "the conversation has its subchannel (the child endpoint takes none)",
    "send_to_client": "the child endpoint takes no sendToClient",
    "create_child_object": "a reply is already a child; remove create_child_object",
    "api": "a reply is sent through the child endpoint, not a WhatsApp API version",
    "schedule": "the child endpoint cannot schedule a send",
}
# The child body in the key order of CommBox's example.
CHILD_ORDER = (
    "IsManager",
    "UserIdentity",
    "Type",
    "UserStreamProviderId",
    "UserStreamProviderType",
    "Message",
)


@dataclass(frozen=True)
class Parent:
    """What a reply takes from its parent's request."""

    address: str
    key: str
    channel: str
    stream: str
    customer: Any  # UserStreamProviderId as shown
    customer_sent: Any  # ... and as sent (a sensitive value's real one)
    customer_type: Any  # UserStreamProviderType
    written_stream: Any  # the parent's `stream:` as written (an alias, or a raw id)
    # False for a v2 WhatsApp template sent without object_data: CommBox keeps no object
    opens_conversation: bool = True

    @classmethod
    def of(cls, request: Request) -> Parent:
        data, sent = request.data, request.sent_data
        opens = True
        if request.v2:  # the Create Object fields are its object_data, the customer its `to`
            opens = "object_data" in data
            to = data["template_data"]["to"], sent["template_data"]["to"]
            data, sent = data.get("object_data") or {}, sent.get("object_data") or {}
            data = {"UserStreamProviderId": to[0], **data}
            sent = {"UserStreamProviderId": to[1], **sent}
        return cls(
            request.address,
            request.key,
            request.channel,
            request.stream,
            data.get("UserStreamProviderId"),
            sent.get("UserStreamProviderId"),
            data.get("UserStreamProviderType"),
            request.message.values.get("stream"),
            opens,
        )


def is_reply(message: RenderedMessage) -> bool:
    return "reply_to" in message.values


def reply_problems(message: RenderedMessage) -> list[Problem]:
    """What a reply may not have, or lacks, each at its own line; before the schema's check."""
    definition, values = message.definition, message.values
    problems = []
    for key, why in NOT_IN_A_REPLY.items():
        if key in values:
            problems.append(
                Problem(
                    definition.where_key(key),
                    f"not allowed in a reply (reply_to): {why}; remove it",
                    key,
                    message.item_key,
                )
            )
    if "manager_id" not in values:
        problems.append(
            Problem(
                definition.where("reply_to"),
                "a reply needs 'manager_id': the agent it is sent on behalf of (CommBox's "
                "UserIdentity with IsManager: true); add manager_id: <the agent's user id>",
                "reply_to",
                message.item_key,
            )
        )
    return problems


class Conversations:
    """The messages of one build, by address, and the replies waiting for their parents."""

    def __init__(self) -> None:
        self.parents: dict[str, Parent] = {}
        self.skipped: set[str] = set()
        self.replies: list[RenderedMessage] = []
        self.others: dict[str, str] = {}  # replies not made here (--target, errors): parents
        self.keys: dict[str, str] = {}  # ledger key -> address, where they differ
        self.broken: set[str] = set()  # messages with errors of their own

    def note(self, request: Request) -> None:
        self.parents[request.address] = Parent.of(request)
        if request.key != request.address:
            self.keys[request.key] = request.address

    def note_broken(self, message: RenderedMessage) -> None:
        """A message with errors of its own: a reply to it says nothing more."""
        self.broken.add(message.address)
        if is_reply(message):
            self.others[message.address] = str(message.values["reply_to"])

    def note_skipped(self, message: RenderedMessage) -> None:
        self.skipped.add(message.address)

    def defer(self, message: RenderedMessage) -> None:
        self.replies.append(message)

    def note_other(self, message: RenderedMessage, compiled: Callable[[], Request | None]) -> None:
        """A message left out by --target: not sent, but it may be a targeted reply's parent."""
        if message.skipped:
            self.note_skipped(message)
        elif is_reply(message):
            self.others[message.address] = str(message.values["reply_to"])
        else:
            request = compiled()
            if request is not None:
                self.note(request)

    def link(self, compiler: Compiler, store: BuiltMessages) -> list[Problem]:
        """Each reply made into its request (added to `store`), or why it cannot be. The
        parents' keys are read from the ledger with the store's own (`store.watch`)."""
        problems: list[Problem] = []
        replying = {**self.others, **{m.address: str(m.values["reply_to"]) for m in self.replies}}
        known = set(self.parents) | self.skipped | set(replying) | self.broken
        for message in self.replies:
            found = self._parent(message, replying, known)
            if isinstance(found, Problem):
                problems.append(found)
            if not isinstance(found, Parent):  # a parent with errors: they are said already
                continue
            request, made = compile_reply(compiler, message, found)
            problems.extend(made)
            if request is not None:
                # Shown as the parent's stream where a reply names none (plans, previews).
                message.values.setdefault("stream", found.written_stream)
                store.add(request)
                store.watch(found.key)
        return problems

    def _parent(
        self, message: RenderedMessage, replying: dict[str, str], known: set[str]
    ) -> Parent | Problem | None:
        definition = message.definition
        wanted = str(message.values["reply_to"])

        def problem(text: str) -> Problem:
            return Problem(definition.where("reply_to"), text, "reply_to", message.item_key)

        if wanted == message.address:
            return problem(f"'{wanted}' is this message itself: a message cannot reply to itself")
        parent = self.parents.get(wanted)
        if parent is not None:
            if parent.channel != definition.channel:
                return problem(
                    f"'{wanted}' is {_a(parent.channel)} message; {_a(definition.channel)} "
                    "message cannot reply in its conversation (a reply has its parent's channel)"
                )
            if not parent.opens_conversation:
                return problem(
                    f"'{wanted}' is a WhatsApp v2 template without Create Object fields: it "
                    "opens no CommBox conversation to reply in; give it a 'message' (sent as "
                    "object_data, which opens one)"
                )
            return parent
        if wanted in replying:
            chain = [message.address, wanted]
            while chain[-1] in replying and chain[-1] != message.address:
                step = replying[chain[-1]]
                if step in chain[1:]:
                    break
                chain.append(step)
            if chain[-1] == message.address:
                return problem(f"reply_to makes a cycle: {' -> '.join(chain)}")
            return problem(
                f"'{wanted}' is itself a reply (to '{replying[wanted]}'); reply to the "
                "conversation's first message instead (replies to one message go in plan order)"
            )
        by_key = self.keys.get(wanted)
        if by_key is not None:
            return problem(
                f"'{wanted}' is the ledger key of '{by_key}'; reply_to takes a message's "
                f"address: reply_to: '{by_key}'"
            )
        items = sorted(a for a in known if a.startswith(wanted + "["))
        if items:
            return problem(
                f"'{wanted}' has a for_each: name one of its messages, e.g. '{items[0]}' "
                f'(reply_to: "{wanted}[{{{{ item }}}}]" for an item of the same key)'
            )
        if wanted in self.broken:
            return None
        if wanted in self.skipped:
            return problem(
                f"'{wanted}' is skipped ('when' is false): a reply needs its parent in the plan"
            )
        return problem(
            f"no message has the address '{wanted}'{did_you_mean(wanted, known)}; reply_to "
            "names a message of the project: NAME, or NAME[KEY] for a for_each item"
        )


def _a(channel: str) -> str:
    return f"an {channel}" if channel[:1] in "aeiou" else f"a {channel}"


def compile_reply(
    compiler: Compiler, message: RenderedMessage, parent: Parent
) -> tuple[Request | None, list[Problem]]:
    """A reply's child request; with the data to send beside it when a secret was rendered."""
    request, problems = _compile(compiler, message, message.values, parent, parent.customer)
    if request is None or message.sent is None:
        return request, problems
    sent, sent_problems = _compile(compiler, message, message.sent, parent, parent.customer_sent)
    if sent is None:
        return None, sent_problems
    return dataclasses.replace(request, sent=sent.data), []


def _compile(
    compiler: Compiler,
    message: RenderedMessage,
    values: dict[str, Any],
    parent: Parent,
    customer: Any,
) -> tuple[Request | None, list[Problem]]:
    definition = message.definition
    problems: list[Problem] = []

    def problem(path: tuple[str | int, ...], text: str, key: bool = False) -> None:
        loc = definition.where_key(*path) if key else definition.where(*path)
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        problems.append(Problem(loc, text, dotted.replace(".[", "["), message.item_key))

    stream = parent.stream
    if "stream" in values:
        own = compiler._stream(
            values["stream"], definition.positions.texts.get(("stream",)), problem
        )
        if own != stream and not problems:
            problem(
                ("stream",),
                f"a reply is sent in its parent's stream ({parent.address} is in "
                f"{_stream_name(compiler, stream)}); remove 'stream' or make it the same",
            )
    data = child_data(values, definition.channel, customer, parent.customer_type, problem)
    for path, text in _changed_literals(definition.positions.texts, definition.data):
        problem(path, text)
    if problems:
        return None, problems
    fingerprint, hashes = fingerprint_of(stream, data, [], compiler.secrets, parent.key)
    return (
        Request(message, stream, data, (), fingerprint, hashes, None, parent.key, parent.address),
        [],
    )


def _stream_name(compiler: Compiler, stream: str) -> str:
    aliases = [name for name, value in compiler.project.streams.items() if value == stream]
    return f"'{aliases[0]}'" if aliases else stream


def child_data(
    values: dict[str, Any],
    channel_name: str,
    customer: Any,
    customer_type: Any,
    problem: Callable[..., None],
) -> dict[str, Any]:
    """The child's data object in CommBox's order, then `raw:` keys (a clash is a problem)."""
    channel = CHANNELS[channel_name]
    own = values.get("user_stream_provider_id")
    if own is not None and "user_stream_provider_id" in channel.phone_fields:
        own = wire_phone(own)
    data: dict[str, Any] = {
        "IsManager": True,
        "UserIdentity": values.get("manager_id"),
        "Type": values.get("type", channel.presets.get("type")),
        "UserStreamProviderId": own if own is not None else customer,
        "UserStreamProviderType": values.get(
            "user_stream_provider_type",
            customer_type
            if customer_type is not None
            else channel.presets.get("user_stream_provider_type"),
        ),
        "Message": values.get("message"),
    }
    names = {k.lower() for k in data}
    for key, value in (values.get("raw") or {}).items():
        if str(key).lower() in names:
            problem(
                ("raw", key),
                f"data key '{key}' is already set for a reply; use the definition's own key",
                key=True,
            )
        data[key] = value
    return data


def placeholder(request: Request) -> str:
    """The parent's object id in a path shown before the parent is sent."""
    return f"{{OBJECT_ID of {request.parent_key}}}"


def child_path(request: Request, object_id: Any) -> str:
    """`/streams/{S}/objects/{OBJECT_ID}/child`, the object id percent-encoded once."""
    return f"/streams/{path_segment(request.stream)}/objects/{path_segment(str(object_id))}/child"


def replies_of(requests: Iterator[Request]) -> dict[str, list[Request]]:
    """Replies by their parent's key, in the order given."""
    found: dict[str, list[Request]] = {}
    for request in requests:
        if request.parent_key is not None:
            found.setdefault(request.parent_key, []).append(request)
    return found
