"""The reconcile run: cases, one listing per cluster, findings recorded as they are known."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from commbox_yaml.compile import Request
from commbox_yaml.ledger import LedgerStore, LedgerView
from commbox_yaml.project import ApiSettings
from commbox_yaml.readback import Reader
from commbox_yaml.reconcile.cases import Case, Finding, Result, case_for, clusters
from commbox_yaml.reconcile.decide import decide
from commbox_yaml.reconcile.listing import ObjectReader
from commbox_yaml.reconcile.replies import reconcile_replies


class Reconciler:
    def __init__(
        self,
        api: ApiSettings,
        reader: Reader,
        ledger: LedgerStore,
        run_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.reader = reader
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock
        self.objects = ObjectReader(api, reader, clock)

    def run(
        self,
        keys: Sequence[str],
        view: LedgerView,
        requests: Mapping[str, Request],
        on_finding: Callable[[Finding], None] = lambda f: None,
    ) -> list[Finding]:
        """Reconcile `keys` (under the ledger's lock), recording each result as it is known."""
        findings: list[Finding] = []

        def report(finding: Finding) -> None:
            findings.append(finding)
            on_finding(finding)

        now = self.clock()
        cases: list[Case] = []
        for key in keys:
            case_or_finding = case_for(key, view.state(key), requests.get(key), now)
            if isinstance(case_or_finding, Finding):
                report(case_or_finding)
            else:
                cases.append(case_or_finding)
        # Objects the ledger already accounts for: every key's last successful send, also of a
        # key held now (its object is from an earlier try, not from the one in question).
        claimed = dict(view.object_ids)
        # Replies are read through their parent's conversation, once the parents are settled.
        replies = [c for c in cases if c.request.parent_key is not None]
        cases = [c for c in cases if c.request.parent_key is None]
        for path, window, members in clusters(cases):
            listing = self.objects.list_window(path, window)
            confirm = functools.partial(self.objects.confirm, path)
            after = self.api.reconcile_after_s
            for finding in decide(members, listing, claimed, now, confirm, after):
                self._record(finding, members)
                report(finding)
        found_now = {f.key: f.object_id for f in findings if f.result is Result.SENT}
        after = self.api.reconcile_after_s
        for finding in reconcile_replies(
            self.objects, replies, view, found_now, claimed, now, after
        ):
            self._record(finding, replies)
            report(finding)
        return findings

    def _record(self, finding: Finding, cases: Sequence[Case]) -> None:
        if finding.result not in (Result.SENT, Result.ABSENT):
            return
        case = next(c for c in cases if c.key == finding.key)
        event: dict[str, Any] = {
            "event": "reconciled",
            "key": finding.key,
            "fingerprint": case.state.fingerprint,
            "run": self.run_id,
            "result": finding.result.value,
        }
        if case.request.parent_key is not None:  # a reply: its parent's key, as on its sends
            event["parent"] = case.request.parent_key
        if finding.result is Result.SENT:
            event["object_id"] = finding.object_id
        event["description"] = finding.reason  # counts and ids only: no message content
        self.ledger.append(event)
