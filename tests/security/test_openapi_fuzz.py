"""Property-based fuzzing of every service's OpenAPI with valid admin credentials: no request,
however odd, gets a 500, and every documented response matches its schema and content type.

Each service runs as a real process on the test database; schemathesis derives requests from
the service's own /openapi.json (bounded, derandomized examples per operation).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from tests.security.routes import SERVICES
from tests.security.servers import ServiceProcess, start_service

pytestmark = pytest.mark.slow

# FastAPI publishes OpenAPI 3.1; schemathesis 3.x supports it behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()

MAX_EXAMPLES = 25


@pytest.fixture(scope="session")
def running_services(cloud_api_is_the_simulator: None) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for service in SERVICES:
            started[service] = start_service(service)
        yield started
    finally:
        for handle in started.values():
            handle.stop()


@pytest.fixture(params=SERVICES)
def service_schema(request: pytest.FixtureRequest, running_services: dict[str, ServiceProcess]):  # type: ignore[no-untyped-def]
    handle = running_services[request.param]
    # Credentials are the admin's, given per call; generated API-key headers would only test 401s.
    config = schemathesis.GenerationConfig(with_security_parameters=False)
    return schemathesis.from_uri(f"{handle.url}/openapi.json", base_url=handle.url, generation_config=config)


schema = schemathesis.from_pytest_fixture("service_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
def test_no_server_errors_and_responses_match_the_schema(case, admin) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers=admin.headers, timeout=30)
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance, content_type_conformance))
