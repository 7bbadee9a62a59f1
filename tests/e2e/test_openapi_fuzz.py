"""The served OpenAPI document and the answers agree: schemathesis generates requests
from the document of a real embedded Dispatch (authentication off) and checks every
answer — no 5xx, every body matching its declared schema, every status declared; and
requests that break the document (negative mode: wrong types, missing fields, values out
of range) on every operation with a body or typed query to break — refused, never a 5xx.

Bounded: derandomized (a fixed seed), a few examples per operation, so a run is
repeatable and takes under a minute here; the whole test has a hard time limit."""

from __future__ import annotations

import os

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, settings
from schemathesis.checks import (not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from api.embedded import start_embedded

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
#: examples per operation; DISPATCH_FUZZ_EXAMPLES=200 for a longer hunt by hand
EXAMPLES = int(os.environ.get("DISPATCH_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0, auth="off")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    schema.config.base_url = fuzzed_server.url
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(240)  # the whole document: a hard budget on a loaded machine
@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document(case):
    case.call_and_validate(checks=CHECKS)


@pytest.fixture(scope="module")
def malformed_schema(fuzzed_server):
    """The same document, generating requests that break it (wrong types, missing
    required fields, values out of range): refused, never a 5xx."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    schema.config.base_url = fuzzed_server.url
    schema.config.generation.update(modes=[GenerationMode.NEGATIVE])
    return schema


#: bodies read raw (CloudEvents, webhooks): the document declares no schema to break
RAW = {"POST /v1/event/", "POST /v1/event/ingest", "POST /v1/event/ingest/{driver_name}"}
#: operations that take no body at all
BODILESS = {"POST /v1/runs/{run_name}/redrive"}
#: lists whose query parameters are typed (limit, since)
TYPED_QUERIES = {"GET /v1/runs", "GET /v1/event/"}


def breakable(ctx) -> bool:
    label = ctx.operation.label
    return (label.split(" ")[0] in ("POST", "PUT") and label not in RAW | BODILESS
            or label in TYPED_QUERIES)


# only operations with something to break: a JSON body or a typed query parameter
negative = schemathesis.pytest.from_fixture("malformed_schema").include(func=breakable)


@pytest.mark.timeout(240)
@negative.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_malformed_requests_are_refused_never_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
