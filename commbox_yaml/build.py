"""The whole offline pipeline: files -> definitions -> rendered messages -> requests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import overload

from commbox_yaml.channels import whatsapp_v2
from commbox_yaml.compile import Compiler, Request
from commbox_yaml.conversation import Conversations, is_reply, reply_problems
from commbox_yaml.definitions import load_definitions
from commbox_yaml.enums import ENUM_FIELDS, normalize_enum
from commbox_yaml.errors import Problem, UserError
from commbox_yaml.hints import did_you_mean
from commbox_yaml.origins import origin_finder
from commbox_yaml.project import Project
from commbox_yaml.redact import Redactor
from commbox_yaml.render import RenderedMessage, Renderer
from commbox_yaml.store import BuiltMessages, duplicate_key_problems
from commbox_yaml.usage import used_names
from commbox_yaml.validate import schema_problems
from commbox_yaml.variables import Variables, unused_warnings

_ADDRESS = re.compile(r"^([a-z0-9][a-z0-9_-]*)(?:\[([^\[\]\n]+)\])?$")


@dataclass(frozen=True)
class Build:
    """Everything a project gives: requests to consider, messages skipped, and problems."""

    project: Project
    variables: Variables
    messages: BuiltMessages = field(default_factory=BuiltMessages)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def requests(self) -> Requests:
        return Requests(self.messages)

    @property
    def skipped(self) -> list[RenderedMessage]:
        return self.messages.skipped()

    @property
    def message_count(self) -> int:
        return len(self.messages)


class Requests(Sequence[Request]):
    """The requests of a build, in build order (read back from disk for a large fan-out)."""

    def __init__(self, store: BuiltMessages) -> None:
        self._store = store

    def __len__(self) -> int:
        return self._store.request_count

    def __iter__(self) -> Iterator[Request]:
        return self._store.requests()

    @overload
    def __getitem__(self, index: int) -> Request: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Request]: ...
    def __getitem__(self, index: int | slice) -> Request | Sequence[Request]:
        if isinstance(index, slice):
            return [self._store.request(n) for n in range(len(self))[index]]
        return self._store.request(range(len(self))[index])


def parse_address(address: str) -> tuple[str, str | None]:
    found = _ADDRESS.match(address)
    if not found:
        raise UserError(f"{address!r} is not a message address; write NAME or NAME[KEY]")
    return found.group(1), found.group(2)


def build(project: Project, variables: Variables, targets: Sequence[str] = ()) -> Build:
    loaded = load_definitions(project)
    wanted = [parse_address(t) for t in targets]
    renderer = Renderer(project, variables)
    secrets = variables.redactor()
    compiler = Compiler(project, secrets)
    result = Build(project, variables, BuiltMessages(secrets), loaded.files, list(loaded.problems))
    matched: set[str] = set()
    warned: set[str] = set()
    now = time.time()
    addresses = {d.name for d in loaded.definitions}  # for "did you mean" on a target
    # Replies are made once every message is known: a parent may come after its reply.
    replies = Conversations() if any("reply_to" in d.data for d in loaded.definitions) else None
    for definition in loaded.definitions:
        chosen = not wanted or any(name == definition.name for name, _ in wanted)
        if not chosen and replies is None:
            continue
        rendering: list[Problem] = []
        later: list[Problem] = []  # of single messages: after the definition's own, as always
        for message in renderer.render(definition, rendering, result.messages.expect):
            if targets:
                addresses.add(message.address)
                if not (chosen and _targeted(message, wanted)):
                    if replies is not None:  # not sent, but a targeted reply's parent may be it
                        made = partial(_compiled, message, variables, compiler)
                        replies.note_other(message, made)
                    continue
            secret = _secret_in_key(message, secrets, project)
            if secret is not None:
                later.append(secret)
                if replies is not None:
                    replies.note_broken(message)
                continue
            if targets:
                matched.add(definition.name if message.item_key is None else message.address)
                matched.add(definition.name)
            if message.skipped:
                result.messages.add(message)
                if replies is not None:
                    replies.note_skipped(message)
                continue
            if replies is not None and is_reply(message):
                problems = reply_problems(message) or _schema_checked(message, variables)
                later.extend(problems)
                if problems:
                    replies.note_broken(message)
                else:
                    replies.defer(message)
                continue
            request, problems = _checked(message, variables, compiler)
            later.extend(problems)
            for warning in whatsapp_v2.warnings(definition, message.values, now):
                if warning not in warned:  # once per definition, not once per item
                    warned.add(warning)
                    result.warnings.append(warning)
            if request is not None:
                result.messages.add(request)
                if replies is not None:
                    replies.note(request)
            elif replies is not None:
                replies.note_broken(message)
        if chosen:
            result.problems.extend(rendering)
            result.problems.extend(later)
    if replies is not None:
        result.problems.extend(replies.link(compiler, result.messages))
    result.problems.extend(duplicate_key_problems(result.messages))
    if variables.given:  # only then is it worth parsing the templates for their names
        used = used_names(renderer.env, loaded.definitions)
        result.warnings.extend(unused_warnings(variables, used))
    if not result.problems:
        _check_targets(targets, matched, addresses)
    result.problems.sort(key=Problem.sort_key)
    return result


def _checked(
    message: RenderedMessage, variables: Variables, compiler: Compiler
) -> tuple[Request | None, list[Problem]]:
    """A rendered message checked against its channel's schema, then made into its request."""
    schema = _schema_checked(message, variables)
    if schema:
        return None, schema
    return compiler.compile(message)


