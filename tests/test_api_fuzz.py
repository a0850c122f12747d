"""Schemathesis over /api against a live server: generated requests to every operation, each response
checked against the document (no 5xx, documented status codes, media types, headers and schemas).

Bounded: a few examples per operation over HTTP on loopback. The failure classes left out on
purpose are listed in README ("Clients and keys", OpenAPI): a request that the schema allows but the
server finds wrong on its meaning is a 400 (positive data acceptance), and a ``limit`` above the
maximum is served as the maximum (negative data rejection).
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.live import live_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# the processes' and the session's writes are exercised elsewhere; here every read
READS = "GET"
EXAMPLES = 5  # per operation: ~45 operations, a few hundred requests


@pytest.fixture(scope="module")
def served(sample_dir):
    """A keyed live server over the sample store: (URL, key, HTTP session sending the key)."""
    config = Settings(data_dir=sample_dir, edition="classified")
    key = issue_key(config, "api fuzz")
    with live_server(config) as url:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        yield url, session


def _operations(url: str, session: requests.Session) -> list:
    """Every GET operation of the served document."""
    schema = schemathesis.openapi.from_dict(session.get(f"{url}/api", timeout=30).json())
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.method.upper() == READS]


def test_every_read_answers_as_documented(served):
    url, session = served
    operations = _operations(url, session)
    assert len(operations) > 30
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(base_url=url, session=session, checks=CHECKS, timeout=30)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
