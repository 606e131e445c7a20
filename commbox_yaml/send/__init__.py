"""Sending planned requests: workers (`pool`), one message's policy (`policy`), the shared pace
(`pace`), and what a send came to (`outcome`)."""

from commbox_yaml.send.outcome import Outcome, SendResult
from commbox_yaml.send.pace import Pace
from commbox_yaml.send.pool import Sender

__all__ = ["Outcome", "Pace", "SendResult", "Sender"]
