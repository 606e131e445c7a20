"""Benchmark: `commbox-yaml validate` over a 10,000-item for_each, against a naive loop.

Run by hand (it is not part of the test suite), from the repository root:

    .venv/bin/python bench/bench_validate.py                 # 10,000 items, best of 3
    .venv/bin/python bench/bench_validate.py --items 1000 --repeat 5
    .venv/bin/python bench/bench_validate.py --profile       # cProfile of the commbox side

It writes a project under a temporary folder: one WhatsApp message fanned out with `for_each`
over N customers from a generated vars file, with a `key:` template and 14 templated fields.
Then each side runs in its own fresh Python process, `--repeat` times:

- commbox-yaml: `commbox_yaml.cli.main(["-C", DIR, "validate"])`, in the worker process;
- naive: the same YAML files read with PyYAML (libyaml), then for each item every templated
  field rendered with `SandboxedEnvironment.from_string(field).render(scope)`, the dict built,
  and `jsonschema.validate(instance, schema)` with the package's WhatsApp schema and the same
  format checks;
- naive, hoisted: the naive loop with each template compiled once and one validator built once
  (what a careful hand-written script would do), for a lower bound.

Reported per side: the work's wall time inside the worker (after imports), the whole process's
wall time (with interpreter start-up and imports), and the worker's peak RSS
(`resource.getrusage(...).ru_maxrss`). The ratio is commbox-yaml / naive, so below 1 means
commbox-yaml is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIDES = ("commbox-yaml", "naive", "naive-hoisted")
MESSAGE_FILE = "messages/customer-whatsapp.yaml"
VARS_FILE = "vars/customers.yaml"

COMMBOX_YAML = """\
version: 1
streams:
  customers-whatsapp: c25e8b4f0d9a47e1b6f3a2c8d15e970b
vars: [vars/common.yaml, vars/customers.yaml]
defaults:
  manager_id: 36197
limits:
  max_sends: 20000
"""

COMMON_YAML = """\
product: Acme Ledger
version: 1.4.0
release_notes_url: https://acme.example/releases/1.4.0
"""

MESSAGE_YAML = """\
name: customer-whatsapp
channel: whatsapp
stream: customers-whatsapp
id: "release-{{ version }}-whatsapp"
for_each: customers
key: "{{ item.id }}"
user_stream_provider_id: "{{ item.phone }}"
to: ["{{ item.phone }}"]
template:
  name: release_announcement
  language: "{{ item.language }}"
  params: ["{{ item.first_name }}", "{{ product }}", "{{ version }}", "{{ release_notes_url }}"]
message: "{{ product }} {{ version }} is out, {{ item.first_name }}: {{ release_notes_url }}"
user:
  unique_id: "{{ item.id }}"
  first_name: "{{ item.first_name }}"
  last_name: "{{ item.last_name }}"
  phone1: "{{ item.phone }}"
  remarks: "{{ item.company }} ({{ item.language }})"
