"""validate: load, render and check every message; no network."""

from __future__ import annotations

import argparse
from typing import Any

from commbox_yaml.commands._help import PROJECT_ENV, epilog
from commbox_yaml.context import Context
from commbox_yaml.errors import Problem, UserError, ValidationFailed
from commbox_yaml.output import annotation_text


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "validate",
        parents=parents,
        help="check every message definition (no network)",
        description="Load, render and check every message against its channel's schema.\n"
        "No network, no token: fit for pre-commit. Warnings (a --var or COMMBOX_VAR_ name\n"
        "that no template uses) go to stderr; --strict makes them errors.",
        epilog=epilog(
            [
                "commbox-yaml validate",
                "commbox-yaml -C notices validate --strict --var version=1.5.0",
                "commbox-yaml validate --json",
            ],
            [*PROJECT_ENV, "NO_COLOR"],
            [
                ("0", "every message is valid"),
                ("1", "a problem (with --strict, a warning too), or a usage error"),
            ],
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.json:
        return _run_json(ctx, args.strict)
    result = ctx.build(show_warnings=False)
    problems = result.problems + (_as_problems(result.warnings) if args.strict else [])
    if not args.strict:
        for warning in result.warnings:
            ctx.console.err(f"warning: {warning}")
            if ctx.console.github:  # shown on the run's summary page, as errors are
                text = ctx.console.redactor.text(warning)  # before escaping hides a secret
                ctx.console.stdout.write(f"::warning::{annotation_text(text)}\n")
    if problems:
        ctx.console.problems(sorted(problems, key=Problem.sort_key), "validate")
        return 1
    skipped = f" ({len(result.skipped)} skipped by 'when')" if result.skipped else ""
    files = len(result.files)
    ctx.console.out(
        f"validate: {result.message_count} message{'s' if result.message_count != 1 else ''} "
        f"from {files} file{'s' if files != 1 else ''} valid{skipped}."
    )
    return 0


def _as_problems(warnings: list[str]) -> list[Problem]:
    """--strict: each warning is an error, saying how to turn it back into a warning."""
    return [Problem(None, f"{w} (an error with --strict)") for w in warnings]


def _run_json(ctx: Context, strict: bool) -> int:
    """Always a JSON document on stdout, also when commbox.yaml or a var file is broken."""
    summary: dict[str, Any] = {"messages": 0, "skipped": 0, "files": 0}
    warnings: list[str] = []
    try:
        result = ctx.build(show_warnings=False)
        problems = result.problems
        warnings = result.warnings
        summary = {
            "messages": result.message_count,
            "skipped": len(result.skipped),
            "files": len(result.files),
        }
    except ValidationFailed as exc:
        problems = exc.problems
    except UserError as exc:
        problems = [exc.problem]
    if strict:
        problems, warnings = problems + _as_problems(warnings), []
    ctx.console.json(
        {
            "valid": not problems,
            **summary,
            "errors": [_error(p) for p in problems],
            "warnings": warnings,
        }
    )
    return 1 if problems else 0


def _error(problem: Problem) -> dict[str, Any]:
    loc = problem.location
    return {
        "file": loc.file if loc else None,
        "line": loc.line if loc and loc.line else None,
        "col": loc.col if loc and loc.line else None,
        "path": problem.path,
        "key": problem.item_key,
        "message": problem.message,
    }
