"""A small keep-alive HTTP/1.1 client over asyncio streams, for load generators.

The load generator runs on the same cores as the server it measures, so what it costs
per request is taken from the server. httpx spends about 9 ms of CPU per request here
(2-core machine), a quarter of a whole turn's CPU; this client spends well under one:
it writes a request with one `write` and reads the reply by its `Content-Length`.

It speaks only what the benchmarks need: one request at a time per connection, bodies
with a `Content-Length` (or chunked), JSON in and out. It is not a general client.

    >>> conn = await Connection.open("127.0.0.1", 8000)          # doctest: +SKIP
    >>> status, body = await conn.request("POST", "/api/sessions")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class HttpError(RuntimeError):
    """The server broke the protocol, closed the connection, or answered badly."""


class Connection:
    """One keep-alive connection; `request` calls must not overlap."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request (`body` is sent as JSON) and return (status, body bytes)."""
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
        lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise HttpError(f"{method} {path}: connection closed before a reply") from exc
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"{method} {path}: not an HTTP reply: {status_line!r}")
        fields: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            data = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            raise HttpError(f"{method} {path}: reply without a length")
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), data

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self._reader.readexactly(size)
            await self._reader.readexactly(2)

    def close(self) -> None:
        self._writer.close()
