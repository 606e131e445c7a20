"""The command line: argument parsing, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from commbox_yaml import __version__
from commbox_yaml.commands._help import USAGE_ERROR, epilog
from commbox_yaml.hints import closest

if TYPE_CHECKING:
    from commbox_yaml.context import Context

# Command modules are imported when the parser is built, not when this module is: so that
# `--version` starts without yaml, jinja2, jsonschema or urllib3.
COMMANDS = (
    "init",
    "validate",
    "render",
    "plan",
    "apply",
    "reconcile",
    "ledger",
    "preview",
    "schema",
    "sandbox",
)
# A young-generation collection every 700 allocations costs a plan over 10,000 items a fifth
# of its time (its objects are nearly all long-lived and acyclic): collect far less often.
GC_THRESHOLD = (100_000, 50, 100)


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"commbox_yaml.commands.{name}")


EXIT_OK, EXIT_ERROR, EXIT_SIGINT = 0, 1, 130
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error exiting 1 (exit code 2 is `plan --detailed-exitcode`'s
    alone), "did you mean" for a mistyped choice, and help epilogs kept as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    given: Sequence[str] = ()  # the words typed, for a hint that rewrites them

    def error(self, message: str) -> NoReturn:
        from commbox_yaml.output import no_command, one_line  # quotes the words given: one line

        self.print_usage(sys.stderr)
        # Every command's options (the parser may hold only the one command typed): an
        # error is the time to import them all.
        owners = make_parser()._options_by_command() if self.given else {}
        text = one_line(_suggest(message, owners or self._options_by_command(), self.given))
        self.exit(EXIT_ERROR, no_command(f"{self.prog}: error: {text}") + "\n")

    def _options_by_command(self) -> dict[str, list[str]]:
        """Each option string of this parser ("" as its command) and of its commands, with
        the commands that take it (unknown flags reach the top parser)."""
        owners: dict[str, list[str]] = {}
        for action in self._actions:
            for option in action.option_strings:
                owners.setdefault(option, []).append("")
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    for option in (o for a in sub._actions for o in a.option_strings):
                        owners.setdefault(option, []).append(name)
        return owners


def _suggest(message: str, owners: dict[str, list[str]], given: Sequence[str] = ()) -> str:
    found = _INVALID_CHOICE.search(message)
    if found is not None:
        word, choices = found.group(1), [c.strip().strip("'") for c in found.group(2).split(",")]
    elif message.startswith("unrecognized arguments: "):
        word = message.split(": ", 1)[1].split()[0]
        if word in owners:  # a real option, in the wrong place: say where it goes
            return message + "; " + _misplaced(word, owners[word], given)
        choices = [o for o in owners if o.startswith("--")] if word.startswith("--") else []
    else:
        return message
    near = closest(word, choices)
    return message + (f"; did you mean '{near}'?" if near else "")


def _misplaced(option: str, commands: list[str], given: Sequence[str]) -> str:
    """An option of some commands, given before the command or to one that lacks it."""
    takers = sorted(c for c in commands if c)
    typed = _command_in(list(given))
    if typed in takers:
        words = [w for w in given if w != option]
        at = words.index(typed)
        end = next((i for i in range(at + 1, len(words)) if words[i].startswith("-")), len(words))
        fixed = " ".join(["commbox-yaml", *words[:end], option, *words[end:]])
        return f"{option} is an option of {typed}, so it goes after it: '{fixed}'"
    return f"{option} is an option of {', '.join(takers)} only"


def _global_options(prefix: str) -> argparse.ArgumentParser:
    """The options accepted before or after the command (`plan --var-file f` as in Terraform).

    Before the command they land in `g_*`, after it in `c_*`; `_merge` combines both.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("global options")
    default = None if prefix == "g" else argparse.SUPPRESS
    group.add_argument(
        "-C",
        dest=f"{prefix}_directory",
        metavar="DIR",
        default=default,
        help="run as if started in DIR (the project root is found from there)",
    )
    group.add_argument(
        "--no-color",
        dest=f"{prefix}_no_color",
        action="store_true",
        default=default,
        help="no colours (also: NO_COLOR set to anything but empty text)",
    )
    group.add_argument(
        "--debug",
        dest=f"{prefix}_debug",
        action="store_true",
        default=default,
        help="show tracebacks of internal errors",
    )
    group.add_argument(
        "--var",
        dest=f"{prefix}_var",
        action="append",
        metavar="NAME=VALUE",
        default=default,
        help="set a variable (a YAML scalar); repeatable",
    )
    group.add_argument(
        "--var-file",
        dest=f"{prefix}_var_file",
        action="append",
        metavar="FILE",
        default=default,
        help="load a variables file after commbox.yaml's; repeatable",
    )
    return parser


