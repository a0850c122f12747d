"""Dismissing a job (OGC API Processes, ``DELETE /jobs/{id}``) on both job stores: a running job is
cancelled, a finished one loses its results, the row stays as the audit, and another caller's job
cannot be touched."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from server.app import create_app
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.test_processes import EXECUTE, SITE, _all_jobs, box, wait_for

BIG = box(121.50, 29.80, 121.53, 29.83)  # about 8.7 km²: a job that runs for a while


def test_dismiss_cancels_a_running_job_and_removes_finished_results(backend, request):
    settings = settings_for(backend, request)
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": issue_key(settings, "owner")}) as a:
        other = TestClient(app, headers={"X-API-Key": issue_key(settings, "other")})
        running = a.post(EXECUTE, json={"inputs": {"geometry": BIG}}, headers={"Prefer": "respond-async"}).json()
        task = app.state.process_runner.tasks[running["jobID"]]
        gone = a.delete(f"/jobs/{running['jobID']}")
        assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
        time.sleep(0.2)
        assert task.cancelled() and running["jobID"] not in app.state.process_runner.tasks
        assert a.get(f"/jobs/{running['jobID']}").json()["status"] == "dismissed"

        done = a.post(EXECUTE, json={"inputs": {"geometry": SITE}}, headers={"Prefer": "respond-async"}).json()
        url = f"/jobs/{done['jobID']}"
        assert wait_for(a, url)["status"] == "successful" and a.get(url + "/results").status_code == 200
        refused = other.delete(url)  # another caller's job does not exist for it
        assert refused.status_code == 404 and refused.json()["code"].endswith("no-such-job")
        assert a.get(url + "/results").status_code == 200
        assert a.delete(url).json()["status"] == "dismissed"
        results = a.get(url + "/results")
        assert results.status_code == 404 and "dismissed" in results.json()["description"]
        assert a.delete(url).json()["status"] == "dismissed"  # dismissing again changes nothing
        unknown = a.delete("/jobs/" + "0" * 32)
        assert unknown.status_code == 404 and unknown.json()["code"].endswith("no-such-job")
        # the store keeps both rows (the audit) without results; the cancelled run wrote nothing after
        rows = {j.id: j for j in _all_jobs(settings)}
        for job_id in (running["jobID"], done["jobID"]):
            assert rows[job_id].status == "dismissed" and rows[job_id].result is None and rows[job_id].finished
        assert rows[done["jobID"]].verdict  # what was audited stays
        conformance = a.get("/conformance").json()["conformsTo"]
        assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss" in conformance


def test_a_run_ending_after_its_dismissal_writes_nothing(backend, request):
    """A run on another replica cannot be cancelled from here: the store ignores what it writes later."""
    settings = settings_for(backend, request)
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": issue_key(settings, "replica")}) as a:
        done = a.post(EXECUTE, json={"inputs": {"geometry": SITE}}, headers={"Prefer": "respond-async"}).json()
        wait_for(a, f"/jobs/{done['jobID']}")
        jobs = app.state.process_runner.jobs
        jobs.update(done["jobID"], status="running", result=None)  # as if it were still running elsewhere
        assert a.delete(f"/jobs/{done['jobID']}").json()["status"] == "dismissed"
        jobs.update(done["jobID"], status="successful", result='{"verdict": "late"}')
        assert a.get(f"/jobs/{done['jobID']}").json()["status"] == "dismissed"
        assert a.get(f"/jobs/{done['jobID']}/results").status_code == 404