"""

_FIRST = ["Dana", "Noa", "Yael", "Hank", "Lucía", "Jonas", "Amir", "Maya", "Omar", "Ines", "Kai"]
_LAST = ["Cohen", "Levi", "Scorpio", "Fernández", "Becker", "Haddad", "Rossi", "Tanaka", "Silva"]
_COMPANY = ["Globex", "Initech", "Hooli", "Tzafon Logistics", "Sol y Mar", "Brauhaus Nord"]
_LANGUAGES = ["en", "en_US", "he", "es", "de", "fr", "pt_BR", "it"]


# -- the project -----------------------------------------------------------------------------


def write_project(root: Path, items: int) -> None:
    """A project with one message fanned out over `items` customers (deterministic data)."""
    rng = random.Random(20261125)
    lines = ["customers:"]
    for index in range(items):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        lines += [
            f"  - id: c{index:06d}",
            f"    first_name: {first}",
            f"    last_name: {last}",
            f'    company: "{rng.choice(_COMPANY)} {index // 50}"',
            f'    phone: "{rng.choice(["1", "44", "49", "972"])}{rng.randrange(10**9, 10**10)}"',
            f"    language: {rng.choice(_LANGUAGES)}",
        ]
    files = {
        "commbox.yaml": COMMBOX_YAML,
        "vars/common.yaml": COMMON_YAML,
        VARS_FILE: "\n".join(lines) + "\n",
        MESSAGE_FILE: MESSAGE_YAML,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# -- the workers (each runs in a fresh process) ---------------------------------------------


def work_commbox(root: Path) -> int:
    from commbox_yaml.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["-C", str(root), "--no-color", "validate", "--json"])
    result = json.loads(out.getvalue())
    if code != 0 or not result["valid"]:
        raise SystemExit(f"commbox-yaml validate failed: {result['errors'][:3]}")
    return int(result["messages"])


def _naive_inputs(root: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    project = yaml.load((root / "commbox.yaml").read_text("utf-8"), Loader=loader)
    variables: dict[str, Any] = {}
    for relative in project["vars"]:
        variables.update(yaml.load((root / relative).read_text("utf-8"), Loader=loader))
    definition = yaml.load((root / MESSAGE_FILE).read_text("utf-8"), Loader=loader)
    return project, variables, {**project["defaults"], **definition}


def _render_tree(value: Any, render: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return render(value) if "{{" in value or "{%" in value else value
    if isinstance(value, dict):
        return {k: _render_tree(v, render) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, render) for v in value]
    return value


def work_naive(root: Path, hoisted: bool) -> int:
    import jinja2
    import jsonschema
    from jinja2.sandbox import SandboxedEnvironment

    from commbox_yaml.resources import schema
    from commbox_yaml.validate import FORMATS  # the same phone/email/template-name checks

    project, variables, definition = _naive_inputs(root)
    channel_schema = schema(definition["channel"])
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    fields = {k: v for k, v in definition.items() if k not in ("for_each", "key")}
    compiled: dict[str, jinja2.Template] = {}
    validator = jsonschema.Draft202012Validator(channel_schema, format_checker=FORMATS)

    def check(instance: dict[str, Any]) -> None:
        if hoisted:
            errors = list(validator.iter_errors(instance))
            if errors:
                raise SystemExit(f"naive: invalid: {errors[0].message}")
        else:
            jsonschema.validate(instance, channel_schema, format_checker=FORMATS)

    count = 0
    seen: set[str] = set()
    for item in variables[definition["for_each"]]:
        scope = {**variables, "item": item}

        def render(source: str, scope: dict[str, Any] = scope) -> str:
            if not hoisted:
                return env.from_string(source).render(scope)
            template = compiled.get(source)
            if template is None:
                template = compiled[source] = env.from_string(source)
            return template.render(scope)

        key = render(definition["key"])
        if key in seen:
            raise SystemExit(f"naive: duplicate key {key!r}")
        seen.add(key)
        instance = _render_tree(fields, render)
        instance["stream"] = project["streams"].get(instance["stream"], instance["stream"])
        check(instance)
        count += 1
    return count


def worker(side: str, root: Path) -> None:
    """Run one side once; print one JSON line: items, seconds of work, peak RSS."""
    start = time.perf_counter()
    if side == "commbox-yaml":
        items = work_commbox(root)
    elif side == "naive":
        items = work_naive(root, hoisted=False)
    elif side == "naive-hoisted":
        items = work_naive(root, hoisted=True)
    else:
        raise SystemExit(f"unknown side {side!r}")
    seconds = time.perf_counter() - start
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        maxrss_kib //= 1024  # bytes there, KiB on Linux
    print(json.dumps({"side": side, "items": items, "seconds": seconds, "maxrss_kib": maxrss_kib}))


# -- the driver -----------------------------------------------------------------------------


def run_side(side: str, root: Path, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", side, str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        total = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{side} worker failed:\n{done.stderr}{done.stdout}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_seconds"] = total
        runs.append(result)
    work = [r["seconds"] for r in runs]
    process = [r["process_seconds"] for r in runs]
    return {
        "side": side,
        "items": runs[0]["items"],
        "best": min(work),
        "median": statistics.median(work),
        "process_best": min(process),
        "process_median": statistics.median(process),
        "maxrss_mib": max(r["maxrss_kib"] for r in runs) / 1024,
    }


def baseline_rss_mib() -> float:
    """Peak RSS of a process that only imports what both sides import."""
    code = (
        "import resource, jinja2, jinja2.sandbox, jsonschema, yaml, commbox_yaml.cli;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout) / 1024


def machine() -> str:
    from importlib.metadata import version

    import yaml

    libyaml = "yes" if hasattr(yaml, "CSafeLoader") else "no"
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}; "
        f"jinja2 {version('jinja2')}, jsonschema {version('jsonschema')}, "
        f"PyYAML {version('PyYAML')} (libyaml: {libyaml})"
    )


def report(results: list[dict[str, Any]], items: int, repeat: int, rss0: float) -> str:
    head = (
        "| side | work: best | work: median | process: best | process: median | peak RSS |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    rows = [
        f"| {r['side']} | {r['best']:.2f} s | {r['median']:.2f} s | {r['process_best']:.2f} s "
        f"| {r['process_median']:.2f} s | {r['maxrss_mib']:.0f} MiB |"
        for r in results
    ]
    by_side = {r["side"]: r for r in results}
    ours = by_side["commbox-yaml"]
    lines = [
        f"{items:,} items, best and median of {repeat} runs, each in a fresh process.",
        "",
        head,
        *rows,
        "",
        f"Peak RSS of a process that only imports the libraries: {rss0:.0f} MiB.",
        f"Per item (work, best): commbox-yaml {ours['best'] / items * 1e6:.0f} µs.",
        "",
    ]
    for other in ("naive", "naive-hoisted"):
        theirs = by_side[other]
        ratio = ours["best"] / theirs["best"]
        word = "faster" if ratio < 1 else "slower"
        lines.append(
            f"commbox-yaml / {other} (work, best): {ratio:.2f} "
            f"(commbox-yaml is {max(ratio, 1 / ratio):.1f}x {word}); "
            f"median {ours['median'] / theirs['median']:.2f}; "
            f"peak RSS {ours['maxrss_mib'] / theirs['maxrss_mib']:.2f}"
        )
    return "\n".join(lines)


def profile(root: Path, top: int) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    items = work_commbox(root)
    profiler.disable()
    print(f"cProfile of commbox-yaml validate, {items:,} items")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=10_000, help="for_each items (10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile the commbox-yaml side")
    parser.add_argument("--top", type=int, default=10, help="profile entries to show (10)")
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="commbox-bench-") as folder:
        root = Path(folder)
        write_project(root, args.items)
        if args.profile:
            profile(root, args.top)
            return 0
        print(machine())
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
        results = []
        for side in SIDES:
            results.append(run_side(side, root, args.repeat))
            print(f"  {side}: done", file=sys.stderr)
        print(textwrap.dedent(report(results, args.items, args.repeat, baseline_rss_mib())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
