"""The sandbox's object ids never repeat across runs, and increase within one.

A ledger may only ever hold one key per object id: a second `apply --sandbox` whose sandbox
started its ids over would record new messages under ids the ledger already holds.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import urllib3

from commbox_yaml.cli import main
from commbox_yaml.sandbox import FIRST_ID, SandboxServer
from tests.projects import project

JSON_EXACT = 2**53  # integers up to here read exactly as doubles (JavaScript, some JSON tools)

NOTE = """\
name: note
channel: sms
stream: sms
id: "note-{{ version }}"
for_each: people
user_stream_provider_id: "{{ item }}"
message: "release {{ version }} for {{ item }}"
"""


def post_ids(http: urllib3.PoolManager, server: SandboxServer, count: int) -> list[int]:
    ids = []
    for n in range(count):
        reply = http.request(
            "POST",
            f"{server.url}/streams/5fd0c1/objects",
            body=json.dumps(
                {"data": {"Message": f"m {n}", "UserStreamProviderId": "9725"}}
            ).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
        )
        assert reply.status == 200, reply.data
        ids.append(reply.json()["data"]["id"])
    return ids


def test_two_runs_never_hand_out_one_id(http: urllib3.PoolManager) -> None:
    runs = []
    for _ in range(3):
        with SandboxServer() as server:
            runs.append(post_ids(http, server, 20))
    every = [object_id for run in runs for object_id in run]
    assert len(set(every)) == len(every)
    assert every == sorted(every)  # increasing within a run, and from one run to the next
    assert all(isinstance(i, int) and 0 < i < JSON_EXACT for i in every)


def test_concurrent_posts_get_distinct_increasing_ids() -> None:
    with SandboxServer() as server:
        pool = urllib3.PoolManager(maxsize=8, retries=False)
        workers = [threading.Thread(target=post_ids, args=(pool, server, 10)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        pool.clear()
        ids = [o.object_id for o in server.objects]  # in the order they were made
    assert len(ids) == 80
    assert len(set(ids)) == 80
    assert ids == sorted(ids)


def test_a_fixed_first_id_counts_up_from_it(http: urllib3.PoolManager) -> None:
    with SandboxServer(first_id=FIRST_ID) as server:
        assert post_ids(http, server, 3) == [FIRST_ID, FIRST_ID + 1, FIRST_ID + 2]
    with pytest.raises(ValueError, match="first_id"):
        SandboxServer(first_id=0)


def test_a_second_apply_sandbox_records_new_objects_under_new_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, NOTE, "version: '1'\npeople: ['972500000001', '972500000002']\n")
    assert main(["-C", str(root), "apply", "--sandbox", "--auto-approve"]) == 0
    vars_file = root / "vars/common.yaml"
    vars_file.write_text(vars_file.read_text().replace("version: '1'", "version: '2'"))
    assert main(["-C", str(root), "apply", "--sandbox", "--auto-approve"]) == 0
    capsys.readouterr()
    lines = (root / ".commbox/sandbox-ledger.jsonl").read_text().splitlines()
    outcomes = [json.loads(line) for line in lines]
    sent = {e["key"]: e["object_id"] for e in outcomes if e.get("object_id") is not None}
    assert len(sent) == 4  # two keys a run, each recorded with its object
    assert len(set(sent.values())) == 4  # no object id under two keys
