"""Every benchmark row against its floor, in one run; writes bench/RESULTS.md.

    .venv/bin/python bench/run.py                       # every row, 3 rounds (about 10 minutes)
    .venv/bin/python bench/run.py --row plan --rounds 1 # one row, quickly
    .venv/bin/python bench/run.py --no-write            # print, leave RESULTS.md alone

Rows (each side in a fresh process, sides alternating round by round, medians compared):

- plan: `commbox-yaml plan --json` over a 10,000-item for_each, against bench/floor_plan.py
  (the same rendering, schema checks, canonical JSON and sha256 in a bare script).
- rss: the peak RSS of that plan.
- scale: the same plan at 100,000 items: its time over the 10k time, its RSS over the 10k RSS.
- apply8 / apply32: `apply` of 1,000 messages at concurrency 8, and of 3,000 at concurrency 32,
  to the sandbox (20 ms latency): its send phase (first to last ledger event) against bare
  urllib3 threads posting prebuilt bodies to the same sandbox. A round takes a few seconds and
  one round's ratio moves by 10% with the machine's load, so these rows run three times the
  rounds (at least 9).
- pace: `apply` of 400 messages at `rate_per_s: 50`: the span of their arrival at the sandbox
  against (n - 1) / rate, and the most requests that arrived within any one second.
- preview: `preview` of the 10,000-item fan-out against `plan --json` of the same project.
- version: `commbox-yaml --version` against a process importing pyyaml, jinja2, jsonschema and
  urllib3.
- ledger: plan over 1,000 messages with a 1,000,000-event ledger, minus the same plan without
  a ledger, against `json.loads` of the ledger's lines.

Projects are built under bench/.work (ignored by git). `--profile` adds a cProfile summary of
the 10k plan to the report.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_apply  # noqa: E402
import bench_validate  # noqa: E402

WORK = HERE / ".work"
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("commbox-yaml"))
ROWS = ("plan", "scale", "apply8", "apply32", "pace", "preview", "version", "ledger")
LEDGER_EVENTS = 1_000_000


@dataclass
class Run:
    seconds: float
    rss_mb: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Row:
    measure: str
    value: str
    target: str
    passed: bool
    detail: str = ""


# Every measured process is started by this small launcher, itself started before any row
# runs. Linux keeps a process's peak RSS across fork and exec: a command started by this
# script once it has grown (an in-process sandbox, a generated ledger) would report at least
# this script's own peak as its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["out"], "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(job["argv"], stdout=sink, stderr=subprocess.PIPE, env=job["env"])
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_kb": usage.ru_maxrss,
                      "code": os.waitstatus_to_exitcode(status),
                      "err": err.decode(errors="replace")[-2000:]}), flush=True)
"""
_launcher: subprocess.Popen[str] | None = None


