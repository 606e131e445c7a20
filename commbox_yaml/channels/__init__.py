"""Channels: the presets and Content shorthands of each kind of message.

Adding a channel is one module here, one entry in CHANNELS, and one schema file.
"""

from __future__ import annotations

from commbox_yaml.channels import chat, email, sms, whatsapp
from commbox_yaml.channels.base import Channel, ContentParts

CHANNELS: dict[str, Channel] = {
    channel.name: channel
    for channel in (email.CHANNEL, sms.CHANNEL, whatsapp.CHANNEL, chat.CHANNEL)
}

__all__ = ["CHANNELS", "Channel", "ContentParts"]
