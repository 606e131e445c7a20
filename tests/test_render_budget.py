"""The template time budgets: one for each message, and one for all messages of a run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment

from commbox_yaml.cli import main
from commbox_yaml.render import budget
from tests.projects import COMMBOX_YAML, write

FOREVER = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def slow_definition(name: str, items: int, template: str) -> str:
    keys = ", ".join(f"c{n}" for n in range(items))
    return (
        f"name: {name}\nchannel: sms\nstream: sms\nuser_stream_provider_id: '972544444444'\n"
        f"for_each: [{keys}]\nmessage: '{template}'\n"
    )


def loop_lasting(seconds: float) -> str:
    """A template that runs about `seconds` on this machine, then ends (Jinja times itself)."""
    env = SandboxedEnvironment()
    probe = env.from_string(
        "{% for i in range(100) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    probe.render()
    outer = max(1, int(100 * seconds / (time.monotonic() - started)))
    inner = "{% for j in range(1000) %}{% endfor %}"
    return f"{{% for i in range({outer}) %}}{inner}{{% endfor %}}hello"


def test_each_message_and_the_whole_run_have_a_budget_and_the_error_names_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(budget, "TEMPLATE_BUDGET_S", 0.4)
    monkeypatch.setattr(budget, "RUN_BUDGET_S", 1.0)
    write(
        tmp_path,
        {
            "commbox.yaml": COMMBOX_YAML,
            "vars/common.yaml": "{}\n",
            "messages/a.yaml": slow_definition("slow", 6, FOREVER),
            "messages/b.yaml": slow_definition("later", 2, FOREVER),
        },
    )
    started = time.monotonic()
    assert main(["-C", str(tmp_path), "validate"]) == 1
    assert time.monotonic() - started < 6  # without a run budget: 8 messages x 0.4 s, and more
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    # Two messages run out of their own 0.4 s; the third runs out of the run's last 0.2 s, and
    # nothing more is rendered (no message of b.yaml).
    assert lines == [
        "error: messages/a.yaml:1:1: [c0]: rendering message 'slow' took longer than 0.4 s (the "
        "budget for one message); a template loop that runs too long? Make it smaller "
        "(and 1 more item)",
        "error: messages/a.yaml:1:1: [c2]: rendering stopped at message 'slow': the templates of "
        "this run took longer than 1 s in all (the budget for one run; each message may take "
        "0.4 s); make the slow templates faster, or plan fewer messages at a time "
        "(plan --target NAME)",
    ]
    assert "validate: 3 errors in 1 file" in err


def test_the_run_budget_counts_every_message_of_every_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three definitions of three messages, each message well within its own budget and each
    definition within the run's, together past the run's: stopped, naming the run's budget."""
    monkeypatch.setattr(budget, "TEMPLATE_BUDGET_S", 5.0)
    monkeypatch.setattr(budget, "RUN_BUDGET_S", 1.5)
    slow = loop_lasting(0.3)  # 9 x 0.3 s = 2.7 s in all; 0.9 s for each definition
    files = {f"messages/{name}.yaml": slow_definition(name, 3, slow) for name in "abc"}
    write(tmp_path, {"commbox.yaml": COMMBOX_YAML, "vars/common.yaml": "{}\n", **files})
    assert main(["-C", str(tmp_path), "plan"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    (line,) = errors
    assert "rendering stopped at message 'b'" in line or "rendering stopped at message 'c'" in line
    assert "took longer than 1.5 s in all (the budget for one run;" in line
    assert "budget for one message" not in captured.err
    assert "Plan:" not in captured.out


def test_templates_within_both_budgets_render_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(budget, "TEMPLATE_BUDGET_S", 5.0)
    monkeypatch.setattr(budget, "RUN_BUDGET_S", 20.0)
    files = {f"messages/{name}.yaml": slow_definition(name, 3, loop_lasting(0.05)) for name in "ab"}
    write(tmp_path, {"commbox.yaml": COMMBOX_YAML, "vars/common.yaml": "{}\n", **files})
    assert main(["-C", str(tmp_path), "validate"]) == 0, capsys.readouterr().err
