"""A message as its recipient reads it (`render --text`), not as the API receives it."""

from __future__ import annotations

from commbox_yaml.channels import whatsapp_v2
from commbox_yaml.channels.email import recipient_text
from commbox_yaml.compile import Request
from commbox_yaml.report.describe import sms_of
from commbox_yaml.segments import segments_text


def recipient_view(request: Request) -> list[str]:
    """Header lines, a blank line, then the text: what the recipient sees."""
    data = request.data
    if request.v2:  # a WhatsApp template through the v2 endpoint: the template is the text
        rows = whatsapp_v2.shown_rows(data)
        objects = data.get("object_data") or {}
        body = str(objects.get("Message", "")).splitlines() if objects else []
        return [f"{label}: {text}" for label, text in rows] + ["", *(body or [""])]
    content = data.get("Content") if isinstance(data.get("Content"), dict) else {}
    assert isinstance(content, dict)
    head: list[tuple[str, str]] = []
    if "subject" in content:
        head.append(("Subject", str(content["subject"])))
    recipients = content.get("to") or [data.get("UserStreamProviderId", "")]
    head.append(("To", ", ".join(recipient_text(r) for r in recipients)))
    for label in ("cc", "bcc"):
        if content.get(label):
            head.append((label.capitalize(), ", ".join(recipient_text(r) for r in content[label])))
    names = [f.name for f in request.files]
    names += [str(a.get("name")) for a in content.get("attachments", []) if isinstance(a, dict)]
    if names:
        head.append(("Attachments", ", ".join(names)))
    if "whatsapp_hsm_name" in content:
        head.append(("Template", str(content["whatsapp_hsm_name"])))
        head.append(("Language", str(content.get("whatsapp_language_code", "(not set)"))))
        params = content.get("whatsapp_localizable_params") or []
        listed = ", ".join(f"{{{{{i}}}}} = {p}" for i, p in enumerate(params, 1))
        head.append(("Parameters", listed or "(none)"))
    size = sms_of(request)
    if size is not None:
        head.append(("Segments", segments_text(size)))
    # The text's own lines are lines here (it is read as the recipient reads it); each one is
    # still printed as one line, never starting a CI workflow command (Console.out).
    body = str(data.get("Message", "")).splitlines() or [""]
    return [f"{label}: {text}" for label, text in head] + ["", *body]
