"""validate: load, render and check every message; no network."""

from __future__ import annotations

import argparse
from typing import Any

from commbox_yaml.context import Context


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "validate",
        parents=parents,
        help="check every message definition (no network)",
        description="Load, render and check every message against its channel's schema.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.build()
    if args.json:
        ctx.console.json(
            {
                "valid": not result.problems,
                "messages": result.message_count,
                "skipped": len(result.skipped),
                "files": len(result.files),
                "errors": [
                    {
                        "file": p.location.file if p.location else None,
                        "line": p.location.line if p.location else None,
                        "col": p.location.col if p.location else None,
                        "path": p.path,
                        "key": p.item_key,
                        "message": p.message,
                    }
                    for p in result.problems
                ],
            }
        )
        return 1 if result.problems else 0
    if result.problems:
        ctx.console.problems(result.problems, "validate")
        return 1
    skipped = f" ({len(result.skipped)} skipped by 'when')" if result.skipped else ""
    files = len(result.files)
    ctx.console.out(
        f"validate: {result.message_count} message{'s' if result.message_count != 1 else ''} "
        f"from {files} file{'s' if files != 1 else ''} valid{skipped}."
    )
    return 0
