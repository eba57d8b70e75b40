"""Bounded downloads: the only place the client touches the network.

Nothing fetched here is trusted; the fetcher's job is to make a hostile server cheap to
survive.  Every download has a size cap (from signed metadata, or a fixed cap for
registry.json, roots and signatures), connect/read timeouts, and an overall deadline per
file, so an endless body or a server trickling one byte at a time cannot stall a host.
Redirects are followed only within the origin (scheme, host, port) of the URL asked for,
and ``file://`` URLs are supported for local mirrors and tests.

``Fetcher`` is a protocol so hosts and tests can inject their own transport;
``Sources`` tries a base URL and then each mirror in order.  Because everything fetched
is verified afterwards, a mirror can only deny service, never change what is installed.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import logging
import os
import re
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar, overload

import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from registry_tool import __version__
from registry_tool.client.errors import (
    DeadlineExceededError,
    DownloadTooLargeError,
    FetchError,
    HttpStatusError,
    NotFoundError,
    RedirectRefusedError,
    SlowRetrievalError,
)
from registry_tool.errors import CheckFailed, RegistryToolError
from registry_tool.format.rules import MAX_ROOT_BYTES, MAX_SIGNATURE_BYTES, MAX_TOP_BYTES

log = logging.getLogger(__name__)

T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB

# Fixed caps for files whose size no signed metadata declares yet.
# (the format module owns them: registry.json 64 KiB, root 1 MiB, signature 16 KiB)
MAX_REGISTRY_SIZE = MAX_TOP_BYTES
MAX_ROOT_SIZE = MAX_ROOT_BYTES
MAX_SIGNATURE_SIZE = MAX_SIGNATURE_BYTES
_CHUNK = 64 * KiB


class Fetcher(Protocol):
    """Download ``url`` and return at most ``max_size`` bytes, or raise a ``FetchError``."""

    def fetch(self, url: str, *, max_size: int) -> bytes:
        """The bytes at ``url``, at most ``max_size`` of them; raise a ``FetchError`` otherwise."""
        ...


DEFAULT_TOTAL_DEADLINE = 600.0


@dataclass(frozen=True)
class FetchPolicy:
    """Time limits of a fetcher.

    ``deadline`` bounds one file's download, redirects included;
    ``total_deadline`` bounds every download of one fetcher together (one command), so N
    stalling files cannot hold a host for N times the per-file deadline.  None: no bound.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 15.0
    deadline: float = 120.0
    max_redirects: int = 5
    total_deadline: float | None = DEFAULT_TOTAL_DEADLINE


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port); raises ValueError for a URL urllib cannot parse (bad port, IPv6).

    Also when urllib3, which makes the connection, reads another origin: for
    ``http://other:81`` + backslash + ``@registry/`` urlsplit reads ``registry`` and urllib3 connects to
    ``other:81`` (a hostile redirect then reached another host, with the registry's .netrc
    password).
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    host = (parts.hostname or "").lower()
    connected = urllib3.util.parse_url(url)
    connected_host = (connected.host or "").lower().removeprefix("[").removesuffix("]")
    connected_port = connected.port or {"http": 80, "https": 443}.get((connected.scheme or "").lower())
    if ((connected.scheme or "").lower(), connected_host, connected_port) != (
        parts.scheme,
        _ascii(host),
        port,
    ):
        raise ValueError(f"{url!r} names another host to urllib3 than to urllib")
    return parts.scheme, host, port


