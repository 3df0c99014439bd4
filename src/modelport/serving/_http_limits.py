"""Bounded request heads: uvicorn's httptools protocol with a size limit on the request line
and headers, enforced before auth and before anything past the limit is buffered.

httptools buffers a header until its line ends and uvicorn keeps every header, so a client
that sends an endless header (or many slow ones) grows the server without bound, and no ASGI
middleware sees the request in time to stop it. This protocol counts the bytes of each request
head as they arrive and, past :class:`HeadLimits`, answers ``431 Request Header Fields Too
Large`` (``414 URI Too Long`` for the request line) and closes the connection. Memory per
connection stays within the limit plus one socket read.
"""

from __future__ import annotations

import functools
import http
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadLimits:
    """Most bytes a request head may take: all of it (request line and headers), and any one
    line (the request line, or a header's name plus value)."""

    max_bytes: int
    max_line_bytes: int


class _TooLarge(Exception):
    def __init__(self, status: int, what: str) -> None:
        super().__init__(what)
        self.status = status


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses request heads past :class:`HeadLimits`."""

    def __init__(self, *args: Any, limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._in_head = True  # the bytes arriving now belong to a request head
        self._head_bytes = 0  # of the current head, counted per read
        self._messages = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        started = self._messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._refuse(exc.__context__)
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # A head still open after this read, begun before it: the whole read was head bytes
        # that the parser holds. (A read in which a head began is counted from the next one;
        # on_headers_complete measures what arrives in a single read.)
        if self._in_head and self._messages == started and self._messages > 0:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_bytes:
                self._refuse(_TooLarge(431, "request head"))

    def on_message_begin(self) -> None:
        self._messages += 1
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # The exact sizes, once per request (cheaper than a check per header): what arrived
        # in a single read was not counted above, and one line may pass its own limit.
        self._in_head = False
        limits = self._limits
        if len(self.url) > limits.max_line_bytes:
            raise _TooLarge(414, "request line")
        total = len(self.url)
        for name, value in self.headers:
            size = len(name) + len(value)
            if size > limits.max_line_bytes:
                raise _TooLarge(431, f"header {name[:64].decode('latin-1')!r}")
            total += size + 4
        if total > limits.max_bytes:
            raise _TooLarge(431, "request head")
        super().on_headers_complete()

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _refuse(self, error: _TooLarge) -> None:
        """Answer 431 (or 414) and close; the rest of the head is never read."""
        self._refused = True
        phrase = http.HTTPStatus(error.status).phrase
        body = f"{phrase.lower()}: {error} exceeds the limit\n".encode()
        logger.warning("refused a request: %s exceeds the limit (%d)", error, error.status)
        self.transport.write(
            b"".join(
                [
                    f"HTTP/1.1 {error.status} {phrase}\r\n".encode(),
                    b"content-type: text/plain; charset=utf-8\r\n",
                    f"content-length: {len(body)}\r\n".encode(),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()


def protocol_factory(limits: HeadLimits) -> Any:  # Any: what uvicorn's ``http=`` accepts
    """The ``http`` option for uvicorn: a picklable protocol factory (workers get a copy)."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
