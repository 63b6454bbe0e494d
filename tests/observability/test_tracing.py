"""One trace spans the API request, the Dramatiq actor and the Cloud API call it makes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from herald.api import SessionDep, create_service_app
from herald.contracts import Contract, Payload, Queue
from herald.observability import tracing
from herald.queue import actor, enqueue
from tests.fixtures.queue_worker import in_process_worker
from tests.fixtures.simulator import SimulatorHandle, start_simulator

pytestmark = pytest.mark.slow

CUSTOMER = "15550001234"


class Hello(Payload):
    base_url: str
    to: str


HELLO = Contract("observability_test.send_hello", Queue.ANALYTICS, Hello)


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    handle = start_simulator()
    yield handle
    handle.stop()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("trace-test", exporter=exporter)
    yield exporter
    tracing.disable_tracing()


def _app(base_url: str):  # type: ignore[no-untyped-def]
    router = APIRouter()

    @router.post("/api/v1/hello", status_code=202)
    async def say_hello(session: SessionDep) -> dict[str, str]:
        # Inside the request transaction: the message leaves after commit, still in this trace.
        enqueue(HELLO, Hello(base_url=base_url, to=CUSTOMER))
        return {"status": "queued"}

    return create_service_app("trace-test", [router])


def _declare_actor(simulator: SimulatorHandle) -> None:
    @actor(HELLO, max_retries=0)
    async def send_hello(payload: Hello) -> None:
        async with simulator.client(base_url=payload.base_url) as client:
            await client.send_text(payload.to, "hello")


def _by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind, name_part: str) -> ReadableSpan:
    matching = [span for span in finished if span.kind == kind and name_part in span.name]
    assert matching, f"no {kind} span named like {name_part!r} in {[(s.kind, s.name) for s in finished]}"
    return matching[0]


def _ancestors(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> list[int]:
    by_id = {s.context.span_id: s for s in finished}
    chain = []
    parent = span.parent
    while parent is not None:
        chain.append(parent.span_id)
        parent = by_id[parent.span_id].parent if parent.span_id in by_id else None
    return chain


async def test_request_actor_and_cloud_api_call_share_one_trace(
    spans: InMemorySpanExporter, simulator: SimulatorHandle, dispose_engines: None
) -> None:
    simulator.reset()
    simulator.inbound(CUSTOMER, text="hi")  # opens the 24-hour window for free text
    _declare_actor(simulator)
    app = _app(simulator.url)
    with in_process_worker(Queue.ANALYTICS):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            response = await client.post("/api/v1/hello")
        assert response.status_code == 202

    finished = spans.get_finished_spans()
    request = _by_kind(finished, SpanKind.SERVER, "/api/v1/hello")
    consumer = _by_kind(finished, SpanKind.CONSUMER, HELLO.actor_name)
    cloud_calls = [
        span
        for span in finished
        if span.kind == SpanKind.CLIENT and span.parent is not None and span.parent.span_id == consumer.context.span_id
    ]
    assert len(cloud_calls) == 1, [(s.kind, s.name) for s in finished]
    cloud_call = cloud_calls[0]

    trace_id = request.context.trace_id
    assert consumer.context.trace_id == trace_id
    assert cloud_call.context.trace_id == trace_id
    assert request.context.span_id in _ancestors(consumer, finished)
    assert str(cloud_call.attributes.get("url.full") or cloud_call.attributes.get("http.url")).startswith(simulator.url)
    assert len(simulator.messages()) == 1
    # Redis commands appear inside the request (the enqueue), never as traces of their own.
    redis_spans = [span for span in finished if span.attributes and span.attributes.get("db.system") == "redis"]
    assert redis_spans and all(span.parent is not None for span in redis_spans)
