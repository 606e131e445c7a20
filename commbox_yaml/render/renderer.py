"""The messages a definition gives, one per for_each item, each within the time budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from commbox_yaml.definitions import Definition
from commbox_yaml.errors import Problem
from commbox_yaml.project import Project
from commbox_yaml.render import budget
from commbox_yaml.render.environment import environment
from commbox_yaml.render.items import ForEach
from commbox_yaml.render.message import MessageFields
from commbox_yaml.render.model import RenderedMessage
from commbox_yaml.render.scope import Scopes
from commbox_yaml.render.sensitive import SensitiveFields
from commbox_yaml.render.values import Templates
from commbox_yaml.render.wording import TemplateProblem
from commbox_yaml.variables import Variables

_T = TypeVar("_T")


class Renderer:
    """Renders definitions with one set of variables; compiled templates are cached."""

    def __init__(self, project: Project, variables: Variables) -> None:
        self.project = project
        self.variables = variables
        self.env = environment(project.root)
        self._scopes = Scopes(variables)
        self._templates = Templates(project, self.env, self._scopes.secret_vars)
        self._for_each = ForEach(self._templates, variables)
        self._fields = MessageFields(self._templates)
        self._sensitive = SensitiveFields(self._templates, self._scopes)
        self._budget = budget.TimeBudget()

    def render(
        self,
        definition: Definition,
        problems: list[Problem],
        expect: Callable[[int], None] | None = None,
    ) -> Iterator[RenderedMessage]:
        """Every message a definition gives (one per for_each item), one at a time; what goes
        wrong is added to `problems`. Every item's key is checked before the first message is
        rendered (a definition with a bad key gives no message at all); then `expect` is
        told how many messages are coming."""
        if self._budget.exhausted:
            return  # the run's budget is spent: said once, at the message it stopped
        shaping = self._sensitive.shaping(definition)
        if shaping:
            problems.extend(shaping)
            return
        base = self._scopes.base(definition, shown=True)
        secret_fields = self._sensitive.fields(definition)
        sent = None
        if secret_fields:
            sent = (self._scopes.base(definition, shown=False), secret_fields)
        with self._budget:
            items = self._within_budget(
                definition, None, problems, lambda: list(self._for_each.items(definition, base))
            )
            if items is None:
                return
            if expect is not None:
                expect(len(items))
            for item_key, item in items:
                work = partial(self._message, definition, base, sent, item_key, item)
                message = self._within_budget(definition, item_key, problems, work)
                if message is not None:
                    yield message
                elif self._budget.exhausted:
                    return

    def _message(
        self,
        definition: Definition,
        base: dict[str, Any],
        sent: tuple[dict[str, Any], tuple[str, ...]] | None,
        item_key: str | None,
        item: Any,
    ) -> RenderedMessage:
        """One message; `sent`: the scope with the real sensitive values and the keys that
        read one, rendered again with them for the request sent."""
        scope = base if item_key is None else {**base, "item": item, "key": item_key}
        message = self._fields.render(definition, item_key, scope)
        if sent is not None and not message.skipped:
            message = self._sensitive.with_sent(message, sent[0], item, sent[1])
        return message

    def _within_budget(
        self,
        definition: Definition,
        item_key: str | None,
        problems: list[Problem],
        work: Callable[[], _T],
    ) -> _T | None:
        """What `work` gives, or None when it fails or runs out of time (added to `problems`).
        `item_key` is None while the for_each is expanded."""
        try:
            with self._budget.running():
                return work()
        except TemplateProblem as exc:
            problems.extend(exc.problems)
        except budget.TemplateTimeout as exc:
            problems.append(_too_slow(definition, item_key, exc.run))
        return None


def _too_slow(definition: Definition, item_key: str | None, run: bool) -> Problem:
    """Which budget ran out, at the message that was rendering, and what to do."""
    path = "for_each" if item_key is None and "for_each" in definition.data else ""
    if run:
        message = (
            f"rendering stopped at message '{definition.name}': the templates of this run "
            f"took longer than {budget.RUN_BUDGET_S:g} s in all (the budget for one run; "
            f"each message may take {budget.TEMPLATE_BUDGET_S:g} s); make the slow templates "
            "faster, or plan fewer messages at a time (plan --target NAME)"
        )
    else:
        message = (
            f"rendering message '{definition.name}' took longer than "
            f"{budget.TEMPLATE_BUDGET_S:g} s (the budget for one message); a template loop "
            "that runs too long? Make it smaller"
        )
    return Problem(definition.where(path) if path else definition.location, message, path, item_key)
