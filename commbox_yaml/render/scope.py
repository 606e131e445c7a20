"""The variables as templates see them: for display, each sensitive one is `(sensitive)`."""

from __future__ import annotations

from typing import Any

from commbox_yaml.definitions import Definition
from commbox_yaml.render.environment import EnvVars
from commbox_yaml.taint import TAINT
from commbox_yaml.variables import Variables


class Scopes:
    """The base scope of a definition's templates, shown (for every output) or sent."""

    def __init__(self, variables: Variables) -> None:
        self.variables = variables
        sensitive = variables.sensitive_names
        self.secret_vars = frozenset(n for n in sensitive if n in variables.values)
        self.secret_env = frozenset(n for n in sensitive if n in variables.env)
        self._shown_values = {
            k: TAINT if k in self.secret_vars else v for k, v in variables.values.items()
        }
        self._shown_env = EnvVars(
            {k: TAINT if k in self.secret_env else v for k, v in variables.env.items()}
        )

    @property
    def any_secret(self) -> bool:
        return bool(self.secret_vars or self.secret_env)

    def base(self, definition: Definition, shown: bool) -> dict[str, Any]:
        values = self._shown_values if shown else self.variables.values
        return {
            **values,
            "env": self._shown_env if shown else EnvVars(self.variables.env),
            "definition": {
                "name": definition.name,
                "channel": definition.channel,
                "file": definition.file,
            },
        }
