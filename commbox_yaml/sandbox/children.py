"""The sandbox's Create Child Object: `POST /streams/{STREAM_ID}/objects/{OBJECT_ID}/child`.

As CommBox documents it (`Create_Child_Object`), no stricter: a message in an object's
conversation, on behalf of the customer (`Type`, `UserStreamProviderId`,
`UserStreamProviderType`, `Message`) or of an agent (also `IsManager: true` and the agent's
`UserIdentity`). It answers as Create Object does: 200 with `data.id` (the child's id), 400 for
a body CommBox would refuse, 401, and 404 for an object the stream does not have. Children are
kept under their object, and `Get_Object` with `includeChilds=true` shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commbox_yaml.sandbox.shapes import dotnet_time, made_up_number

CHILD_PATH = re.compile(r"/streams/([^/]+)/objects/([^/]+)/child")


@dataclass(frozen=True)
class StoredChild:
    """A message added to an object's conversation."""

    child_id: int
    object_id: int
    data: dict[str, Any]
    created: datetime


def check_child(data: dict[str, Any] | None) -> list[str]:
    """What CommBox would refuse in a child's data object (the documented required fields)."""
    if data is None:
        return []
    problems = []
    for name in ("Type", "UserStreamProviderType"):
        if name not in data:
            problems.append(f"{name} is required")
        elif not _is_int(data[name]):
            problems.append(f"{name} must be an integer")
    customer = data.get("UserStreamProviderId")
    if customer is None or customer == "":
        problems.append("UserStreamProviderId is required (the customer's email or phone)")
    elif not isinstance(customer, (str, int)) or isinstance(customer, bool):
        problems.append("UserStreamProviderId must be a string")
    message = data.get("Message")
    if message is None or message == "":
        problems.append("Message is required")
    elif not isinstance(message, str):
        problems.append("Message must be a string")
    manager = data.get("IsManager", False)
    if not isinstance(manager, bool):
        problems.append("IsManager must be true or false")
    elif manager and not _is_int(data.get("UserIdentity")):
        problems.append("UserIdentity (the agent's user id) is required with IsManager: true")
    return problems


def child_item(child: StoredChild) -> dict[str, Any]:
    """One child as `Get_Object` lists it under `user.childs` (includeChilds=true)."""
    data = child.data
    customer = "" if data.get("UserStreamProviderId") is None else str(data["UserStreamProviderId"])
    manager = data.get("IsManager") is True
    agent = data.get("UserIdentity") if manager and _is_int(data.get("UserIdentity")) else 0
    kind = data.get("UserStreamProviderType")
    return {
        "id": child.child_id,
        "object_id": child.object_id,
        "content": "{}",
        "message": str(data.get("Message", "")),
        "createdTime": dotnet_time(child.created),
        "streamProviderType": kind if _is_int(kind) else 0,
        "user": {
            "id": agent or made_up_number("user", customer),
            "managerId": agent,
            "isManager": manager,
            "identity": {
                "id": made_up_number("identity", customer),
                "streamProviderId": customer,
                "streamProviderType": kind if _is_int(kind) else 0,
                "firstName": None,
                "lastName": None,
                "thumbnailUrl": None,
            },
        },
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