def _compiled(message: RenderedMessage, variables: Variables, compiler: Compiler) -> Request | None:
    return _checked(message, variables, compiler)[0]


def _schema_checked(message: RenderedMessage, variables: Variables) -> list[Problem]:
    """A rendered message checked against its channel's schema."""
    definition = message.definition
    for values in (message.values, message.sent or {}):
        for name in ENUM_FIELDS:
            if name in values:
                values[name] = normalize_enum(name, values[name])
    # The values sent are checked; an error about one a secret made quotes the shown.
    return schema_problems(
        message.values if message.sent is None else message.sent,
        definition.channel,
        definition.positions,
        message.item_key,
        origin_finder(definition, variables),
        None if message.sent is None else message.values,
    )


def _check_targets(targets: Sequence[str], matched: set[str], addresses: set[str]) -> None:
    for target in targets:
        if target not in matched:
            raise UserError(
                f"no message matches the address {target!r}"
                f"{did_you_mean(target, addresses)}; 'commbox-yaml plan' lists every address"
            )


def _secret_in_key(message: RenderedMessage, secrets: Redactor, project: Project) -> Problem | None:
    """Keys and streams are written to the ledger and plan files and shown in every plan: a
    sensitive value in one cannot be redacted there, so it is refused."""
    definition = message.definition
    item_key = None if message.item_key is None else secrets.text(message.item_key)
    why = "is stored in the ledger and in plan files, where it cannot be redacted"
    if secrets.found(definition.name):  # the address, name[key], is stored with each send
        return Problem(
            definition.where("name"),
            f"the name contains a sensitive value; a message's name {why}. Rename the message",
            "name",
            item_key,
        )
    if message.item_key is not None and secrets.found(message.item_key):
        where = "key" if "key" in definition.data else "for_each"
        return Problem(
            definition.where(where),
            f"the for_each key contains a sensitive value; a key {why}. Name each item by "
            "something that is not secret, e.g. key: '{{ item.id }}'",
            where,
            item_key,
        )
    if secrets.found(message.key):
        return Problem(
            definition.where("id") if "id" in definition.data else definition.location,
            f"the ledger key contains a sensitive value; a key {why}. Write an 'id' without "
            "sensitive variables (e.g. a version or a date)",
            "id",
            item_key,
        )
    stream = message.values.get("stream")
    if stream is not None and (
        secrets.found(str(stream)) or secrets.found(project.streams.get(str(stream), ""))
    ):
        return Problem(
            definition.where("stream"),
            f"the stream contains a sensitive value; the stream {why}. Use a stream alias or "
            "id that is not secret",
            "stream",
            item_key,
        )
    return None


def _targeted(message: RenderedMessage, wanted: list[tuple[str, str | None]]) -> bool:
    name = message.definition.name
    return any(n == name and (k is None or k == message.item_key) for n, k in wanted)
