"""Benchmark: apply 1,000 messages to the sandbox (20 ms latency, concurrency 8), next to a
bare urllib3 thread pool posting the same prebuilt bodies to the same server.

Run by hand (not part of the test suite):

    .venv/bin/python bench/bench_apply.py [--messages 1000] [--latency-ms 20] [--concurrency 8]

The sandbox runs in its own process, so neither side shares a GIL with the server. The
commbox-yaml side is the real CLI in a subprocess (`apply --auto-approve`), timed end to end
(start-up, rendering, planning, ledger writes with fsync, sending); its send phase alone is
read from the ledger's timestamps. The bare side posts prebuilt JSON bodies from 8 threads
over one PoolManager: the floor any client could reach against this server.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import urllib3

TOKEN = "bench-token"


def start_sandbox(latency_ms: int) -> tuple[subprocess.Popen[str], str, list[float]]:
    """The sandbox in a process of its own, its URL, and the time (time.monotonic) each
    request's line was read here: when each request was answered, to within a millisecond."""
    server = subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "sandbox", "--port", "0",
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    first = server.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", first)
    if not found:
        server.kill()
        raise SystemExit(f"the sandbox did not start: {first!r}")
    arrivals: list[float] = []

    def read() -> None:  # also keeps a full pipe from ever blocking it
        assert server.stdout is not None
        for line in server.stdout:
            if " -> " in line or "POST" in line:  # a request, not the banner's lines
                arrivals.append(time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    return server, found.group(0), arrivals


def wait_for(arrivals: list[float], count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(arrivals) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def write_project(root: Path, count: int, concurrency: int, rate: float = 0) -> None:
    (root / "messages").mkdir(parents=True)
    (root / "vars").mkdir()
    (root / "commbox.yaml").write_text(
        "version: 1\n"
        f"api: {{concurrency: {concurrency}, rate_per_s: {rate}, timeout_s: 30}}\n"
        "streams: {sms: 5fd0c1}\nvars: [vars/common.yaml]\n"
        f"limits: {{max_sends: {count}}}\n"
    )
    people = "\n".join(
        f"  - {{id: c{n:05d}, phone: '9725{n:08d}', name: Customer {n}}}" for n in range(count)
    )
    (root / "vars" / "common.yaml").write_text(f"version: 1.4.0\ncustomers:\n{people}\n")
    (root / "messages" / "notice.yaml").write_text(
        "name: notice\nchannel: sms\nstream: sms\nid: 'notice-{{ version }}'\n"
        "for_each: customers\nkey: '{{ item.id }}'\n"
        "user_stream_provider_id: '{{ item.phone }}'\nmanager_id: 36197\n"
        "message: 'Hi {{ item.name }}, version {{ version }} is out.'\n"
        "user: {unique_id: '{{ item.id }}', first_name: '{{ item.name }}', "
        "phone1: '{{ item.phone }}'}\n"
    )


def run_commbox(root: Path, url: str) -> tuple[float, float, int]:
    env = {**os.environ, "COMMBOX_BASE_URL": url, "COMMBOX_API_TOKEN": TOKEN}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "apply", "--auto-approve",
         "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    total = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"apply failed: {done.stderr[-2000:]}")
    sent = json.loads(done.stdout)["summary"]["sent"]
    stamps = [
        datetime.fromisoformat(json.loads(line)["at"].replace("Z", "+00:00"))
        for line in (root / ".commbox" / "ledger.jsonl").read_text().splitlines()
    ]
    send_phase = (max(stamps) - min(stamps)).total_seconds()
    return total, send_phase, sent


def run_bare(url: str, count: int, concurrency: int) -> tuple[float, int]:
    # The very bodies commbox-yaml sends for write_project's messages (same keys, same text).
    bodies = [
        json.dumps({"data": {"Type": 4, "StatusId": 1, "StreamProviderType": 5,
                             "UserStreamProviderId": f"9725{n:08d}", "UserStreamProviderType": 5,
                             "ManagerId": 36197,
                             "Message": f"Hi Customer {n}, version 1.4.0 is out.",
                             "User": {"UniqueId": f"c{n:05d}", "FirstName": f"Customer {n}",
                                      "Phone1": f"9725{n:08d}"}}}, ensure_ascii=False).encode()
        for n in range(count)
    ]  # fmt: skip
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    pool = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    ok = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            response = pool.request(
                "POST", url + "/streams/5fd0c1/objects", body=body, headers=headers
            )
            if response.status == 200:
                with lock:
                    ok[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    pool.clear()
    return elapsed, ok[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    floor = args.messages * args.latency_ms / 1000 / args.concurrency
    server, url, _ = start_sandbox(args.latency_ms)
    try:
        rows = []
        for round_number in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "project"
                write_project(root, args.messages, args.concurrency)
                total, send_phase, sent = run_commbox(root, url)
            bare, ok = run_bare(url, args.messages, args.concurrency)
            rows.append((total, send_phase, bare))
            print(
                f"round {round_number + 1}: commbox-yaml apply {total:.2f} s "
                f"(send phase {send_phase:.2f} s, {sent} sent); bare urllib3 {bare:.2f} s "
                f"({ok} ok)"
            )
        best = [min(column) for column in zip(*rows, strict=True)]
        print(
            f"\n{args.messages} messages, {args.latency_ms} ms latency, concurrency "
            f"{args.concurrency}; latency floor {floor:.2f} s"
        )
        print(
            f"best of {args.rounds}: apply {best[0]:.2f} s, send phase {best[1]:.2f} s, "
            f"bare {best[2]:.2f} s"
        )
        print(f"ratio apply/bare {best[0] / best[2]:.2f}, send phase/bare {best[1] / best[2]:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
