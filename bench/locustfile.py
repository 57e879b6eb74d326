"""Locust users for the load test of ``POST /score`` (run by ``bench/serve_load.py``, never imported
by the service): each user sends one lead per request, cycling through prepared bodies.

Read from the environment (the driver sets them):

- ``LEADSCORE_BENCH_BODIES``: a file with one JSON request body per line;
- ``LEADSCORE_BENCH_KEY``: the API key (sent as ``Authorization: Bearer``);
- ``LEADSCORE_BENCH_RATE``: requests per second per user (``constant_throughput``); 0 or unset:
  no wait, a closed loop;
- ``LEADSCORE_BENCH_TIMEOUT``: seconds before a request counts as timed out (default 10);
- ``LEADSCORE_BENCH_HONOUR_RETRY_AFTER``: ``1``: after a 429/503 a user waits the ``Retry-After``
  seconds, as a well-behaved client would; otherwise it sends its next request at once;
- ``LEADSCORE_BENCH_OUT``: where to write, at exit, the count of every status code (and of every
  connection error by type), latencies by status, 200s answered by the SLA rules, and 429/503
  answers without ``Retry-After``.

Locust's own statistics mark 429/503 as failures named "shed <status>"; the driver judges the run
by the counts written here.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict

import gevent
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner
from locust.user.wait_time import constant, constant_throughput

BODIES = [line.encode() for line in open(os.environ["LEADSCORE_BENCH_BODIES"]).read().splitlines() if line.strip()]
KEY = os.environ.get("LEADSCORE_BENCH_KEY", "")
RATE = float(os.environ.get("LEADSCORE_BENCH_RATE") or 0)
TIMEOUT = float(os.environ.get("LEADSCORE_BENCH_TIMEOUT") or 10)
HONOUR_RETRY_AFTER = os.environ.get("LEADSCORE_BENCH_HONOUR_RETRY_AFTER") == "1"
SHED = (429, 503)

statuses: Counter = Counter()
latencies: dict[str, list[float]] = defaultdict(list)
shed_without_retry_after = 0
rules_answers = 0
window = {"start": None, "stop": None}


class ScoringClient(FastHttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT

    def on_start(self) -> None:
        self.bodies = itertools.cycle(random.sample(BODIES, len(BODIES)))
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}

    @task
    def score(self) -> None:
        global shed_without_retry_after, rules_answers
        with self.client.post("/score", data=next(self.bodies), headers=self.headers, name="/score",
                              catch_response=True) as resp:
            code = resp.status_code or 0
            retry_after = None
            if code == 0:
                return  # a connection error or timeout: locust records it as a failure
            if code == 200:
                if resp.request_meta.get("exception") is not None:  # the body could not be read
                    resp.failure(f"200 without a readable body: {resp.request_meta['exception']!r}")
                    return
                if b'"scorer":"rules"' in (resp.content or b""):
                    rules_answers += 1
                resp.success()
            elif code in SHED:
                retry_after = resp.headers.get("Retry-After")
                if not retry_after:
                    shed_without_retry_after += 1
                resp.failure(f"shed {code}")
            else:
                resp.failure(f"status {code}: {(resp.text or '')[:200]}")
        if HONOUR_RETRY_AFTER and code in SHED and retry_after:
            try:
                gevent.sleep(float(retry_after))
            except ValueError:  # an HTTP date instead of seconds: wait a second
                gevent.sleep(1.0)


@events.request.add_listener
def count(request_type, name, response_time, response_length, response=None, exception=None, **kw) -> None:
    code = getattr(response, "status_code", 0) or 0
    if not code:  # a connection error or timeout has no status: counted by its type
        label = f"error {type(getattr(response, 'error', None) or exception).__name__}"
    elif code == 200 and exception is not None:
        label = "200 failed"
    else:
        label = str(code)
    statuses[label] += 1
    latencies[label].append(response_time)


@events.test_start.add_listener
def started(**kw) -> None:
    window["start"] = time.time()


@events.test_stop.add_listener
def stopped(**kw) -> None:
    window["stop"] = time.time()


@events.quitting.add_listener
def write_counts(environment, **kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    out = os.environ.get("LEADSCORE_BENCH_OUT")
    if not out:
        return
    with open(out, "w") as f:
        json.dump({"statuses": dict(statuses), "latencies_ms": {k: v for k, v in latencies.items()},
                   "shed_without_retry_after": shed_without_retry_after, "rules_answers": rules_answers,
                   "run_s": (window["stop"] or time.time()) - (window["start"] or time.time()),
                   "rate_per_user": RATE, "honour_retry_after": HONOUR_RETRY_AFTER,
                   "timeout_s": TIMEOUT}, f)
