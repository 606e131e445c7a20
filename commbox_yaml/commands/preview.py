"""preview: every planned message as its recipient will see it, as a static site."""

from __future__ import annotations

import argparse
import dataclasses
import threading
from typing import Any

from commbox_yaml.commands._help import PROJECT_ENV, USAGE_ERROR, epilog
from commbox_yaml.commands.plan import compute_plan
from commbox_yaml.context import Context
from commbox_yaml.errors import UserError
from commbox_yaml.plan import Plan

DEFAULT_OUT = ".commbox/preview"


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "preview",
        parents=parents,
        help="write a static site showing each message as its recipient will see it",
        description="Render every planned message (or those named) as its recipient will see\n"
        "it, into a self-contained static site: index.html lists every message, with a page\n"
        "for each (email HTML in a sandboxed frame at desktop and phone widths, SMS with its\n"
        "segments, WhatsApp with its template and parameters, chat as a bubble). Nothing is\n"
        "loaded from the network: it opens offline, e.g. as a CI artifact. No token.",
        epilog=epilog(
            [
                "commbox-yaml preview",
                "commbox-yaml preview 'release-email[*]' --out site",
                "commbox-yaml preview --against origin/main",
                "commbox-yaml preview --serve --port 8010",
            ],
            [*PROJECT_ENV, "NO_COLOR"],
            [("0", "written (or served until Ctrl-C)"), USAGE_ERROR],
        ),
    )
    parser.add_argument(
        "addresses",
        nargs="*",
        metavar="ADDRESS|GLOB",
        help="only these messages (NAME, NAME[KEY], or a quoted glob: 'release-email[*]')",
    )
    parser.add_argument(
        "--out", metavar="DIR", help=f"where to write the site (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also show, for each message whose request differs from git REF's, the old and "
        "new text of every changed field, words marked",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="load an email's remote images and styles (blocked by default)",
    )
    parser.add_argument(
        "--sandbox", action="store_true", help="plan against the sandbox's own ledger"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="serve the site on 127.0.0.1 and rebuild it when a project file changes",
    )
    parser.add_argument("--port", type=int, default=0, help="the port for --serve (0: any free)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    from commbox_yaml.preview.site import SiteOptions, write_site

    project = ctx.project()
    out = ctx.path(args.out) if args.out else project.root / DEFAULT_OUT
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the site")

    def build(version: int = 1) -> int:
        ctx.reset()  # a rebuild reads the project again
        options = SiteOptions(project.root.name, args.allow_remote, args.serve, version)
        return write_site(_plan(ctx, args), out, options, ctx.console.redactor, args.addresses)

    count = build()
    if args.addresses and count == 0:
        raise UserError(
            f"no planned message matches {', '.join(args.addresses)}; "
            "'commbox-yaml plan' lists every address"
        )
    ctx.console.out(f"Wrote {count} message page(s) and {out / 'index.html'}")
    if args.serve:
        _serve(ctx, out, build, args.port)
    return 0


def _plan(ctx: Context, args: argparse.Namespace) -> Plan:
    selection = argparse.Namespace(target=[], replace=[], sandbox=args.sandbox)
    plan = compute_plan(ctx, selection, ctx.ledger(args.sandbox))
    if args.against:
        from commbox_yaml.preview.against import requests_at

        against = requests_at(args.against, ctx.project(), ctx.var_files, ctx.var_assignments)
        plan = dataclasses.replace(plan, against=against)
    return plan


def _serve(ctx: Context, out: Any, build: Any, port: int) -> None:
    from commbox_yaml.preview.serve import PreviewServer

    server = PreviewServer(
        out,
        ctx.project().root,
        build,
        port,
        on_error=lambda text: ctx.console.err(f"error: {text} (still serving the last site)"),
    )
    server.start()
    ctx.console.out(f"Serving {server.url} (reloads on change; Ctrl-C stops it)")
    ctx.console.stdout.flush()
    try:
        threading.Event().wait()
    finally:
        server.stop()
