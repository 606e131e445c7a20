"""How many segments an SMS text takes: SMS is billed per segment.

GSM-7 (3GPP TS 23.038) holds 160 septets in one message, or 153 per segment once the text needs
several (each segment carries a 7-septet concatenation header); a character of the extension
table (`^{}\\[~]|€` and form feed) takes two septets, an escape and the character. Any other
character makes the whole text UCS-2: 70 UTF-16 code units in one message, or 67 per segment
(so an emoji, a surrogate pair, counts two). Phones never split an escape pair or a surrogate
pair across segments, so a segment may end one unit short; the count here does the same.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The GSM 03.38 default alphabet (without the escape character, which no text contains).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs an escape septet plus its own.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# (units in a single message, units per segment of a longer one)
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class SmsSize:
    """An SMS text's encoding and the segments it is billed as."""

    encoding: str
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)

    def describe(self) -> dict[str, str | int]:
        return {"encoding": self.encoding, "segments": self.segments}


def encoding_of(text: str) -> str:
    """GSM-7 when every character is in the GSM alphabet or its extension, else UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return GSM7
    return UCS2


def _widths(text: str, encoding: str) -> list[int]:
    """What each character costs: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_size(text: str) -> SmsSize:
    """The encoding and segment count of `text` (an empty text is still one message)."""
    encoding = encoding_of(text)
    widths = _widths(text, encoding)
    units = sum(widths)
    single, per_segment = _LIMITS[encoding]
    if units <= single:
        return SmsSize(encoding, 1, units)
    segments, used = 1, 0
    for width in widths:  # a character never straddles two segments
        if used + width > per_segment:
            segments, used = segments + 1, 0
        used += width
    return SmsSize(encoding, segments, units)


_UNITS = {"GSM-7": "septets", "UCS-2": "UTF-16 units"}


def segments_text(size: SmsSize) -> str:
    """`2 (GSM-7, 161 septets)`: how every output names an SMS's size."""
    return f"{size.segments} ({size.encoding}, {size.units} {_UNITS[size.encoding]})"
