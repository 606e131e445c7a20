"""The end of every command's --help: examples, the environment it reads, its exit codes.

One table of environment variables, so that each command names only those it reads and every
help page says the same thing about each.
"""

from __future__ import annotations

from collections.abc import Sequence

ENVIRONMENT: dict[str, str] = {
    "COMMBOX_API_TOKEN": "the CommBox API token (the variable api.token_env names)",
    "COMMBOX_BASE_URL": "the API's URL, over api.base_url",
    "COMMBOX_VAR_<name>": "sets the template variable <name> (over var files, under --var)",
    "env:": "the names listed under env: in commbox.yaml (templates see env.NAME)",
    "COMMBOX_LEDGER_URL": "a PostgreSQL ledger's URL, over ledger.url",
    "PGPASSWORD": "the PostgreSQL ledger's password (or ~/.pgpass)",
    "COMMBOX_SANDBOX_TOKEN": "the only Bearer token to accept, when --token is not given",
    "HTTPS_PROXY": "a proxy for the API's requests (also HTTP_PROXY; NO_PROXY exempts hosts)",
    "SSL_CERT_FILE": "CAs to trust when api.ca_bundle is unset (also REQUESTS_CA_BUNDLE)",
    "GITHUB_ACTIONS": "'true': errors are also printed as GitHub annotations",
    "NO_COLOR": "set and not empty: no colours (as --no-color)",
}

# Every command that reads the project: its templates see these, its errors are annotations.
PROJECT_ENV = ("COMMBOX_VAR_<name>", "env:", "GITHUB_ACTIONS")
SEND_ENV = (
    "COMMBOX_API_TOKEN",
    "COMMBOX_BASE_URL",
    "COMMBOX_LEDGER_URL",
    "HTTPS_PROXY",
    "SSL_CERT_FILE",
)
USAGE_ERROR = ("1", "an error: bad input, or a usage error (an unknown flag, a missing argument)")


def epilog(
    examples: Sequence[str],
    environment: Sequence[str],
    exit_codes: Sequence[tuple[str, str]],
) -> str:
    """The text after a command's options (kept as written: RawDescriptionHelpFormatter)."""
    lines = ["examples:"]
    lines += [f"  {example}" for example in examples]
    lines += ["", "environment:"]
    if not environment:
        lines.append("  none read")
    width = max((len(name) for name in environment), default=0)
    lines += [f"  {name:<{width}}  {ENVIRONMENT[name]}" for name in environment]
    lines += ["", "exit codes:"]
    lines += [f"  {code:<3}  {meaning}" for code, meaning in exit_codes]
    return "\n".join(lines)
