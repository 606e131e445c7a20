"""The documented reply shapes of CommBox's read endpoints, filled from a stored object.

CommBox's OpenAPI (`Commbox.json` 2.07) documents two item shapes for `Get_Stream_Objects`
(a `oneOf`): the first has `objectId`, `streamId` and the customer as `userStreamProviderId`;
the second has `id`, `streamid` and the customer only under `user.identity.streamProviderId`.
`Get_Object` has a third spelling (`streamid`, `closeTime`, a numeric `userStreamProviderType`).
`user` keys are camelCase in every reply (`uniqueId`, `phone1`), stream ids are numbers (an
encrypted id in the path stands for a number the sandbox makes up, the same one every time),
`content` is a JSON string, and a message may come back altered, as CommBox stores it (HTML).
Values the request did not give are empty strings, or null for numbers.
"""

from __future__ import annotations

import html
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StoredObject:
    """An object the sandbox created from a Create Object request (`serial`: 0, 1, 2, ...)."""

    object_id: int
    stream_id: str
    data: dict[str, Any]
    created: datetime
    serial: int = 0


@dataclass(frozen=True)
class ReadStyle:
    """Which of the documented spellings the read endpoints answer with.

    `list_shapes`: "both" (every other listed object in the second shape), "first" or
    "second". `stored_text`: "as-sent", or "html" (the message comes back as CommBox may store
    it: HTML-escaped, line breaks as `<br>`, in a `<div>`)."""

    list_shapes: str = "both"
    stored_text: str = "as-sent"

    def __post_init__(self) -> None:
        if self.list_shapes not in ("both", "first", "second"):
            raise ValueError("list_shapes must be 'both', 'first' or 'second'")
        if self.stored_text not in ("as-sent", "html"):
            raise ValueError("stored_text must be 'as-sent' or 'html'")

    def second_shape(self, stored: StoredObject) -> bool:
        if self.list_shapes == "both":
            return stored.serial % 2 == 1
        return self.list_shapes == "second"


def list_item(stored: StoredObject, style: ReadStyle) -> dict[str, Any]:
    """One object as `Get_Stream_Objects` lists it, in the shape the style picks for it."""
    if style.second_shape(stored):
        return _second_shape(_Fields(stored, style))
    return _first_shape(_Fields(stored, style))


