"""OGC API Processes Part 1: /processes, /processes/{id}, execution (sync and ``Prefer: respond-async``),
/jobs, /jobs/{id} and /jobs/{id}/results, serving the ``site-compliance`` process.

The process model is this package's own (``description``, ``runner``): pygeoapi's processor plugins
bring pygeoapi's configuration, manager and TinyDB job store with them, while jobs here must live in
the store's admin part under the caller's policy (see the README).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import Response

from server.catalog import VectorCollection
from server.errors import InvalidParameter, NotFound, OGCError, Unavailable
from server.html import html_alternative
from server.policy import policy_of
from server.processes.description import OUTPUT_ID, PROCESS_ID, description, summary
from server.processes.inputs import SiteInputs, parse_inputs
from server.processes.rules import load_compliance
from server.processes.runner import Runner, status_info
from server.web import JSON, base_url, json_response, language, link

router = APIRouter(tags=["Processes"])
log = logging.getLogger("onemap.processes")

_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
async def job_queue(state: Any) -> dict[str, int]:
    """The store's accepted and running jobs (``/metrics``, ``onemap_jobs``)."""
    return await runner_of(state).queue()


JOB_QUEUE = job_queue  # read by the metrics when scraped (``server.observability.middleware``)
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
]
JOB_LIST_MAX = 100


class NoSuchProcess(NotFound):
    code = _EXC + "no-such-process"


class NoSuchJob(NotFound):
    code = _EXC + "no-such-job"


class ResultNotReady(NotFound):
    code = _EXC + "result-not-ready"


class JobFailed(OGCError):
    """The results of a job that failed: its error."""

    status = 422
    code = "JobFailed"


class TooLarge(OGCError):
    """A site over the synchronous (or asynchronous) limits."""

    status = 413
    code = "PayloadTooLarge"


def landing_links(base: str) -> list[dict[str, Any]]:
    """The processes and jobs lists."""
    return [
        link(f"{base}/processes", "http://www.opengis.net/def/rel/ogc/1.0/processes", JSON, "Processes"),
        link(f"{base}/jobs", "http://www.opengis.net/def/rel/ogc/1.0/job-list", JSON, "Jobs"),
    ]


def _runner(request: Request) -> Runner:
    """This app's runner, made on first use (the rules file is checked then)."""
    return runner_of(request.app.state)


def runner_of(state: Any) -> Runner:
    """The runner of the app whose state is ``state``, made on first use (``Unavailable`` when the rules
    file is not valid)."""
    runner = getattr(state, "process_runner", None)
    if runner is None:
        vectors = {c.id for c in state.catalog.of_kind(VectorCollection)}
        try:
            config = load_compliance(state.settings.config_dir, vectors)
        except ValueError as exc:
            log.error("site-compliance configuration: %s", exc)
            raise Unavailable("The process configuration is not valid; the server log says why.", 60) from None
        jobs = state.store.jobs()
        jobs.setup()
        runner = Runner(config, jobs, state.source, state.policy.edition)
        state.process_runner = runner
    return runner


def _process(process_id: str) -> None:
    if process_id != PROCESS_ID:
        raise NoSuchProcess(f"Process '{process_id[:100]}' does not exist.")


@router.get("/processes", summary="The processes")
@html_alternative("processes.html")
async def processes(request: Request):
    """The process list."""
    base = base_url(request)
    return json_response({"processes": [summary(base, language(request))],
                          "links": [link(f"{base}/processes", "self", JSON, "Processes")]})


@router.get("/processes/{processId}", summary="A process description")
@html_alternative("process.html")
async def process(request: Request, processId: str):  # noqa: N803 - the OGC path parameter name
    """The process description (inputs, outputs, job control options)."""
    _process(processId)
    return json_response(description(base_url(request), language(request)))


def _check_outputs(body: dict[str, Any]) -> bool:
    """Whether the response is a results document (``response: document``); unknown outputs are a 400."""
    outputs = body.get("outputs") or {}
    if not isinstance(outputs, dict) or set(outputs) - {OUTPUT_ID}:
        names = ", ".join(repr(n) for n in (set(outputs) - {OUTPUT_ID} if isinstance(outputs, dict) else ()))
        raise InvalidParameter(f"Unknown output {names or 'list'}; the process has one output, '{OUTPUT_ID}'.")
    mode = body.get("response", "raw")
    if mode not in ("raw", "document"):
        raise InvalidParameter("'response' must be 'raw' or 'document'.")
    return mode == "document"


