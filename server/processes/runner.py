"""Running ``site-compliance`` synchronously or as a job, and the job documents (statusInfo).

Every execution becomes a row of the store's jobs table (``server.stores.jobs``), which is also the
audit of executions. Asynchronous runs are tasks of the worker that accepted them; their status and
results live in the store, so any replica answers ``/jobs/{id}``. Dismissing a job (``DELETE``) cancels
its run when this worker runs it; a run on another replica goes on, but what it writes at the end is
ignored (the store never changes a dismissed job).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import shapely

from server.errors import OGCError, Unavailable
from server.observability import metrics
from server.policy import Policy
from server.processes.compliance import site_compliance
from server.processes.description import PROCESS_ID
from server.processes.inputs import SiteInputs
from server.processes.rules import ComplianceConfig
from server.sources import Source
from server.stores.jobs import STALE_GRACE_S, Job, PostgresJobs, SqliteJobs, now_text

log = logging.getLogger("onemap.processes")


@dataclass
class Runner:
    """The process configuration, the jobs table and the tasks this worker runs."""

    config: ComplianceConfig
    jobs: SqliteJobs | PostgresJobs
    source: Source
    edition: str
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)

    async def store(self, fn, *args, **kwargs):
        """A jobs-table call in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    def new_job(self, policy: Policy, inputs: SiteInputs, status: str) -> Job:
        """A job record for an execution by ``policy``'s caller."""
        now = now_text()
        digest = hashlib.sha256(shapely.to_wkb(shapely.normalize(inputs.site.geometry))).hexdigest()[:32]
        return Job(id=uuid.uuid4().hex, owner=policy.caller, edition=self.edition, process=PROCESS_ID,
                   status=status, created=now, updated=now, geometry_hash=digest,
                   area_m2=round(inputs.area_m2, 2), vertices=inputs.vertices, planned_use=inputs.planned_use)

    async def run(self, policy: Policy, inputs: SiteInputs, base: str, lang: str) -> dict[str, Any]:
        """The report, cancelled at the configured timeout (503)."""
        try:
            return await asyncio.wait_for(site_compliance(self.source, policy, self.config, inputs, base, lang),
                                          self.config.limits.timeout_s)
        except TimeoutError:
            raise Unavailable(f"The process took longer than {self.config.limits.timeout_s:g} s and was "
                              "cancelled; run it asynchronously or with a smaller site.") from None

    async def execute_sync(self, policy: Policy, inputs: SiteInputs, base: str, lang: str) -> dict[str, Any]:
        """Run now and record the execution once it ended (failed ones too): one write per execution."""
        job = self.new_job(policy, inputs, "running")
        try:
            report = await self.run(policy, inputs, base, lang)
        except OGCError as exc:
            job.status, job.message = "failed", exc.description
            raise
        except Exception:
            job.status, job.message = "failed", "An internal error occurred."
            raise
        else:
            job.status, job.verdict = "successful", report["verdict"]
            job.unavailable = ",".join(report["unavailable_layers"])
        finally:
            job.finished = job.updated = now_text()
            metrics.executed(job.process, "sync", "cancelled" if job.status == "running" else job.status)
            await self.store(self.jobs.add, job)
        return report

    async def execute_async(self, policy: Policy, inputs: SiteInputs, base: str, lang: str) -> Job:
        """Record an accepted job and start it in this worker."""
        job = self.new_job(policy, inputs, "accepted")
        await self.store(self.jobs.add, job)
        task = asyncio.create_task(self._background(job.id, policy, inputs, base, lang))
        self.tasks[job.id] = task
        task.add_done_callback(lambda done: self._ended(job.id, done))
        return job

    def _ended(self, job_id: str, task: asyncio.Task) -> None:
        """Forget an ended run and count it (cancelled: dismissed, even before it started)."""
        self.tasks.pop(job_id, None)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # the failure could not even be recorded (the job store is unreachable)
            log.warning("job %s ended unrecorded: %s", job_id, error)
        outcome = "cancelled" if task.cancelled() else "failed" if error is not None else task.result()
        metrics.executed(PROCESS_ID, "async", outcome)

    async def _background(self, job_id: str, policy: Policy, inputs: SiteInputs, base: str, lang: str) -> str:
        """Run the job and record how it ended; its outcome (a cancelled run is counted by ``_ended``)."""
        try:
            await self.store(self.jobs.update, job_id, status="running")
            report = await self.run(policy, inputs, base, lang)
            await self._finished(job_id, report)
            return "successful"
        except OGCError as exc:
            await self.store(self.jobs.update, job_id, status="failed", message=exc.description, finished=now_text())
        except Exception:  # a job must end failed, never stay running
            log.exception("job %s failed", job_id)
            await self.store(self.jobs.update, job_id, status="failed", message="An internal error occurred.",
                             finished=now_text())
        return "failed"

    async def queue(self) -> dict[str, int]:
        """The store's accepted and running jobs by status, of every worker and replica; a job not updated
        for longer than the timeout and the grace is not counted (its server stopped: ``Job.stale``)."""
        horizon = dt.timedelta(seconds=self.config.limits.timeout_s + STALE_GRACE_S)
        since = (dt.datetime.now(dt.UTC) - horizon).isoformat(timespec="milliseconds")
        return await self.store(self.jobs.open_counts, since)

    async def _finished(self, job_id: str, report: dict[str, Any]) -> None:
        await self.store(self.jobs.update, job_id, status="successful", finished=now_text(),
                         verdict=report["verdict"], unavailable=",".join(report["unavailable_layers"]),
                         result=orjson.dumps(report).decode())

    async def job(self, policy: Policy, job_id: str) -> Job | None:
        """The caller's job, marked failed first when its server stopped before it finished."""
        found = await self.store(self.jobs.get, job_id[:64], policy.caller, self.edition)
        if found is not None and found.stale(dt.datetime.now(dt.UTC), self.config.limits.timeout_s):
            message = "The server running this job stopped before it finished; execute it again."
            await self.store(self.jobs.update, found.id, status="failed", message=message, finished=now_text())
            found.status, found.message = "failed", message
        return found


    async def dismiss(self, policy: Policy, job_id: str) -> Job | None:
        """Dismiss the caller's job: its run cancelled (when this worker runs it), its results removed."""
        found = await self.job(policy, job_id)
        if found is None or found.status == "dismissed":
            return found
        task = self.tasks.pop(found.id, None)
        if task is not None:
            task.cancel()
        message = "Dismissed by its owner; its results were removed."
        await self.store(self.jobs.dismiss, found.id, message)
        found.status, found.message, found.result = "dismissed", message, None
        found.updated = now_text()
        found.finished = found.finished or found.updated
        return found


def status_info(job: Job, base: str) -> dict[str, Any]:
    """The OGC statusInfo document of a job."""
    url = f"{base}/jobs/{job.id}"
    doc: dict[str, Any] = {
        "processID": job.process, "type": "process", "jobID": job.id, "status": job.status,
        "message": job.message or job.status, "created": job.created, "updated": job.updated,
        "links": [{"href": url, "rel": "self", "type": "application/json", "title": "Job status"}],
    }
    if job.finished:
        doc["finished"] = job.finished
    if job.status == "successful":
        doc["progress"] = 100
        doc["links"].append({"href": f"{url}/results", "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                             "type": "application/json", "title": "Results"})
    return doc
