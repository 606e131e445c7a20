"""init's placeholder stream ids look like CommBox's: numbers, not 32 hexadecimal characters
(the shape of a StreamProviderId)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from commbox_yaml.cli import main


def test_init_writes_numeric_stream_ids_that_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main(["init", str(tmp_path)]) == 0
    text = (tmp_path / "commbox.yaml").read_text(encoding="utf-8")
    streams = yaml.safe_load(text)["streams"]
    assert streams == {"email": 10001, "sms": 10002, "whatsapp": 10003, "chat": 10004}
    assert not re.search(r"\b[0-9a-f]{32}\b", text)
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    paths = {m["channel"]: m["request"]["path"] for m in plan["messages"]}
    assert paths == {
        "email": "/streams/10001/objects",
        "sms": "/streams/10002/objects",
        "whatsapp": "/streams/10003/objects",
        "chat": "/streams/10004/objects",
    }