def _check_size(runner: Runner, inputs: SiteInputs, asynchronous: bool) -> None:
    limits = runner.config.limits
    if asynchronous:
        if inputs.area_m2 > limits.max_area_m2:
            raise TooLarge(f"The site covers {inputs.area_m2:.0f} m², more than the {limits.max_area_m2:.0f} m² "
                           "a job may cover.")
        return
    if inputs.area_m2 > limits.sync_max_area_m2 or inputs.vertices > limits.max_vertices:
        raise TooLarge(f"The site ({inputs.area_m2:.0f} m², {inputs.vertices} vertices) is over the synchronous "
                       f"limits ({limits.sync_max_area_m2:.0f} m², {limits.max_vertices} vertices); execute it "
                       "asynchronously with the header 'Prefer: respond-async'.")


@router.post("/processes/{processId}/execution", summary="Execute a process")
async def execute(request: Request, processId: str,  # noqa: N803 - the OGC path parameter name
                  body: Annotated[dict[str, Any], Body(description="An execute request: inputs, outputs, response")],
                  prefer: Annotated[str | None, Header(description="respond-async for a job")] = None):
    """Run synchronously (200, the report) or, with ``Prefer: respond-async``, as a job (201 + Location)."""
    _process(processId)
    runner = _runner(request)
    document = _check_outputs(body)
    inputs = await anyio.to_thread.run_sync(parse_inputs, body.get("inputs"))
    asynchronous = "respond-async" in (prefer or "").lower()
    _check_size(runner, inputs, asynchronous)
    policy, base, lang = policy_of(request), base_url(request), language(request)
    if asynchronous:
        job = await runner.execute_async(policy, inputs, base, lang)
        headers = {"Location": f"{base}/jobs/{job.id}", "Preference-Applied": "respond-async"}
        return json_response(status_info(job, base), status_code=201, headers=headers)
    report = await runner.execute_sync(policy, inputs, base, lang)
    return json_response({OUTPUT_ID: report} if document else report)


@router.get("/jobs", summary="The caller's jobs")
@html_alternative("jobs.html")
async def jobs(request: Request):
    """The caller's latest jobs on this edition, newest first."""
    runner, base = _runner(request), base_url(request)
    policy = policy_of(request)
    # anonymous callers share one identity: their jobs are reached only by their unguessable ids
    found = [] if policy.key_id is None else await runner.store(runner.jobs.list, policy.caller, runner.edition,
                                                                 JOB_LIST_MAX)
    return json_response({"jobs": [status_info(j, base) for j in found],
                          "links": [link(f"{base}/jobs", "self", JSON, "Jobs")]})


async def _job(request: Request, job_id: str):
    found = await _runner(request).job(policy_of(request), job_id)
    if found is None:
        raise NoSuchJob(f"Job '{job_id[:64]}' does not exist.")
    return found


@router.get("/jobs/{jobId}", summary="A job's status")
@html_alternative("job.html")
async def job(request: Request, jobId: str):  # noqa: N803 - the OGC path parameter name
    """The job's statusInfo (another caller's job does not exist for this one)."""
    return json_response(status_info(await _job(request, jobId), base_url(request)))


@router.delete("/jobs/{jobId}", summary="Dismiss a job")
async def dismiss(request: Request, jobId: str):  # noqa: N803 - the OGC path parameter name
    """Cancel a running job or remove a finished job's results; its status becomes ``dismissed``."""
    found = await _runner(request).dismiss(policy_of(request), jobId)
    if found is None:
        raise NoSuchJob(f"Job '{jobId[:64]}' does not exist.")
    return json_response(status_info(found, base_url(request)))


@router.get("/jobs/{jobId}/results", summary="A job's results")
async def results(request: Request, jobId: str):  # noqa: N803 - the OGC path parameter name
    """The report of a successful job; a failed job's error; 404 result-not-ready before."""
    found = await _job(request, jobId)
    if found.status == "dismissed":
        raise NoSuchJob(f"Job '{found.id}' was dismissed; its results were removed.")
    if found.status == "failed":
        raise JobFailed(f"The job failed: {found.message}")
    if found.status != "successful" or found.result is None:
        raise ResultNotReady(f"Job '{found.id}' is {found.status}; its results are not ready.")
    return Response(found.result.encode(), media_type=JSON)
