"""The floor for `plan --json`: a bare script doing the essential work with the same libraries.

    python bench/floor_plan.py PROJECT_DIR > /dev/null

Reads the files `bench/bench_validate.py` writes (PyYAML with libyaml); for each item renders
every templated field in a Jinja sandbox (templates compiled once), validates the result with a
jsonschema validator built once (the package's channel schema and format checks), takes the
canonical JSON and its sha256, and writes one compact JSON line per message.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_validate import MESSAGE_FILE, _naive_inputs, _render_tree


def main(root: Path) -> int:
    import jinja2
    import jsonschema
    from jinja2.sandbox import SandboxedEnvironment

    from commbox_yaml.resources import schema
    from commbox_yaml.validate import FORMATS

    project, variables, definition = _naive_inputs(root)
    validator = jsonschema.Draft202012Validator(
        schema(definition["channel"]), format_checker=FORMATS
    )
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    fields = {k: v for k, v in definition.items() if k not in ("for_each", "key")}
    compiled: dict[str, jinja2.Template] = {}
    canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    out = sys.stdout
    count = 0
    for item in variables[definition["for_each"]]:
        scope = {**variables, "item": item}

        def render(source: str, scope: dict[str, Any] = scope) -> str:
            template = compiled.get(source)
            if template is None:
                template = compiled[source] = env.from_string(source)
            return template.render(scope)

        render_: Callable[[str], str] = render
        key = render_(definition["key"])
        instance = _render_tree(fields, render_)
        instance["stream"] = project["streams"].get(instance["stream"], instance["stream"])
        for error in validator.iter_errors(instance):
            raise SystemExit(f"invalid: {error.message}")
        fingerprint = hashlib.sha256(canonical.encode(instance).encode()).hexdigest()
        out.write(json.dumps({"key": key, "fingerprint": fingerprint, "body": instance}) + "\n")
        count += 1
    return count


if __name__ == "__main__":
    if main(Path(sys.argv[1])) == 0:
        raise SystemExit(f"no message in {sys.argv[1]}/{MESSAGE_FILE}")
