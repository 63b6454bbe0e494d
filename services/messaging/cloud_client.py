"""The dispatcher's Cloud API client: `CloudAPIClient` with its send path on aiohttp.

Profiling the worker showed httpx's own request machinery (URL merging, request building,
cookie handling, and httpcore's pool under concurrency) costing more CPU per send than the
network I/O itself. This subclass keeps everything `CloudAPIClient` does, and answers
`send_message` with the same `SendResult` and the same typed `CloudAPIError`s (parsed by
`herald.whatsapp.error_from_response`), but posts through one pooled aiohttp session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from herald.settings import Settings
from herald.whatsapp import CloudAPIClient, CloudAPITransportError, SendResult, error_from_response


class PooledCloudAPIClient(CloudAPIClient):
    """One per worker process; `send_message` over aiohttp, everything else as the base class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = float(kwargs.get("timeout", 10.0))
        self._max_connections = int(kwargs.get("max_connections", 100))
        self._send_url = f"{self.base_url}{self._messages_path}"
        self._send_headers = {
            "Authorization": self._http.headers["Authorization"],
            "Content-Type": "application/json",
            "User-Agent": "herald-cloud-api-client",
        }
        self._send_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PooledCloudAPIClient:
        client = super().from_settings(settings, **overrides)
        assert isinstance(client, PooledCloudAPIClient)
        return client

    def _pool(self) -> aiohttp.ClientSession:
        # Created inside the event loop that uses it (the worker's AsyncIO loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30.0),
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def send_message(self, payload: Mapping[str, Any]) -> SendResult:
        """POST a message body; same answer and errors as `CloudAPIClient.send_message`."""
        try:
            async with self._pool().post(
                self._send_url,
                data=orjson.dumps(payload),
                headers=self._send_headers,
                timeout=self._send_timeout,
                allow_redirects=False,
            ) as answer:
                status = answer.status
                content = await answer.read()
        except TimeoutError as exc:  # aiohttp's timeouts subclass TimeoutError
            raise CloudAPITransportError(f"POST {self._messages_path} timed out: {exc!r}", timeout=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise CloudAPITransportError(f"POST {self._messages_path} failed: {exc!r}") from exc
        try:
            body: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = None
        if status >= 400 or not isinstance(body, dict):
            raise error_from_response(status if status >= 400 else 502, body)
        message = body["messages"][0]
        contact = (body.get("contacts") or [{}])[0]
        return SendResult(
            wamid=message["id"],
            wa_id=contact.get("wa_id", ""),
            input=contact.get("input", ""),
            message_status=message.get("message_status"),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().aclose()
