"""The plan as a static site: an index of every message and a page for each, as its recipient
will see it (SPEC section 10). Nothing is loaded from the network: CSS and the few lines of
script are inline, and an email's own HTML is shown only inside a sandboxed `srcdoc` iframe
whose Content-Security-Policy blocks remote images and styles (unless `allow_remote`).

The site's pages are Jinja templates with autoescape on: a message's text is always data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from commbox_yaml.channels import whatsapp_v2
from commbox_yaml.channels.email import recipient_text
from commbox_yaml.keys import key_matcher
from commbox_yaml.plan import Action, Against, Plan, PlannedMessage
from commbox_yaml.preview.changes import changes, status
from commbox_yaml.preview.pages import PageFolder
from commbox_yaml.redact import Redactor
from commbox_yaml.resources import templates
from commbox_yaml.segments import segments_text, sms_size

_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:{remote}; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
_EMAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'{remote}; img-src data:{remote}"
_REMOTE = re.compile(
    r"""(?:src|href|background)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)
_HTML = re.compile(r"<\s*(?:html|body|p|div|table|br|a|img|h[1-6]|span|ul|ol|li)\b", re.I)
# Placeholders for what the policy blocks: a broken image keeps its box and its alt text.
_EMAIL_STYLE = "<style>img{outline:1px dashed #8c959f;min-width:24px;min-height:16px}</style>"


@dataclass(frozen=True)
class SiteOptions:
    project: str  # how to name the project in the pages
    allow_remote: bool = False
    live: bool = False  # served by --serve: the pages poll for a new version
    version: int = 1  # which build of the served site this is


