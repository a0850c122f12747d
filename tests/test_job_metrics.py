"""The job queue in /metrics on both job stores: ``onemap_jobs{status}`` read from the store when scraped
(jobs another replica wrote count; a stale one does not) and ``onemap_process_executions_total`` by
process, mode and outcome."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.stores import open_store
from server.stores.jobs import Job, now_text
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.test_processes import EXECUTE, SITE, wait_for
from tests.test_processes_dismiss import BIG

PROCESS = "site-compliance"


def scrape(client: TestClient) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """The job gauges by status and the execution counters by (mode, outcome) of this process."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    jobs: dict[str, float] = {}
    runs: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            if s.name == "onemap_jobs":
                jobs[s.labels["status"]] = s.value
            elif s.name == "onemap_process_executions_total" and s.labels["process"] == PROCESS:
                runs[(s.labels["mode"], s.labels["outcome"])] = s.value
    return jobs, runs


def other_replica_job(status: str, updated: str) -> Job:
    return Job(id=uuid.uuid4().hex, owner="elsewhere", edition="public", process=PROCESS, status=status,
               created=updated, updated=updated)


def test_job_gauges_come_from_the_store_and_executions_are_counted(backend, request):
    settings = settings_for(backend, request, metrics="open")
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "job metrics")}) as c:
        jobs, runs = scrape(c)
        assert set(jobs) == {"accepted", "running"}
        store = open_store(settings).jobs()
        long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat(timespec="milliseconds")
        for status, updated in (("accepted", now_text()), ("accepted", now_text()), ("running", now_text()),
                                ("running", long_ago), ("successful", now_text())):
            store.add(other_replica_job(status, updated))  # as another replica or worker records them
        queued, _ = scrape(c)
        assert queued == {"accepted": jobs["accepted"] + 2, "running": jobs["running"] + 1}  # not the stale one

        running = c.post(EXECUTE, json={"inputs": {"geometry": BIG}}, headers={"Prefer": "respond-async"}).json()
        during, _ = scrape(c)
        assert during["accepted"] + during["running"] == queued["accepted"] + queued["running"] + 1
        assert c.delete(f"/jobs/{running['jobID']}").json()["status"] == "dismissed"
        done = c.post(EXECUTE, json={"inputs": {"geometry": SITE}}, headers={"Prefer": "respond-async"}).json()
        assert wait_for(c, f"/jobs/{done['jobID']}")["status"] == "successful"
        assert c.post(EXECUTE, json={"inputs": {"geometry": SITE}}).status_code == 200
        assert c.post(EXECUTE, json={"inputs": {"geometry": BIG}}).status_code == 413  # refused: never ran
        # the dismissed run counts as cancelled, or as successful when it finished before the DELETE came
        def counts(found: dict[tuple[str, str], float]) -> tuple[float, float]:
            return (found.get(("async", "cancelled"), 0) + found.get(("async", "successful"), 0),
                    found.get(("sync", "successful"), 0))

        expected = (counts(runs)[0] + 2, counts(runs)[1] + 1)
        deadline = time.monotonic() + 10  # a dismissed run is counted when its task has unwound
        while True:
            after, counted = scrape(c)
            if counts(counted) == expected and after == queued or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert after == queued  # the two runs ended
        assert counts(counted) == expected