def make_parser(only: str | None = None) -> Parser:
    """The whole parser; with `only`, the other commands are bare names, so that their
    modules (and urllib3, the sandbox, ...) are not imported for a command that needs none."""
    parser = Parser(
        prog="commbox-yaml",
        parents=[_global_options("g")],
        description="Send CommBox messages from YAML files: validate, plan, apply, once.\n"
        "Global options go before or after the command.",
        epilog=epilog(
            [
                "commbox-yaml init notices && cd notices",
                "commbox-yaml validate",
                "commbox-yaml plan",
                "commbox-yaml apply --sandbox --auto-approve",
                "commbox-yaml COMMAND --help     (each command's options and environment)",
            ],
            ["NO_COLOR"],
            [
                ("0", "success"),
                USAGE_ERROR,
                ("2", "only with plan --detailed-exitcode: the plan would send something"),
                ("130", "apply stopped by SIGINT (143: SIGTERM)"),
            ],
        ),
    )
    parser.add_argument("--version", action="version", version=f"commbox-yaml {__version__}")
    # Not `required`: a bare `commbox-yaml` prints the help (main handles a missing command).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is None or name == only:
            command_module(name).add_parser(sub, [_global_options("c")])
        else:
            sub.add_parser(name, add_help=False)
    return parser


_VALUED = ("-C", "--var", "--var-file")  # global options that take the next word


def _command_in(argv: Sequence[str]) -> str | None:
    """The command argv names, judged before parsing; None when unsure (help, a typo)."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            return None
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _merge(args: argparse.Namespace) -> argparse.Namespace:
    merged = argparse.Namespace(
        **{k: v for k, v in vars(args).items() if not k.startswith(("g_", "c_"))}
    )
    get = vars(args).get
    merged.directory = get("c_directory") or get("g_directory") or "."
    merged.no_color = bool(get("g_no_color") or get("c_no_color"))
    merged.debug = bool(get("g_debug") or get("c_debug"))
    merged.var = (get("g_var") or []) + (get("c_var") or [])
    merged.var_file = (get("g_var_file") or []) + (get("c_var_file") or [])
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # without building the parser, which imports every command
        print(f"commbox-yaml {__version__}")
        return EXIT_OK
    target = _command_in(argv)
    parser = make_parser(target)
    Parser.given = argv
    if not argv:  # `commbox-yaml` alone: the help, as `--help` gives it
        parser.print_help()
        return EXIT_OK
    try:
        args = _merge(parser.parse_args(argv))
        if target is not None and args.command != target:  # misjudged: parse it whole
            args = _merge(make_parser().parse_args(argv))
        if args.command is None:  # options but no command: a script's empty $COMMAND
            parser.error("a COMMAND is required (commbox-yaml --help lists them)")
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    from commbox_yaml.context import Context
    from commbox_yaml.output import Console, no_color_asked

    no_color = args.no_color or no_color_asked()
    console = Console(color=False if no_color else None)
    ctx = Context(
        directory=Path(args.directory),
        console=console,
        var_files=args.var_file,
        var_assignments=args.var,
        debug=args.debug,
    )
    command: Callable[[Context, argparse.Namespace], int] = command_module(args.command).run
    threshold = gc.get_threshold()
    gc.freeze()  # what the imports made is never garbage: keep it out of every collection
    gc.set_threshold(*GC_THRESHOLD)
    try:
        return run_command(command, ctx, args)
    finally:  # main() may run again in the same process (tests, embedding): as it was
        gc.set_threshold(*threshold)
        gc.unfreeze()


def run_command(
    command: Callable[[Context, argparse.Namespace], int],
    ctx: Context,
    args: argparse.Namespace,
) -> int:
    from commbox_yaml.errors import UserError, ValidationFailed

    console = ctx.console
    try:
        ctx.check_directory()
        return command(ctx, args)
    except ValidationFailed as exc:
        console.problems(exc.problems, args.command)
    except UserError as exc:
        console.err(f"{console.style('error', 'red', 'bold')}: {exc}")
    except KeyboardInterrupt:
        console.err("interrupted")
        return EXIT_SIGINT
    except BrokenPipeError:
        _silence_stdout()
    except RecursionError:
        console.err(
            f"{console.style('error', 'red', 'bold')}: a value is nested too deeply to handle "
            "(a template that builds deep lists or mappings?); flatten it"
        )
    except Exception as exc:  # the CLI edge: anything unexpected is an internal error
        if ctx.debug:
            console.err_lines(traceback.format_exc().rstrip())
        console.err(f"internal error: {type(exc).__name__}: {exc}")
        console.err("this is a bug in commbox-yaml; run again with --debug for the traceback")
    return EXIT_ERROR


def _silence_stdout() -> None:
    # The reader went away (`commbox-yaml plan | head`): stop quietly.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
