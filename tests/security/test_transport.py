"""Hostile HTTP servers that speak just enough HTTP to get past a naive client.

Each server is a raw socket on 127.0.0.1 writing exactly the bytes of the attack, so the test
controls what arrives and when (http.server cannot trickle a status line or headers).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from registry_tool.client.errors import FetchError, RedirectRefusedError, SlowRetrievalError
from registry_tool.client.fetch import FetchPolicy, HttpFetcher
from registry_tool.errors import RegistryToolError

Script = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """Accepts connections and runs ``script(conn, stopping)`` on each, in a thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stopping = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)  # the request; its content does not matter
                self.script(conn, self.stopping)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


# Every byte arrives well within the read timeout; only the per-file deadline can stop it.
POLICY = FetchPolicy(connect_timeout=2, read_timeout=2, deadline=1.0)


def endless_head(prefix: bytes, delay: float) -> Script:
    """``prefix``, then header bytes one at a time, forever (until the client hangs up)."""

    def script(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(prefix)
        conn.sendall(b"X-Padding: ")
        while not stopping.wait(delay):
            conn.sendall(b"p")

    return script


def _fetch_in_thread(url: str, limit: float) -> BaseException | None:
    """Run the fetch; return what it raised.  A fetch still running after ``limit`` s is a failure:
    ``limit`` is many times the deadline, so only a fetch that ignores the deadline reaches it."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            HttpFetcher(POLICY).fetch(url, max_size=100)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the fetch ignored its {POLICY.deadline:g} s deadline for {limit:g} s"
    return outcome[0]


@pytest.mark.parametrize(
    "prefix",
    [
        b"HTTP/1.1 200 OK\r\n",  # the headers never end
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    ],
)
def test_endless_trickled_headers_hit_the_deadline(
    raw_server: Callable[[Script], RawServer], prefix: bytes
) -> None:
    """A server that sends its response head one byte every 0.3 s, forever (http.client accepts
    100 header lines of 64 KiB each, so it would wait for weeks), must not hold a download past the
    per-file deadline: the deadline covers the response head, not only the body."""
    server = raw_server(endless_head(prefix, 0.3))
    # The limit only detects a fetch that ignores its deadline (it would run forever); a passing
    # fetch returns as soon as the deadline stops it, so the limit is generous for a loaded machine.
    err = _fetch_in_thread(server.url + "registry.json", limit=120 * POLICY.deadline)
    assert isinstance(err, SlowRetrievalError), repr(err)
    assert "slow retrieval" in err.what


def redirect_to(location: bytes) -> Script:
    def script(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    return script


@pytest.mark.parametrize(
    "location",
    [
        b"http://127.0.0.1:99999/registry.json",  # port out of range
        b"http://[::1/registry.json",  # broken IPv6 literal
        b"http://127.0.0.1:port/registry.json",  # not a number
    ],
)
def test_unparseable_redirect_target_is_a_named_refusal(
    raw_server: Callable[[Script], RawServer], location: bytes
) -> None:
    """A Location header that urllib cannot parse fails as a named FetchError (a RegistryToolError),
    not an uncaught ValueError in the host (the API promises RegistryToolError subclasses)."""
    server = raw_server(redirect_to(location))
    with pytest.raises(FetchError):
        HttpFetcher(POLICY).fetch(server.url + "registry.json", max_size=100)


def redirect_with_body(body: Callable[[socket.socket, threading.Event], None], *headers: bytes) -> Script:
    """A redirect to the same path, then ``body`` writes its body."""

    def script(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /registry.json\r\n" + b"".join(headers) + b"\r\n")
        body(conn, stopping)

    return script


def test_a_redirect_body_trickled_forever_is_never_read(raw_server: Callable[[Script], RawServer]) -> None:
    """requests' Session.send reads a redirect's whole body even when not following it (to prepare
    Response.next): a body trickled forever held the download past every deadline."""

    def trickle(conn: socket.socket, stopping: threading.Event) -> None:
        while not stopping.wait(0.3):
            conn.sendall(b"p")

    server = raw_server(redirect_with_body(trickle))
    err = _fetch_in_thread(server.url + "registry.json", limit=120 * POLICY.deadline)
    assert isinstance(err, RedirectRefusedError | SlowRetrievalError), repr(err)


def test_a_compressed_redirect_body_is_never_inflated(raw_server: Callable[[Script], RawServer]) -> None:
    """A 302 whose body is 64 KiB of gzip inflating to 64 MiB: not read, so never inflated."""
    import gzip
    import tracemalloc

    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)

    def send(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(bomb)

    headers = (b"Content-Encoding: gzip\r\n", b"Content-Length: %d\r\n" % len(bomb))
    server = raw_server(redirect_with_body(send, *headers))
    tracemalloc.start()
    try:
        with pytest.raises(FetchError):
            HttpFetcher(POLICY).fetch(server.url + "registry.json", max_size=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes allocated while refusing redirects"


def test_trailer_lines_trickled_forever_hit_the_deadline(raw_server: Callable[[Script], RawServer]) -> None:
    """A chunked body's trailer lines are read until the blank line, each within the socket timeout:
    only the per-file deadline stops a server sending them forever."""

    def script(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n")
        while not stopping.wait(0.3):
            conn.sendall(b"X-T: y\r\n")

    server = raw_server(script)
    err = _fetch_in_thread(server.url + "registry.json", limit=120 * POLICY.deadline)
    assert isinstance(err, SlowRetrievalError), repr(err)


@pytest.mark.parametrize("length", ["\u00b9", "\u0663", "1_0", "+2", " "])
def test_a_content_length_that_is_no_number_is_refused_not_a_crash(
    raw_server: Callable[[Script], RawServer], length: str
) -> None:
    """str.isdigit() accepts "¹" and "٣", which int() refuses: an uncaught ValueError, exit 3."""

    def script(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + length.encode() + b"\r\n\r\nab")

    server = raw_server(script)
    with pytest.raises(FetchError, match="no length"):
        HttpFetcher(POLICY).fetch(server.url + "registry.json", max_size=100)


def test_fetch_errors_are_registry_tool_errors() -> None:
    assert issubclass(FetchError, RegistryToolError)
    assert issubclass(RedirectRefusedError, FetchError)
