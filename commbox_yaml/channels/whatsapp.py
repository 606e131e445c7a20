"""WhatsApp: an approved template (HSM) sent to phone numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commbox_yaml.channels.base import Channel, ContentParts, phones

# WhatsApp's template language codes, as Meta lists them ("Supported Languages" of the
# WhatsApp Business Platform's message templates): the long-standing list, then the regional
# variants Meta added since. The codes are case-sensitive and use '_', never '-'.
LANGUAGES: tuple[str, ...] = (
    "af", "sq", "ar", "az", "bn", "bg", "ca", "zh_CN", "zh_HK", "zh_TW", "hr", "cs", "da",
    "nl", "en", "en_GB", "en_US", "et", "fil", "fi", "fr", "ka", "de", "el", "gu", "ha", "he",
    "hi", "hu", "id", "ga", "it", "ja", "kn", "kk", "rw_RW", "ko", "ky_KG", "lo", "lv", "lt",
    "mk", "ms", "ml", "mr", "nb", "fa", "pl", "pt_BR", "pt_PT", "pa", "ro", "ru", "sr", "sk",
    "sl", "es", "es_AR", "es_ES", "es_MX", "sw", "sv", "ta", "te", "th", "tr", "uk", "ur",
    "uz", "vi", "zu",
    "ar_EG", "ar_AE", "ar_LB", "ar_MA", "ar_QA", "be_BY", "bn_IN", "prs_AF", "nl_BE", "en_AE",
    "en_AU", "en_CA", "en_GH", "en_IE", "en_IN", "en_JM", "en_MY", "en_NZ", "en_QA", "en_SG",
    "en_UG", "en_ZA", "fr_BE", "fr_CA", "fr_CH", "fr_CI", "fr_MA", "de_AT", "de_CH",
)  # fmt: skip


def content(values: Mapping[str, Any]) -> ContentParts:
    parts = ContentParts()
    phones(values, parts)
    template = values.get("template") or {}
    if "name" in template:
        parts.put("whatsapp_hsm_name", template["name"], "template.name")
    if "params" in template:
        parts.put("whatsapp_localizable_params", list(template["params"]), "template.params")
    if "language" in template:
        parts.put("whatsapp_language_code", template["language"], "template.language")
    return parts


# CommBox's StreamProviderType enum says WhatsApp is 7 (the Create Object page's example
# shows 5, which a definition gets with `stream_provider_type: 5`).
CHANNEL = Channel(
    name="whatsapp",
    presets={"type": 4, "status_id": 1, "stream_provider_type": 7, "user_stream_provider_type": 5},
    content=content,
    phone_fields=("user_stream_provider_id",),
)