def _ascii(host: str) -> str:
    """``host`` as urllib3 connects to it: a non-ASCII (IDN) name in its IDNA 2008 (xn--) form.

    urllib3 encodes with the idna package (IDNA 2008, UTS 46), as here; Python's own "idna" codec
    is IDNA 2003 (straße.example -> strasse.example, another host).
    """
    if host.isascii():
        return host
    import idna

    try:
        return idna.encode(host.lower(), strict=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return host  # no IDNA form: urllib3 refuses it too, or the comparison fails


# --------------------------------------------------------------------------- the response-head deadline

# Seconds left for the current download (set by HttpFetcher.fetch for the calling thread/context).
_TIME_LEFT: contextvars.ContextVar[Callable[[], float] | None] = contextvars.ContextVar(
    "registry_tool_fetch_time_left", default=None
)


# Interim responses (RFC 9110 15.2: 103 Early Hints from a CDN, say) a client must skip before
# the final one; http.client skips only 100.  More than this many is refused (the deadline bounds
# their time, this their number).
_MAX_INTERIM = 32


class _InterimSkippingResponse(http.client.HTTPResponse):
    """http.client's response, skipping every interim 1xx status (101 ends HTTP/1.1 instead)."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(_MAX_INTERIM + 1):  # the interim ones, then the final one
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim response's headers: read and dropped
        raise http.client.HTTPException(f"more than {_MAX_INTERIM} interim (1xx) responses")

    def begin(self) -> None:
        super().begin()
        # A head line that is no "name: value" ends the email parser's headers: the lines after it
        # (a Content-Length, a Transfer-Encoding) were dropped silently, so the body was read
        # another way than the server framed it.  Go and Rust refuse such a head: so do we.
        if self.msg.defects or self.msg.get_payload():
            self._close_conn()  # type: ignore[attr-defined]
            raise http.client.HTTPException("a response header line is no `name: value`")

    def _read_and_discard_trailer(self) -> None:
        # http.client reads a chunked body's trailer lines without a count: a server may send them
        # for as long as the deadline lets it; more than a hundred is no trailer (Go and Rust agree).
        for _ in range(_MAX_TRAILER_LINES + 1):
            line = self.fp.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise http.client.LineTooLong("trailer line")
            if line in (b"\r\n", b"\n", b""):
                return
        raise http.client.HTTPException(f"more than {_MAX_TRAILER_LINES} trailer lines")

    def _read_next_chunk_size(self) -> int:
        # http.client reads the size with int(line, 16), which also takes "0x21e", "2_1e" and
        # "+21e" (Go and Rust refuse them) and sizes past any file (the read then waits for them).
        line = self.fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("chunk size")
        size = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size):
            self._close_conn()  # type: ignore[attr-defined]
            raise ValueError(f"chunk size {size[:20]!r} is no hexadecimal number of at most 16 digits")
        return int(size, 16)


_MAX_TRAILER_LINES = 100
_MAX_LINE = 65536  # http.client's own bound on one line
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _DeadlineMixin:
    """Bound the wait for the status line and headers by the per-file deadline.

    Socket timeouts bound each read, not their sum: a server sending its response head one byte
    every few seconds would otherwise hold the client for as long as http.client accepts header
    lines (100 of 64 KiB).  A timer shuts the socket down when the deadline passes; the blocked
    read then fails and is reported as a timeout.
    """

    sock: socket.socket | None

    def getresponse(self) -> Any:
        time_left = _TIME_LEFT.get()
        sock = self.sock
        if time_left is None or sock is None:
            return super().getresponse()  # type: ignore[misc]
        left = time_left()
        if left <= 0:
            raise TimeoutError("the download deadline passed before the response head")
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(left, expire)
        timer.daemon = True
        timer.start()
        try:
            response = super().getresponse()  # type: ignore[misc]
            # Kept for the body's deadline: http.client drops the connection's socket (sock =
            # None) as soon as a response says "Connection: close", the response still reading it.
            response.registry_tool_sock = sock
            return response
        except Exception:
            if expired.is_set():
                raise TimeoutError("the response head did not arrive before the download deadline") from None
            raise
        finally:
            timer.cancel()


class _HTTPConnection(_DeadlineMixin, urllib3.connection.HTTPConnection):
    response_class = _InterimSkippingResponse


class _HTTPSConnection(_DeadlineMixin, urllib3.connection.HTTPSConnection):
    response_class = _InterimSkippingResponse


class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections honour the per-file deadline while reading the head."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class HttpFetcher:
    """requests-based fetcher with caps, timeouts, a deadline and a same-origin redirect rule."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A fetcher bound by ``policy`` (timeouts, deadlines, redirects), on ``session`` if given."""
        self.policy = policy or FetchPolicy()
        if session is None:
            session = requests.Session()
            # A host's own session keeps its adapters; ours bound the response head too.
            session.mount("http://", _DeadlineAdapter())
            session.mount("https://", _DeadlineAdapter())
        self._session = session
        # Accept only identity encoding: a gzip body could expand far past the size cap.
        self._session.headers.update(
            {"User-Agent": f"registry-tool/{__version__}", "Accept-Encoding": "identity"}
        )
        self._clock = clock
        self._overall_end: float | None = None  # set by the first download

    def fetch(self, url: str, *, max_size: int) -> bytes:
        """The bytes at ``url`` (http(s):// or file://), at most ``max_size``; see ``Fetcher.fetch``."""
        # The scheme as urlsplit reads it (lower-cased); file:/// URLs skip the full split.
        scheme = "file" if url.startswith("file:///") else urllib.parse.urlsplit(url).scheme
        if scheme == "file":
            return _read_file_url(url, max_size)
        if scheme not in ("http", "https"):
            raise FetchError(
                f"unsupported URL scheme '{scheme}' in {url}", fix="use an http://, https:// or file:// URL"
            )
        now = self._clock()
        if self._overall_end is None and self.policy.total_deadline is not None:
            self._overall_end = now + self.policy.total_deadline
        deadline = now + self.policy.deadline
        if self._overall_end is not None:
            deadline = min(deadline, self._overall_end)
        token = _TIME_LEFT.set(lambda: deadline - self._clock())
        try:
            return self._fetch_http(url, max_size, deadline)
        finally:
            _TIME_LEFT.reset(token)

    def fetch_if_exists(self, url: str, *, max_size: int) -> bytes | None:
        """``fetch``, but None for a file that is not there (404): the expected miss raises nothing.

        A release's signatures are looked for under two names, of which one is usually missing.
        """
        if url.startswith("file:///"):
            return _read_file_url(url, max_size, missing_ok=True)
        try:
            return self.fetch(url, max_size=max_size)
        except NotFoundError:
            return None

    def _fetch_http(self, url: str, max_size: int, deadline: float) -> bytes:
        try:
            start = origin(url)
        except (ValueError, urllib3.exceptions.LocationParseError):
            raise FetchError(
                f"cannot fetch {_quoted(url)}: the URL cannot be read one way only",
                fix="give the registry's URL as http(s)://host[:port]/path/",
            ) from None
        current = url
        for _ in range(self.policy.max_redirects + 1):
            response = self._get(current, deadline)
            with response:
                if response.is_redirect:
                    target = response.headers.get("Location", "")
                    try:
                        target = urllib.parse.urljoin(current, target)
                        # A backslash or a control character: parsers disagree on where the host
                        # ends; a user name or password: a redirect never carries credentials.
                        bad = any(c == "\\" or ord(c) < 0x21 or ord(c) == 0x7F for c in target)
                        bad = bad or "@" in urllib.parse.urlsplit(target).netloc
                        target_origin: tuple[str, str, int | None] | None = None if bad else origin(target)
                    except (ValueError, urllib3.exceptions.LocationParseError):
                        # e.g. a port out of range, a broken IPv6 literal, parsers disagreeing
                        target_origin = None
                    if target_origin != start:
                        raise RedirectRefusedError(
                            f"refusing redirect from {current} to {_quoted(target)}: another origin or "
                            "scheme",
                            fix="serve the registry's files from one origin, or list the other "
                            "location as a mirror",
                        )
                    current = target
                    continue
                return self._body(response, current, max_size, deadline)
        raise RedirectRefusedError(
            f"more than {self.policy.max_redirects} redirects fetching {url}",
            fix="fix the redirect loop on the server",
        )

    def _remaining(self, url: str, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            self._expired(url, deadline)
        return left

    def _expired(self, url: str, deadline: float) -> NoReturn:
        """Raise the error of the deadline that ended the download of ``url`` (``deadline``)."""
        if self._overall_end is not None and deadline >= self._overall_end:
            raise DeadlineExceededError(
                f"slow retrieval attack or dead server: the downloads of this operation took longer than "
                f"the overall deadline of {self.policy.total_deadline:g} s (stopped at {url})",
                fix="retry later or use a mirror (the overall deadline is the option --total-deadline)",
            )
        raise SlowRetrievalError(
            f"slow retrieval attack or dead server: {url} did not arrive within {self.policy.deadline:g} s",
            fix="retry later or use a mirror; the download deadline is a client setting",
        )

    def _get(self, url: str, deadline: float) -> requests.Response:
        left = self._remaining(url, deadline)
        timeout = (min(self.policy.connect_timeout, left), min(self.policy.read_timeout, left))
        try:
            # The adapter, not Session.send: with allow_redirects=False, Session.send still reads a
            # redirect's whole body (decompressed, unbounded, past any deadline) to prepare
            # Response.next.  Redirects are followed by _fetch_http, which never reads their body.
            session = self._session
            request = session.prepare_request(requests.Request("GET", url))
            settings = session.merge_environment_settings(request.url, {}, True, None, None)
            verify = settings.get("verify")
            return session.get_adapter(request.url or url).send(
                request,
                stream=True,
                timeout=timeout,
                verify=True if verify is None else verify,
                cert=settings.get("cert"),
                proxies=settings.get("proxies"),
            )
        except requests.ConnectTimeout:
            # No connection at all: the server (or the way to it) is down, an outage like a refused
            # connection (exit 2); a server that accepts and then stalls is the attack below.
            raise FetchError(
                f"cannot fetch {url}: no connection within {timeout[0]:g} s",
                fix="check the URL and your connection, retry later or use a mirror",
            ) from None
        except requests.Timeout as err:
            raise SlowRetrievalError(
                f"slow retrieval: {url} did not answer in time ({err.__class__.__name__})",
                fix="retry later or use a mirror",
            ) from None
        except requests.RequestException as err:
            raise FetchError(
                f"cannot fetch {url}: {_network_reason(err)}", fix="check the URL and your connection"
            ) from None
        except ValueError as err:
            # requests parses a redirect's Location even when not following it; a hostile one
            # (port out of range, broken IPv6 literal) raises ValueError.
            raise FetchError(
                f"cannot fetch {url}: the server's answer cannot be parsed ({err})",
                fix="do not use this server or mirror",
            ) from None

    def _body(self, response: requests.Response, url: str, max_size: int, deadline: float) -> bytes:
        if response.status_code == 404:
            raise NotFoundError(f"{url} not found (HTTP 404)", fix="check the registry URL")
        if response.status_code != 200:
            raise HttpStatusError(
                f"{url} answered HTTP {response.status_code}", fix="retry later or use a mirror"
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchError(
                f"{url} was sent with Content-Encoding {_quoted(encoding)} although identity was asked for",
                fix="serve the registry's files uncompressed",
            )
        declared = response.headers.get("Content-Length")
        if declared is not None and not _ASCII_DIGITS.fullmatch(declared.strip()):
            # str.isdigit() accepts "¹" and "٣", which int() refuses; http.client ignores such a
            # header.  A length that is no number is a broken or hostile server: refused.
            raise FetchError(
                f"{url} was sent with Content-Length {_quoted(declared)}, which is no length",
                fix="do not use this server or mirror",
            )
        if declared is not None and int(declared) > max_size:
            raise _size_differs(url, max_size, int(declared), "announces")
        with _shut_at_deadline(response, self._remaining(url, deadline)) as expired:
            try:
                body = self._read_body(response, url, max_size, deadline)
            except FetchError:
                if expired.is_set():
                    self._expired(url, deadline)
                raise
            if expired.is_set():  # the shutdown can also read as the end of the body
                self._expired(url, deadline)
            return body

    def _read_body(self, response: requests.Response, url: str, max_size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while True:
            left = self._remaining(url, deadline)
            self._bound_next_read(response, left)
            try:
                # read1 returns after one socket read, so the deadline is checked between
                # trickled bytes instead of waiting for a full chunk.
                chunk = response.raw.read1(_CHUNK)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                if left < self.policy.read_timeout:  # the read was cut short by the deadline
                    self._expired(url, deadline)
                raise SlowRetrievalError(
                    f"slow retrieval attack: {url} stalled for more than {self.policy.read_timeout:g} s",
                    fix="retry later or use a mirror",
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise FetchError(f"download of {url} failed: {err}", fix="retry later") from None
            if not chunk:
                break
            received += len(chunk)
            if received > max_size:
                raise _too_large(url, max_size, "more arrived than that, and no length was announced")
            chunks.append(chunk)
        return b"".join(chunks)

    def _bound_next_read(self, response: requests.Response, left: float) -> None:
        """Let no single socket read outlive the deadline (a read may otherwise wait read_timeout)."""
        sock = _socket_of(response)
        if sock is not None:
            with contextlib.suppress(OSError):  # closed once the body was read: nothing to bound
                sock.settimeout(max(0.01, min(self.policy.read_timeout, left)))


_ASCII_DIGITS = re.compile(r"[0-9]+")


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket the response's body is read from (ours record it; a host's session may not)."""
    sock = getattr(response.raw, "registry_tool_sock", None)
    if isinstance(sock, socket.socket):
        return sock
    connection = getattr(response.raw, "connection", None)
    found = getattr(connection, "sock", None)
    return found if isinstance(found, socket.socket) else None


@contextlib.contextmanager
def _shut_at_deadline(response: requests.Response, left: float) -> Iterator[threading.Event]:
    """Shut the response's socket down when the download's time is up.

    Each socket read is bounded by the deadline (``_bound_next_read``), but one read of the body
    can make many: a chunked body's trailer lines are read until the blank line, each within the
    socket timeout, so a server trickling trailer lines forever would hold the download.  The
    event tells the caller that the shutdown, not the server, ended the read.
    """
    expired = threading.Event()
    sock = _socket_of(response)
    if sock is None:
        yield expired
        return

    def expire() -> None:
        expired.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(left, 0.0), expire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


def _too_large(url: str, max_size: int, detail: str) -> DownloadTooLargeError:
    return DownloadTooLargeError(
        f"endless data attack: {url} is larger than the {max_size} bytes allowed ({detail})",
        fix="the server or a mirror is serving something other than what the registry signed; "
        "report it to the registry's maintainers",
    )


def _size_differs(url: str, max_size: int, size: int, verb: str = "is") -> DownloadTooLargeError:
    """A finite file of known size above the cap: not endless, just not the file that was signed."""
    return DownloadTooLargeError(
        f"size differs from the signed size: {url} {verb} {size} bytes, but at most {max_size} are allowed "
        "(the size the signed metadata gives, or the fixed cap for this file)",
        fix="the server or a mirror is serving another file than the one signed; nothing was installed. "
        "Report it to the registry's maintainers",
    )


def _file_url_path(url: str) -> str:
    if url.startswith("file:///") and "?" not in url and "#" not in url:
        return urllib.parse.unquote(url[7:])  # what urlsplit gives for these, without its cost
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"file URL with a host is not supported: {url}", fix="use file:///absolute/path")
    return urllib.parse.unquote(parts.path)


@overload
def _read_file_url(url: str, max_size: int) -> bytes: ...
@overload
def _read_file_url(url: str, max_size: int, *, missing_ok: bool) -> bytes | None: ...
def _read_file_url(url: str, max_size: int, *, missing_ok: bool = False) -> bytes | None:
    path = _file_url_path(url)
    try:
        # O_NONBLOCK: a FIFO put in a file:// registry (a shared folder) must not hang the client.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise NotFoundError(f"{url} not found", fix="check the registry path") from None
    except IsADirectoryError:
        raise NotFoundError(f"{url} is a directory", fix="check the registry path") from None
    except OSError as err:
        raise FetchError(f"cannot read {url}: {err.strerror}", fix="check file permissions") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NotFoundError(f"{url} is a directory", fix="check the registry path")
        if not stat.S_ISREG(info.st_mode):
            raise FetchError(
                f"{url} is not a regular file (a FIFO, socket or device)",
                fix="serve the registry's files as regular files",
            )
        os.set_blocking(fd, True)
        if info.st_size > max_size:
            raise _size_differs(url, max_size, info.st_size)
        # One read of the size fstat gave, plus one byte: a short read is the end of a regular file
        # (a site's files are small), so a file of the announced size costs a single read.  Only a
        # file that grew meanwhile is read on, up to the cap and one byte over it.
        data = os.read(fd, info.st_size + 1)
        if len(data) > info.st_size:
            chunks = [data]
            left = max_size + 1 - len(data)
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
    except OSError as err:
        raise FetchError(f"cannot read {url}: {err.strerror}", fix="check file permissions") from None
    finally:
        os.close(fd)
    if len(data) > max_size:
        raise _too_large(url, max_size, "the file grew while read")
    return data


# What ``urllib.parse.quote`` leaves as it is (its safe "/" and the unreserved characters): a
# path of only these (every name the site layout allows) needs no quoting.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")


def join_url(base: str, relpath: str) -> str:
    """``base`` (a directory URL) joined with a relative path of the site layout."""
    if not base.endswith("/"):
        base += "/"
    return base + (relpath if _UNQUOTED.fullmatch(relpath) else urllib.parse.quote(relpath))


@dataclass
class Sources:
    """The registry's base URL and its mirrors, tried in order."""

    base_url: str
    fetcher: Fetcher
    mirrors: Sequence[str] = field(default_factory=tuple)

    @property
    def urls(self) -> list[str]:
        """The registry URL and then each mirror, in the order they are tried."""
        return [self.base_url, *self.mirrors]

    def get(self, url: str, *, max_size: int) -> bytes:
        """``fetcher.fetch`` with the cap enforced here too: a host's own fetcher may ignore it."""
        try:
            data = self.fetcher.fetch(url, max_size=max_size)
        except NotFoundError:
            log.debug("not found: %s", url)  # a probe (the next root version) or a missing file
            raise
        if len(data) > max_size:
            raise _too_large(url, max_size, f"the fetcher returned {len(data)} bytes")
        log.debug("fetched %s (%d bytes)", url, len(data))
        return data

    def fetch(self, relpath: str, *, max_size: int) -> bytes:
        """The first source that delivers; used for files that are verified as a group later."""
        return self.fetch_verified(relpath, max_size=max_size, verify=lambda data: data)

    def fetch_verified(self, relpath: str, *, max_size: int, verify: Callable[[bytes], T]) -> T:
        """Fetch ``relpath`` from each source in turn until ``verify`` accepts the bytes."""
        return self.first(lambda base: verify(self.get(join_url(base, relpath), max_size=max_size)))

    def first(self, attempt: Callable[[str], T]) -> T:
        """``attempt(base_url)`` for each source in turn; the first success wins.

        A source that fails (transport or verification) is skipped.  If none succeeds, the
        first attack detected (a ``CheckFailed``, exit 1) is raised, whichever source it came
        from: an origin that is down must not turn a tampering mirror into a mere network
        failure (exit 2).  Otherwise the first error that is not a 404 (a mirror's 404 says less
        than the origin's outage); when every source said 404, a ``NotFoundError``.
        """
        if not self.mirrors:  # one source: its error is the one the rule below would pick
            return attempt(self.base_url)
        errors: list[RegistryToolError] = []
        for base in self.urls:
            try:
                return attempt(base)
            except (CheckFailed, FetchError) as err:
                log.info("source %s failed (%s: %s); trying the next source", base, err.code, err.what)
                errors.append(err)
        attacks = [e for e in errors if isinstance(e, CheckFailed)]
        telling = [e for e in errors if not isinstance(e, NotFoundError)]
        raise (attacks or telling or errors)[0]

    def signatures(
        self, base: str, relpath: str, key_ids: Iterable[str], *, plain: bool = True
    ) -> dict[str, bytes]:
        """Signature files of ``relpath`` at ``base``.

        ``F.minisig`` (unless ``plain=False``) and ``F.<KEYID>.minisig``.

        Missing ones (404) are normal (a signer uses one name or the other); whether enough valid
        signatures arrived is for the verifier to say.  Any other failure (an oversize or endless
        signature file, a stall, a 5xx) is an error, as for every other file.
        """
        keyed = [f"{relpath}.{k}.minisig" for k in sorted(set(key_ids))]
        names = [f"{relpath}.minisig", *keyed] if plain else keyed
        found: dict[str, bytes] = {}
        # Our fetcher says "missing" without an exception; a host's own raises NotFoundError.
        if_exists: Callable[..., bytes | None] | None = getattr(self.fetcher, "fetch_if_exists", None)
        for name in names:
            url = join_url(base, name)
            if if_exists is None:
                try:
                    found[name] = self.get(url, max_size=MAX_SIGNATURE_SIZE)
                except NotFoundError:
                    continue
                continue
            data = if_exists(url, max_size=MAX_SIGNATURE_SIZE)
            if data is None:
                log.debug("not found: %s", url)
                continue
            if len(data) > MAX_SIGNATURE_SIZE:
                raise _too_large(url, MAX_SIGNATURE_SIZE, f"the fetcher returned {len(data)} bytes")
            log.debug("fetched %s (%d bytes)", url, len(data))
            found[name] = data
        return found

    def root_signatures(self, base: str, relpath: str, key_ids: Iterable[str]) -> dict[str, bytes]:
        """Signature files of a root version: ``F.<KEYID>.minisig`` only.

        Root versions use only the keyed name (trust.md section 4), as the Go and Rust verifiers
        fetch them: a signature under ``F.minisig`` counts for no client.
        """
        return self.signatures(base, relpath, key_ids, plain=False)


def _network_reason(err: BaseException) -> str:
    """The system's words for a failed connection ("Connection refused"), not urllib3's wrapping.

    requests wraps urllib3's retry error, which wraps the connection error, which wraps the
    socket's ``OSError``: the first error with an errno and its text is what happened.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None and current.strerror:
            return str(current.strerror)
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return str(err)


def _quoted(header: str) -> str:
    """A header value a server chose, quoted and cut short for a message (never shown as itself)."""
    return repr(header[:200] + ("…" if len(header) > 200 else ""))
