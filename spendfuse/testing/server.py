"""A real loopback HTTP/1.1 server in front of a ``FakeProvider``.

For tests that need the SDKs' own network stack: connection pooling, chunked SSE arriving in
separate TCP writes, a peer that drops the connection mid-stream. Streams are sent with chunked
transfer encoding and flushed event by event; a scripted ``Reply.stream_failure`` shuts the socket
down without the terminating chunk. Clients that hang up are not an error and log nothing.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from spendfuse.testing import clients
from spendfuse.testing.body import EventStream, PreparedResponse, StreamBroken
from spendfuse.testing.provider import FakeProvider

if TYPE_CHECKING:
    import anthropic
    import openai

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr for every client that hung up mid-response.
        log.debug("fake server: connection from %s ended with an error", client_address, exc_info=True)

    def drop_connections(self) -> None:
        with self.connections_lock:
            open_connections = list(self.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output is not the place for an access log."""

    def _serve(self) -> None:
        provider = self.server.provider
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        prepared = provider.handle(self.command, path, query, dict(self.headers.items()), body)
        if provider.latency > 0:
            time.sleep(provider.latency)
        try:
            self._send(prepared)
        except OSError:
            # The client hung up (reset, broken pipe); a stream it left is an abandoned one.
            if isinstance(prepared.body, EventStream):
                prepared.body.close()
            self.close_connection = True

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    def _send(self, prepared: PreparedResponse) -> None:
        self.send_response(prepared.status)
        for name, value in prepared.headers.items():
            self.send_header(name, value)
        if not isinstance(prepared.body, EventStream):
            self.send_header("content-length", str(len(prepared.body)))
            self.end_headers()
            self.wfile.write(prepared.body)
            self.wfile.flush()
            return

        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in prepared.body.paced(self.server.provider.chunk_delay):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        except StreamBroken:
            self._break_connection()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _break_connection(self) -> None:
        # No terminating chunk: the client sees the peer vanish in the middle of the body.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """Serve ``provider`` on ``http://127.0.0.1:<free port>``.

    Anthropic clients take ``anthropic_base_url`` (the SDK appends ``/v1/messages``); OpenAI
    clients take ``openai_base_url`` (``base_url + "/v1"``).
    """

    def __init__(self, provider: FakeProvider | None = None) -> None:
        self.provider = provider if provider is not None else FakeProvider()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeServer:
        if self._server is not None:
            return self
        server = _Server(self.provider)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="spendfuse-fake-server",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        # Idle keep-alive connections would otherwise hold their handler threads open.
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        return clients.anthropic_client(base_url=self.anthropic_base_url, **kwargs)

    def async_anthropic_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        return clients.async_anthropic_client(base_url=self.anthropic_base_url, **kwargs)

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        return clients.openai_client(base_url=self.openai_base_url, **kwargs)

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return clients.async_openai_client(base_url=self.openai_base_url, **kwargs)