def write_site(
    plan: Plan,
    out: Path,
    options: SiteOptions,
    redactor: Redactor,
    wanted: Iterable[str] | None = None,
) -> int:
    """Write index.html and messages/*.html under `out` (replacing what a previous run wrote);
    the number of message pages. `wanted`: only messages whose address one of these globs
    matches."""
    env = _environment()
    remote = " http: https:" if options.allow_remote else ""
    common = {
        "csp": _PAGE_CSP.format(remote=remote),
        "project": options.project,
        "live": options.live,
        "version": options.version,
        "against": plan.against.ref if plan.against else None,
    }
    message_page = message_renderer(env, {**common, "root": "../"})
    rows = []
    with PageFolder(out / "messages") as pages:
        for message in _selected(plan, wanted):
            view = _message_view(message, plan.against, redactor, options)
            name = _page_name(message.address)
            pages.write(name, message_page(view))
            rows.append(_row(view, f"messages/{name}"))
    index = env.get_template("index.html.j2").render(
        common,
        root="",
        rows=rows,
        summary=_summary(plan),
        actions=sorted({r["action"] for r in rows}),
        channels=sorted({r["channel"] for r in rows}),
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    return len(rows)


_TITLE, _BODY = "\x00title\x00", "\x00body\x00"
_SHELL = (
    '{% extends "base.html.j2" %}'
    f"{{% block title %}}{_TITLE}{{% endblock %}}{{% block body %}}{_BODY}{{% endblock %}}"
)


def message_renderer(env: jinja2.Environment, common: dict[str, Any]) -> Callable[[Any], str]:
    """message.html.j2 for one message `m`, as Jinja renders it whole, but with the page
    around it (the same for every message of a site: the styles, the header, the script)
    rendered once: of 10,000 pages, only their own blocks are rendered each time (Jinja's
    `Template.blocks`). tests/test_preview.py compares it with a whole render."""
    shell = env.from_string(_SHELL).render(common)
    before, rest = shell.split(_TITLE)
    middle, after = rest.split(_BODY)
    page = env.get_template("message.html.j2")
    title, body = page.blocks["title"], page.blocks["body"]
    # What new_context(vars) puts under each page's context, merged once: given whole
    # (`shared`), it is not copied again for each page.
    parent = {**page.globals, **common}

    def render(view: Any) -> str:
        context = page.new_context({**parent, "m": view}, shared=True)
        return before + "".join(title(context)) + middle + "".join(body(context)) + after

    return render


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """`m.address` on a dict as Jinja looks it up (an attribute first, then the key), without
    the AttributeError every lookup of a key raises first: a page makes about 30 of them."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        # A plain dict has no attributes but its class's: any other name is a key or nothing.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def _environment() -> jinja2.Environment:
    folder = templates() / "preview"

    def load(name: str) -> str:
        return (folder / name).read_text("utf-8")

    return _Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _selected(plan: Plan, wanted: Iterable[str] | None) -> Iterator[PlannedMessage]:
    patterns = [key_matcher(w) for w in wanted or ()]
    for message in plan.messages:
        if message.request is None:
            continue  # skipped by `when`: nothing would be seen
        if patterns and not any(matches(message.address) for matches in patterns):
            continue
        yield message


def _page_name(address: str) -> str:
    """A file name for an address: readable, and never two addresses on one file."""
    readable = re.sub(r"[^a-z0-9_-]+", "-", address.lower()).strip("-")[:60]
    return f"{readable}-{hashlib.sha256(address.encode()).hexdigest()[:8]}.html"


def _summary(plan: Plan) -> str:
    counts = plan.summary()
    return ", ".join(f"{n} {action}" for action, n in counts.items() if n)


def _row(view: dict[str, Any], href: str) -> dict[str, Any]:
    return {k: view[k] for k in ("address", "channel", "action", "symbol", "key")} | {
        "href": href,
        "recipients": view["recipients"],
        "against": view["against_status"] or "",
    }


def _message_view(
    message: PlannedMessage, against: Against | None, redactor: Redactor, options: SiteOptions
) -> dict[str, Any]:
    request = message.request
    assert request is not None
    data = _redacted(request.data, redactor)
    content = data.get("Content") if isinstance(data.get("Content"), dict) else {}
    assert isinstance(content, dict)
    text = str(data.get("Message", ""))
    view: dict[str, Any] = {
        "address": message.address,
        "key": message.key,
        "channel": request.channel,
        "stream": request.stream,
        "action": message.action.value,
        "symbol": message.action.symbol.strip() or "·",
        "note": _note(message),
        "text": text,
        "head": _head(request, data, content, redactor),
        "recipients": _recipients(data, content),
        "header": None,
        "html": False,
        "srcdoc": "",
        "blocked": 0,
        "changes": [],
        "against_status": None,
        "buttons": [],
        "schedule": "",
    }
    if request.v2:  # a WhatsApp template through the v2 endpoint
        view.update(whatsapp_v2.preview(data))
    if request.channel == "email" and _HTML.search(text):
        remote = " http: https:" if options.allow_remote else ""
        view["html"] = True
        view["blocked"] = 0 if options.allow_remote else len(_REMOTE.findall(text))
        csp = _EMAIL_CSP.format(remote=remote)
        view["srcdoc"] = (
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">{_EMAIL_STYLE}{text}'
        )
    if against is not None:
        view["against_status"] = status(message, against)
        view["changes"] = [
            {"path": c.path, "pieces": [redactor.data(p.__dict__) for p in c.pieces()]}
            for c in changes(message, against)
        ]
    return view


_JSON = json.JSONEncoder(ensure_ascii=False)  # as may_occur reads it


def _redacted(data: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """`data` with every secret redacted. Most requests hold none: one search of their JSON
    spares copying them (the view only reads what it is given)."""
    if redactor.empty or not redactor.may_occur(_JSON.encode(data)):
        return data
    redacted: dict[str, Any] = redactor.data(data)
    return redacted


def _note(message: PlannedMessage) -> str:
    notes = {
        Action.CHANGED: "held: already sent with other content",
        Action.UNKNOWN: "held: the last try's outcome is unknown",
        Action.WAIT: "held: a reply waiting for its parent to be sent",
        Action.UNCHANGED: "already sent with this content",
    }
    return notes.get(message.action, "")


def _recipients(data: dict[str, Any], content: dict[str, Any]) -> str:
    listed = content.get("to") or [data.get("UserStreamProviderId", "")]
    return ", ".join(recipient_text(r) for r in listed)


def _head(
    request: Any, data: dict[str, Any], content: dict[str, Any], redactor: Redactor
) -> list[tuple[str, str]]:
    """What the recipient sees around the text, per channel."""
    rows: list[tuple[str, str]] = []
    if request.v2:
        return whatsapp_v2.shown_rows(data)
    if request.parent_key is not None:  # a reply: its conversation has subject and recipients
        rows.append(("In reply to", f"{request.parent_address} (in its conversation)"))
        rows.append(("To", _recipients(data, content)))
        rows.append(("Agent (UserIdentity)", str(data.get("UserIdentity", ""))))
    elif request.channel == "email":
        rows.append(("Subject", str(content.get("subject", ""))))
        rows.append(("From (stream)", str(request.stream)))
        for label in ("to", "cc", "bcc"):
            if content.get(label):
                rows.append(
                    (label.capitalize(), ", ".join(recipient_text(r) for r in content[label]))
                )
        files = [f"{redactor.text(f.name)} ({f.size:,} bytes)" for f in request.files]
        files += [
            f"{a.get('name') or a.get('path')} (link)"
            for a in content.get("attachments", [])
            if isinstance(a, dict)
        ]
        if files:
            rows.append(("Attachments", ", ".join(files)))
    else:
        rows.append(("To", _recipients(data, content)))
    size = sms_size(str(data.get("Message", ""))) if request.channel == "sms" else None
    if size is not None:
        rows.append(("Characters", f"{len(str(data.get('Message', '')))}"))
        rows.append(("Segments", segments_text(size)))
    if "whatsapp_hsm_name" in content:
        rows.append(("Template", str(content["whatsapp_hsm_name"])))
        rows.append(("Language", str(content.get("whatsapp_language_code", "(not set)"))))
        params = content.get("whatsapp_localizable_params") or []
        for number, param in enumerate(params, 1):
            rows.append((f"{{{{{number}}}}}", str(param)))
    return rows
