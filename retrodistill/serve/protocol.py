"""The HTTP/1.1 parser the server runs: uvicorn's httptools protocol (llhttp, in C) where httptools is
installed, with a cap on the request head that httptools lacks; h11 (pure Python, capped by uvicorn's
``h11_max_incomplete_event_size``) otherwise. Both refuse a head over ``HEAD_LIMIT`` bytes and close."""

from __future__ import annotations

import functools
import importlib.util
import json
from typing import Any

HEAD_LIMIT = 16 * 1024
HEAD_MESSAGE = f"request head (request line and headers) larger than {HEAD_LIMIT} bytes; send fewer or shorter headers"


def http_protocol() -> Any:
    """What ``uvicorn.Config(http=...)`` takes: the head-capped httptools protocol class, or ``"h11"``."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    return _capped_httptools()


@functools.cache
def _capped_httptools() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    body = json.dumps({"error": HEAD_MESSAGE, "detail": HEAD_MESSAGE}).encode()
    answer = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )

    class HeadCappedHttpToolsProtocol(HttpToolsProtocol):
        """httptools buffers a header until it is complete, so one endless header grows without bound.
        Bytes of reads that end inside a head are counted; past the limit the client gets 431 and the
        connection closes. A read in which a message completes is not counted (its bytes belong partly to
        the message before), so a head is held to at most the limit plus one read."""

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            self._head_bytes, self._in_head, self._completed = 0, True, False
            super().connection_made(transport)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._head_bytes, self._in_head, self._completed = 0, True, True
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            self._completed = False
            super().data_received(data)
            if not self._in_head or self._completed or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_LIMIT:
                self.logger.warning("refused a request head over %d bytes", HEAD_LIMIT)
                self.transport.write(answer)
                self.transport.close()

    return HeadCappedHttpToolsProtocol
