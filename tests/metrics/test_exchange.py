"""The exchange is the request's record: what passed through it, settled into one outcome."""

from __future__ import annotations

import pytest
from starlette.types import Message

from ouro_obs.asgi.exchange import Exchange
from ouro_obs.asgi.record import CLIENT_CLOSED_REQUEST, Outcome, RequestRecord
from tests.metrics.asgi import http_scope

START: Message = {"type": "http.response.start", "status": 201, "headers": []}
BODY_PART: Message = {"type": "http.response.body", "body": b"abc", "more_body": True}
LAST_BODY: Message = {"type": "http.response.body", "body": b"de"}


class Handed:
    """The server side of an exchange: what the client got, and what the pipeline got."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.records: list[RequestRecord] = []
        self.incoming: list[Message] = [
            {"type": "http.request", "body": b"12", "more_body": True},
            {"type": "http.request", "body": b"345"},
            {"type": "http.disconnect"},
        ]

    async def receive(self) -> Message:
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def finish(self, exchange: Exchange) -> None:
        self.records.append(exchange.settle("/things/{id}"))

    def exchange(self, header: tuple[bytes, bytes] | None = None) -> Exchange:
        exchange = Exchange(
            http_scope("/things/1"), self.receive, self.send, "GET", "", self.finish
        )
        exchange.response_header = header
        return exchange


async def test_a_completed_response_is_recorded_once_at_its_last_byte() -> None:
    handed = Handed()
    exchange = handed.exchange()
    await exchange.receive()
    await exchange.receive()
    await exchange.send(START)
    await exchange.send(BODY_PART)
    assert handed.records == []
    await exchange.send(LAST_BODY)
    (record,) = handed.records
    assert record is exchange
    assert (record.outcome, record.status, record.status_sent) == (Outcome.COMPLETED, 201, 201)
    assert (record.request_bytes, record.response_bytes) == (5, 5)
    assert record.route == "/things/{id}"
    assert record.end_time >= record.start_time
    assert exchange.finished


async def test_a_client_that_leaves_before_the_last_byte_is_a_499_with_the_status_it_got() -> None:
    handed = Handed()
    exchange = handed.exchange()
    await exchange.send(START)
    for _ in range(3):
        await exchange.receive()  # the third message is the disconnect
    exchange.finish()  # the app returned
    (record,) = handed.records
    assert (record.outcome, record.status) == (Outcome.CLIENT_GONE, CLIENT_CLOSED_REQUEST)
    assert record.response_status == 201  # the span names what the client was sent


async def test_a_client_that_leaves_before_any_answer_got_no_status() -> None:
    handed = Handed()
    exchange = handed.exchange()
    exchange.cancelled()
    exchange.finish()
    (record,) = handed.records
    assert (record.outcome, record.status, record.response_status) == (
        Outcome.CLIENT_GONE,
        499,
        None,
    )


async def test_an_app_that_raised_before_answering_is_a_500() -> None:
    handed = Handed()
    exchange = handed.exchange()
    exchange.error = KeyError("missing")
    exchange.finish()
    (record,) = handed.records
    assert (record.outcome, record.status, record.status_sent) == (Outcome.APP_RAISED, 500, None)
    assert record.response_status == 500
    assert record.error_type == "KeyError"


async def test_an_app_that_returned_without_answering_is_a_500() -> None:
    handed = Handed()
    exchange = handed.exchange()
    exchange.finish()
    (record,) = handed.records
    assert (record.outcome, record.status, record.error_type) == (Outcome.NO_RESPONSE, 500, None)


async def test_a_send_the_socket_refuses_marks_the_client_gone() -> None:
    handed = Handed()

    async def broken(message: Message) -> None:
        raise OSError("connection reset by peer")

    exchange = Exchange(http_scope(), handed.receive, broken, "GET", "", handed.finish)
    with pytest.raises(OSError, match="reset"):
        await exchange.send(START)
    exchange.finish()
    assert handed.records[0].outcome is Outcome.CLIENT_GONE


async def test_the_request_id_header_goes_on_a_copy_of_the_response_start() -> None:
    handed = Handed()
    exchange = handed.exchange((b"x-request-id", b"req-1"))
    await exchange.send(START)
    assert handed.sent[0]["headers"] == [(b"x-request-id", b"req-1")]
    assert START["headers"] == []