def _launch(argv: list[str], env: dict[str, str] | None, out: str) -> dict[str, Any]:
    global _launcher
    if _launcher is None:
        _launcher = subprocess.Popen(
            [PYTHON, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    assert _launcher.stdin is not None
    assert _launcher.stdout is not None
    job = {"argv": argv, "env": dict(os.environ) if env is None else env, "out": out}
    _launcher.stdin.write(json.dumps(job) + "\n")
    _launcher.stdin.flush()
    answer: dict[str, Any] = json.loads(_launcher.stdout.readline())
    return answer


def timed(argv: list[str], env: dict[str, str] | None = None, out: str = os.devnull) -> Run:
    """Wall time and peak RSS (from wait4, in the launcher) of one process; stdout to `out`."""
    done = _launch(argv, env, out)
    if done["code"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done['code']}):\n{done['err']}")
    return Run(done["seconds"], done["rss_kb"] / 1024)


def alternate(rounds: int, sides: dict[str, Callable[[], Run]]) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(sides[name]())
        print(f"  round {number + 1}: " + ", ".join(_show(n, runs[n][-1]) for n in sides))
    return runs


def _show(name: str, run: Run) -> str:
    return f"{name} {run.seconds:.3f} s {run.rss_mb:.0f} MB"


def median(runs: list[Run], what: str = "seconds") -> float:
    return statistics.median(getattr(r, what) if what != "send" else r.extra["send"] for r in runs)


# -- projects ---------------------------------------------------------------------------------


def fan_project(items: int) -> Path:
    root = WORK / f"fan-{items}"
    if not (root / bench_validate.MESSAGE_FILE).exists():
        bench_validate.write_project(root, items)
    return root


def ledger_project() -> Path:
    """1,000 messages and a ledger of 1,000,000 events: these keys' and many older ones'."""
    root = WORK / "ledger"
    ledger = root / ".commbox" / "ledger.jsonl"
    if ledger.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    bench_apply.write_project(root, 1000, 8)
    ledger.parent.mkdir()
    rng = random.Random(7)
    fields = {n: f"{rng.getrandbits(64):016x}" for n in ("stream", "Type", "Message", "User")}
    with ledger.open("w") as out:
        for n in range(LEDGER_EVENTS // 2):
            release = f"1.{n // 1000}.0" if n >= 1000 else "1.4.0"
            key = f"notice-{release}/c{n % 1000:05d}"
            at = f"2026-{1 + n % 12:02d}-01T10:00:{n % 60:02d}.000000Z"
            fingerprint = f"sha256:{rng.getrandbits(256):064x}"
            head = f'{{"v":1,"at":"{at}","event":'
            out.write(
                head + f'"pending","key":"{key}","fingerprint":"{fingerprint}",'
                f'"run":"r{n // 1000}","attempt":1,"address":"notice[c{n % 1000:05d}]",'
                f'"stream":"5fd0c1","fields":{json.dumps(fields, separators=(",", ":"))}}}\n'
            )
            out.write(
                head + f'"sent","key":"{key}","fingerprint":"{fingerprint}",'
                f'"run":"r{n // 1000}","object_id":{n},"status":200}}\n'
            )
    return root


# -- rows -------------------------------------------------------------------------------------


def row_plan(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    root = str(fan_project(10_000))
    runs = alternate(
        rounds,
        {
            "commbox-yaml": lambda: timed([CLI, "-C", root, "plan", "--json"]),
            "floor": lambda: timed([PYTHON, str(HERE / "floor_plan.py"), root]),
        },
    )
    notes["plan10k"] = runs["commbox-yaml"]
    ours, floor = median(runs["commbox-yaml"]), median(runs["floor"])
    rss = median(runs["commbox-yaml"], "rss_mb")
    return [
        Row(
            "`plan --json`, 10,000 items, vs the bare script",
            f"{ours / floor:.2f}x ({ours:.2f} s vs {floor:.2f} s)",
            "≤ 0.5x",
            ours / floor <= 0.5,
        ),
        Row(
            "peak RSS of that plan",
            f"{rss:.0f} MB (floor script {median(runs['floor'], 'rss_mb'):.0f} MB)",
            "≤ 100 MB",
            rss <= 100,
        ),
    ]


def row_preview(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    """`preview` of the 10k fan-out against `plan --json` of the same project."""
    root = fan_project(10_000)
    site = WORK / "preview-10k"
    runs = alternate(
        rounds,
        {
            "preview": lambda: timed([CLI, "-C", str(root), "preview", "--out", str(site)]),
            "plan": lambda: timed([CLI, "-C", str(root), "plan", "--json"]),
        },
    )
    ours, floor = median(runs["preview"]), median(runs["plan"])
    pages = len(list((site / "messages").glob("*.html")))
    return [
        Row(
            "`preview`, 10,000 items, vs `plan --json` of the same project",
            f"{ours / floor:.2f}x ({ours:.2f} s vs {floor:.2f} s; {pages:,} pages)",
            "≤ 2x",
            ours / floor <= 2,
        )
    ]


def row_scale(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    small, big = str(fan_project(10_000)), str(fan_project(100_000))
    runs = alternate(
        rounds,
        {
            "10k": lambda: timed([CLI, "-C", small, "plan", "--json"]),
            "100k": lambda: timed([CLI, "-C", big, "plan", "--json"]),
        },
    )
    ratio = median(runs["100k"]) / median(runs["10k"])
    rss = median(runs["100k"], "rss_mb") / median(runs["10k"], "rss_mb")
    parts = memory_parts(Path(big))
    return [
        Row(
            "plan at 100,000 items: time over the 10k time",
            f"{ratio:.1f}x ({median(runs['100k']):.1f} s)",
            "≤ 11x",
            ratio <= 11,
        ),
        Row(
            "plan at 100,000 items: RSS over the 10k RSS",
            f"{rss:.2f}x ({median(runs['100k'], 'rss_mb'):.0f} MB)",
            "≤ 2x",
            rss <= 2,
            f"Held at 100,000 items (RSS, in MB): {parts}." + SCALE_NOTE,
        ),
    ]


_PARTS = """
import gc, io, json, sys
from pathlib import Path
from typing import Any
from commbox_yaml.context import Context
from commbox_yaml.output import Console
import commbox_yaml.build, jinja2.sandbox, jsonschema
def rss():
    gc.collect()
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
out = {"libraries imported": rss()}
ctx = Context(Path(sys.argv[1]), Console(stdout=io.StringIO()))
ctx.variables(); out["+ variables loaded"] = rss()
result = ctx.build(); out["+ all requests built"] = rss()
print(json.dumps(out))
"""


def memory_parts(root: Path) -> str:
    """Resident memory after each stage of a build (Linux /proc), to say where it is held."""
    if not Path("/proc/self/statm").exists():
        return "not measured (no /proc)"
    done = subprocess.run(
        [PYTHON, "-c", _PARTS, str(root)], capture_output=True, text=True, check=True
    )
    parts: dict[str, float] = json.loads(done.stdout)
    return ", ".join(f"{name} {mb:.0f}" for name, mb in parts.items())


def _apply_row(count: int, concurrency: int, target: float, rounds: int) -> list[Row]:
    server, url, _ = bench_apply.start_sandbox(20)
    try:

        def ours() -> Run:
            with tempfile.TemporaryDirectory(dir=WORK) as tmp:
                root = Path(tmp) / "project"
                bench_apply.write_project(root, count, concurrency)
                wall, send_phase, sent = bench_apply.run_commbox(root, url)
                assert sent == count, sent
            return Run(send_phase, 0.0, {"send": send_phase, "total": wall})

        def bare() -> Run:
            seconds, ok = bench_apply.run_bare(url, count, concurrency)
            assert ok == count, ok
            return Run(seconds, 0.0)

        runs = alternate(max(3 * rounds, 9), {"commbox-yaml": ours, "bare": bare})
    finally:
        server.terminate()
        server.wait(10)
    ratio = median(runs["commbox-yaml"]) / median(runs["bare"])
    total = statistics.median(r.extra["total"] for r in runs["commbox-yaml"])
    return [
        Row(
            f"apply {count:,} msgs, 20 ms latency, concurrency {concurrency}, "
            "vs bare urllib3 threads",
            f"{ratio:.2f}x (send phase {median(runs['commbox-yaml']):.2f} s vs "
            f"{median(runs['bare']):.2f} s; whole apply process {total:.2f} s)",
            f"≤ {target}x",
            ratio <= target,
            "" if ratio <= target else APPLY_NOTE,
        )
    ]


def row_apply8(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    return _apply_row(1000, 8, 1.15, rounds)


def row_apply32(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    return _apply_row(3000, 32, 1.4, rounds)


PACE_COUNT, PACE_RATE = 400, 50


def row_pace(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    """At `rate_per_s: 50`, 400 sends: the span of their arrival at the server against
    (n - 1) / rate, and the most requests any one-second window saw."""
    spans: list[float] = []
    peaks: list[int] = []
    for _ in range(max(rounds, 1)):
        server, url, arrivals = bench_apply.start_sandbox(20)
        try:
            with tempfile.TemporaryDirectory(dir=WORK) as tmp:
                root = Path(tmp) / "project"
                bench_apply.write_project(root, PACE_COUNT, 4, rate=PACE_RATE)
                _, _, sent = bench_apply.run_commbox(root, url)
                assert sent == PACE_COUNT, sent
            bench_apply.wait_for(arrivals, PACE_COUNT)
        finally:
            server.terminate()
            server.wait(10)
        times = sorted(arrivals)
        spans.append(times[-1] - times[0])
        peaks.append(max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)))
    floor = (PACE_COUNT - 1) / PACE_RATE
    span = statistics.median(spans)
    ratio = span / floor
    peak = max(peaks)
    return [
        Row(
            f"apply {PACE_COUNT} msgs at rate_per_s {PACE_RATE}: span of the requests "
            "vs (n-1)/rate",
            f"{ratio:.3f}x ({span:.2f} s vs {floor:.2f} s; {len(spans)} runs)",
            "≤ 1.1x",
            ratio <= 1.1,
        ),
        Row(
            f"apply {PACE_COUNT} msgs at rate_per_s {PACE_RATE}: most requests in any one second",
            f"{peak} (over {len(peaks)} runs)",
            f"≤ {PACE_RATE + 1}",
            peak <= PACE_RATE + 1,
        ),
    ]


def row_version(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    imports = "import yaml, jinja2, jsonschema, urllib3"
    runs = alternate(
        max(rounds, 5),
        {
            "commbox-yaml --version": lambda: timed([CLI, "--version"]),
            "imports": lambda: timed([PYTHON, "-c", imports]),
        },
    )
    ours, floor = median(runs["commbox-yaml --version"]), median(runs["imports"])
    return [
        Row(
            "`commbox-yaml --version`, vs importing pyyaml, jinja2, jsonschema, urllib3",
            f"{ours / floor:.2f}x ({ours * 1000:.0f} ms vs {floor * 1000:.0f} ms)",
            "≤ 0.3x",
            ours / floor <= 0.3,
        )
    ]


_LOADS = """
import json, sys, time
started = time.perf_counter()
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        json.loads(line)
print(time.perf_counter() - started)
"""


def row_ledger(rounds: int, notes: dict[str, list[Run]]) -> list[Row]:
    root = ledger_project()
    ledger = root / ".commbox" / "ledger.jsonl"
    bare = WORK / "ledger-none"
    if not bare.exists():
        shutil.copytree(root, bare, ignore=shutil.ignore_patterns(".commbox"))
    loads_out = WORK / "loads.txt"

    def loads() -> Run:
        run = timed([PYTHON, "-c", _LOADS, str(ledger)], out=str(loads_out))
        run.seconds = float(loads_out.read_text())
        return run

    runs = alternate(
        rounds,
        {
            "plan with ledger": lambda: timed([CLI, "-C", str(root), "plan", "--json"]),
            "plan without": lambda: timed([CLI, "-C", str(bare), "plan", "--json"]),
            "json.loads": loads,
        },
    )
    extra = median(runs["plan with ledger"]) - median(runs["plan without"])
    floor = median(runs["json.loads"])
    return [
        Row(
            "a ledger of 1,000,000 events: extra plan time vs `json.loads` of its lines",
            f"{extra / floor:.2f}x ({extra:.2f} s vs {floor:.2f} s; plan RSS "
            f"{median(runs['plan with ledger'], 'rss_mb'):.0f} MB)",
            "≤ 1.5x",
            extra / floor <= 1.5,
        )
    ]


SCALE_NOTE = (
    " Up to 20,000 messages a build keeps its requests as objects (about 3 KB each: the 10k"
    " run); past that (told by the for_each's size before the first message is rendered) it"
    " writes each to an unnamed temporary file as it is made and keeps about 70 bytes per"
    " message (a key hash, flags, a file offset); the plan reads each back as it prints it."
    " What remains at 100,000 is the customers' data itself (about 0.46 KB per customer as"
    " Python dicts) and, while a var file is parsed, its text."
)
APPLY_NOTE = (
    " Every message needs its `pending` claim on disk before its request leaves: one durable"
    " write per message, which the bare floor does not make. The senders share one"
    " interpreter lock, so each of their waits (for the claim's write, for the reply) ends"
    " with a wait to run Python again, as long as the Python the other senders have queued;"
    " every request goes through urllib3 and http.client (about 350-420 µs of CPU in Python"
    " a POST), as the floor's do."
)


RUNNERS: dict[str, Callable[[int, dict[str, list[Run]]], list[Row]]] = {
    "plan": row_plan,
    "scale": row_scale,
    "apply8": row_apply8,
    "apply32": row_apply32,
    "pace": row_pace,
    "preview": row_preview,
    "version": row_version,
    "ledger": row_ledger,
}


# -- the report -------------------------------------------------------------------------------


def machine() -> str:
    from importlib.metadata import version

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    names = ("PyYAML", "jinja2", "jsonschema", "urllib3")
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}; "
        + ", ".join(f"{n} {version(n)}" for n in names)
        + f"; commit {commit or '?'}"
    )


def profile_10k(top: int = 12) -> str:
    """cProfile of the 10k plan in a fresh process: own time per stage, then the top entries."""
    code = (
        "import cProfile, pstats, io, contextlib, sys, json\n"
        "from commbox_yaml.cli import main\n"
        "p = cProfile.Profile()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    p.enable(); main(['-C', {str(fan_project(10_000))!r}, 'plan', '--json']);"
        " p.disable()\n"
        "s = pstats.Stats(p)\n"
        "own = {}\n"
        "for (file, line, name), (cc, nc, tt, ct, callers) in s.stats.items():\n"
        "    own[file] = own.get(file, 0.0) + tt\n"
        "print(json.dumps(own))\n"
        "s.stream = sys.stdout; s.strip_dirs().sort_stats('tottime')"
        f".print_stats({top})\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    first, _, rest = done.stdout.partition("\n")
    own: dict[str, float] = json.loads(first)
    total = sum(own.values())
    stages: dict[str, float] = {}
    for file, seconds in own.items():
        stage = next((label for part, label in STAGES if part in file), "other")
        stages[stage] = stages.get(stage, 0.0) + seconds
    ranked = sorted(stages.items(), key=lambda kv: -kv[1])
    paragraph = (
        f"Under cProfile the 10,000-item plan took {total:.2f} s of own time: "
        + "; ".join(f"{label} {seconds / total:.0%}" for label, seconds in ranked)
        + "."
    )
    lines = [line for line in rest.splitlines() if line.strip()]
    return paragraph + "\n\n```\n" + "\n".join(lines[-(top + 2) :]) + "\n```"


# Which stage a profiled file belongs to (first match wins).
STAGES = (
    ("commbox_yaml/source.py", "reading YAML (commbox_yaml/source.py)"),
    ("site-packages/yaml/", "reading YAML (PyYAML: resolver, libyaml)"),
    ("commbox_yaml/render/", "rendering templates (commbox_yaml/render/)"),
    ("site-packages/jinja2/", "rendering templates (jinja2)"),
    ("<template>", "rendering templates (jinja2)"),
    ("commbox_yaml/validate.py", "schema checks (commbox_yaml/validate.py)"),
    ("commbox_yaml/phones.py", "schema checks (phones)"),
    ("commbox_yaml/compile.py", "building requests and fingerprints"),
    ("/json/", "JSON encoding (fingerprints and output)"),
    ("~", "built-ins called from all of these (dict.get, isinstance, all, str.join)"),
    ("commbox_yaml/report", "plan output"),
    ("commbox_yaml/plan.py", "planning"),
    ("commbox_yaml/build.py", "build loop"),
)


def report(rows: list[Row], rounds: int, command: str, profile: str) -> str:
    table = ["| measure | measured | target | pass |", "| --- | --- | --- | --- |"]
    table += [
        f"| {r.measure} | {r.value} | {r.target} | {'pass' if r.passed else 'FAIL'} |" for r in rows
    ]
    details = [f"- {r.measure}: {r.detail.strip()}" for r in rows if r.detail]
    if details:
        details.append("")
    parts = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "Each side runs in a fresh process; the sides alternate round by round and the medians",
        f"of {rounds} rounds are compared ({max(3 * rounds, 9)} for the apply rows, whose rounds"
        " take 2 s). A shared 2-CPU machine: expect noise.",
        "",
        f"Machine: {machine()}",
        "",
        *table,
        "",
        *details,
    ]
    if profile:
        parts += ["## Where the time goes now", "", profile, ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--row", action="append", choices=ROWS, help="only this row; repeatable")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row (3)")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the 10k plan")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    _launch(["true"], None, os.devnull)  # the launcher starts while this process is small
    rows: list[Row] = []
    notes: dict[str, list[Run]] = {}
    for name in args.row or ROWS:
        print(f"{name}:", flush=True)
        rows += RUNNERS[name](args.rounds, notes)
    profile = profile_10k() if args.profile else ""
    text = report(rows, args.rounds, " ".join(["python bench/run.py", *sys.argv[1:]]), profile)
    print(text)
    if not args.no_write:
        (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