def full_object(
    stored: StoredObject,
    style: ReadStyle,
    children: bool,
    added: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One object as `Get_Object` answers it (`children`: `includeChilds=true`, with the
    messages `added` to its conversation, newest first, above its own)."""
    f = _Fields(stored, style)
    return {
        "objectId": stored.object_id,
        "streamid": f.stream_number,
        "substreamid": f.number("SubStreamId", 0),
        "streamProviderId": f.text("StreamProviderId"),
        "streamProviderType": f.number("StreamProviderType", 0),
        "user_identity": f.identity,
        "firstName": f.user_text("FirstName"),
        "lastName": f.user_text("LastName"),
        "userStreamProviderId": f.customer,
        "userStreamProviderType": f.number("UserStreamProviderType", 0),  # a number here
        "content": f.content,
        "message": f.message,
        "createdTime": f.created,
        "updatedTime": f.created,
        "closeTime": None,
        "statusId": f.status,
        "assignedManagerId": 0,
        "type": f.number("Type", 0),
        "isManager": False,
        # Documented inside `user`: the messages, only when asked for (the last one otherwise).
        "user": {
            **f.user(text_ids=True, locale_key="locale"),
            "childs": _messages(added or [], f.children(True), children),
        },
    }


def _messages(
    added: list[dict[str, Any]], own: list[dict[str, Any]], every: bool
) -> list[dict[str, Any]]:
    """The conversation's messages, newest first: all of them, or only the last one."""
    messages = [*added, *own]
    return messages if every else messages[:1]


def _first_shape(f: _Fields) -> dict[str, Any]:
    stored = f.stored
    return {
        "objectId": stored.object_id,
        "streamId": f.stream_number,
        "substreamId": f.number("SubStreamId", 0),
        "streamProviderId": f.text("StreamProviderId"),
        "streamProviderType": f.number("StreamProviderType", 0),
        "user_identity": f.identity,
        "firstName": f.user_text("FirstName"),
        "lastName": f.user_text("LastName"),
        "userStreamProviderId": f.customer,
        "userStreamProviderType": f.text("UserStreamProviderType"),  # a string in this shape
        "content": f.content,
        "message": f.message,
        "createdTime": f.created,
        "updatedTime": f.created,
        "closedTime": None,
        "firstResponseTime": f.created,
        "lastResponseTime": f.created,
        "priorityTime": f.created,
        "statusId": f.status,
        "assignedManagerId": 0,
        "lastAssignedManagerId": f.number("ManagerId", 0),
        "type": f.number("Type", 0),
        "numTags": 0,
        "user": f.user(text_ids=False, locale_key="Locale"),
        "isManager": False,
        "childs": {  # the last message: the object's own
            "id": stored.object_id,
            "objectId": stored.object_id,
            "content": f.content,
            "message": f.message,
            "createdTime": f.created,
            "streamProviderId": f.customer,
            "streamProviderType": f.number("UserStreamProviderType", 0),
            "streamProviderEmail": f.user_text("Email"),
            "firstName": f.user_text("FirstName"),
            "lastName": f.user_text("LastName"),
        },
    }


def _second_shape(f: _Fields) -> dict[str, Any]:
    return {
        "id": f.stored.object_id,
        "streamid": f.stream_number,
        "substreamid": f.number("SubStreamId", 0),
        "type": f.number("Type", 0),
        "statusId": f.status,
        "createdTime": f.created,
        "updatedTime": f.created,
        "lastResponseTime": f.created,
        "priorityTime": f.created,
        "streamProviderId": f.text("StreamProviderId"),
        "streamProviderType": f.number("StreamProviderType", 0),
        "message": f.message,
        "content": f.content,
        "numChilds": 0,
        "numTags": 0,
        "user": {"id": f.user_id, "identity": f.identity_of_customer(thumbnail=False)},
    }


class _Fields:
    """The stored request's values, spelled and typed as the replies document them."""

    def __init__(self, stored: StoredObject, style: ReadStyle) -> None:
        self.stored = stored
        self.data = stored.data
        user = self.data.get("User")
        self.user_data: dict[str, Any] = user if isinstance(user, dict) else {}
        self.customer = self.text("UserStreamProviderId")
        self.stream_number = stream_number(stored.stream_id)
        self.user_id = made_up_number("user", self.customer or str(stored.object_id))
        identity = self.data.get("UserIdentity")
        self.identity = identity if _is_int(identity) else made_up_number("identity", self.customer)
        self.created = dotnet_time(stored.created)
        self.content = _content_text(self.data.get("Content"))
        self.message = _stored_message(self.data.get("Message"), style.stored_text)

    def text(self, name: str) -> str:
        value = self.data.get(name)
        return "" if value is None else str(value)

    def number(self, name: str, default: int) -> int:
        value = self.data.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    @property
    def status(self) -> int:
        value = self.data.get("StatusId", 1)  # a string or a number in a request
        return int(value) if str(value).isdigit() else 1

    def user_text(self, name: str) -> str:
        value = self.user_data.get(name)
        return "" if value is None else str(value)

    def user(self, *, text_ids: bool, locale_key: str) -> dict[str, Any]:
        """The `user` object: ids and phones are strings in `Get_Object`, numbers in the list."""
        pick = self.user_text if text_ids else self._user_number
        return {
            "id": self.user_id,
            "uniqueId": pick("UniqueId"),
            "phone1": pick("Phone1"),
            "phone2": pick("Phone2"),
            "email": self.user_text("Email"),
            "firstName": self.user_text("FirstName"),
            "lastName": self.user_text("LastName"),
            "gender": self.user_text("Gender"),
            "numberIdentities": 1,
            locale_key: self.user_text("Locale"),
            "birthday": self.user_text("Birthday"),
            "remarks": self.user_text("Remarks"),
            "content": "{}",
        }

    def _user_number(self, name: str) -> int | str | None:
        text = self.user_text(name)
        if not text:
            return None
        return int(text) if text.isdigit() else text  # documented as a number: when it is one

    def identity_of_customer(self, *, thumbnail: bool) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "id": self.identity,
            "streamProviderId": self.customer,
            "streamProviderType": self.number("UserStreamProviderType", 0),
        }
        if not thumbnail:
            identity["streamProviderEmail"] = self.user_text("Email")
        identity["firstName"] = self.user_text("FirstName")
        identity["lastName"] = self.user_text("LastName")
        if thumbnail:
            identity["thumbnailUrl"] = None
        return identity

    def children(self, wanted: bool) -> list[dict[str, Any]]:
        if not wanted:
            return []
        return [
            {
                "id": self.stored.object_id,
                "object_id": self.stored.object_id,
                "content": self.content,
                "message": self.message,
                "createdTime": self.created,
                "streamProviderType": self.number("UserStreamProviderType", 0),
                "user": {
                    "id": self.user_id,
                    "managerId": 0,
                    "isManager": False,
                    "identity": self.identity_of_customer(thumbnail=True),
                },
            }
        ]


def stream_number(stream_id: str) -> int:
    """The stream's number: the path's, or a made-up one for an encrypted id (the same each
    time), since replies carry the number, never the encrypted id."""
    return int(stream_id) if stream_id.isdigit() else made_up_number("stream", stream_id)


def made_up_number(kind: str, text: str) -> int:
    """A stable positive number standing for an id CommBox would have made (a user's, ...)."""
    return 1 + zlib.crc32(f"{kind}:{text}".encode()) % 99_999_999


def dotnet_time(moment: datetime) -> str:
    """UTC with seven fractional digits, as .NET writes it."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z"


def _content_text(content: Any) -> str:
    """`content` is a JSON string in every reply; one given as a JSON string comes back as is."""
    if isinstance(content, str):
        return content
    return json.dumps(content or {}, ensure_ascii=False)


def _stored_message(message: Any, stored_text: str) -> str:
    text = "" if message is None else str(message)
    if stored_text != "html":
        return text
    body = html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")
    return f'<div style="direction: ltr">{body}</div>'


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
