"""The bounded fetcher against a real HTTP server on 127.0.0.1 and file:// URLs."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import requests

from registry_tool.client.errors import (
    DownloadTooLargeError,
    FetchError,
    HttpStatusError,
    NotFoundError,
    RedirectRefusedError,
    SlowRetrievalError,
)
from registry_tool.client.fetch import FetchPolicy, HttpFetcher, Sources, join_url, origin

# Generous limits: these cases test sizes, statuses and redirects, and must not fail because a
# loaded machine stalled a download for a second (the deadline cases set their own policy).
FAST = FetchPolicy(connect_timeout=30, read_timeout=30, deadline=60)


def test_fetches_exact_bytes(server, site_dir: Path) -> None:
    (site_dir / "a.bin").write_bytes(b"\x00\x01hello" * 1000)
    assert HttpFetcher(FAST).fetch(server.url + "a.bin", max_size=7000) == b"\x00\x01hello" * 1000


@pytest.mark.parametrize("size, cap, ok", [(100, 100, True), (101, 100, False), (0, 0, True)])
def test_size_cap_is_exact(server, site_dir: Path, size: int, cap: int, ok: bool) -> None:
    (site_dir / "f").write_bytes(b"x" * size)
    fetcher = HttpFetcher(FAST)
    if ok:
        assert len(fetcher.fetch(server.url + "f", max_size=cap)) == size
    else:
        with pytest.raises(DownloadTooLargeError, match="size differs from the signed size"):
            fetcher.fetch(server.url + "f", max_size=cap)


def test_endless_body_stops_at_cap(server) -> None:
    server.endless("/endless")
    with pytest.raises(DownloadTooLargeError, match=r"endless data attack.*1048576 bytes"):
        HttpFetcher(FAST).fetch(server.url + "endless", max_size=1024 * 1024)


def test_announced_oversize_refused_before_body(server) -> None:
    server.lying_length("/big", 10**12)
    with pytest.raises(DownloadTooLargeError, match="announces 1000000000000 bytes"):
        HttpFetcher(FAST).fetch(server.url + "big", max_size=4096)


def test_slow_retrieval_hits_overall_deadline(server) -> None:
    """Each byte arrives well within the read timeout, so only the per-file deadline can stop it.

    The fetcher's clock is injected and advances 10 s each time it is read, so the deadline
    passes after a few trickled bytes however loaded the machine is; the real socket waits are
    then bounded by 10 s or more, far above the 0.01 s between bytes (no race with the read
    timeout, whose message differs)."""
    server.slow("/slow", delay=0.01, data=b"y" * 100)
    ticks = itertools.count(step=10.0)
    policy = FetchPolicy(connect_timeout=30, read_timeout=30, deadline=100, total_deadline=None)
    with pytest.raises(SlowRetrievalError, match="did not arrive within 100 s"):
        HttpFetcher(policy, clock=lambda: next(ticks)).fetch(server.url + "slow", max_size=1000)


def test_read_timeout_on_stalled_body(server) -> None:
    server.slow("/stall", delay=5, data=b"zz")
    policy = FetchPolicy(connect_timeout=2, read_timeout=0.3, deadline=10)
    with pytest.raises(SlowRetrievalError):
        HttpFetcher(policy).fetch(server.url + "stall", max_size=10)


def test_a_read_the_deadline_cuts_short_names_the_deadline(server) -> None:
    """The next byte is 5 s away, the read timeout 30 s and the deadline 0.5 s: the deadline
    ends the download and the message says so (it quoted the read timeout, which never ran out)."""
    server.slow("/stall", delay=5, data=b"zz")
    policy = FetchPolicy(connect_timeout=30, read_timeout=30, deadline=0.5, total_deadline=None)
    with pytest.raises(SlowRetrievalError, match=r"did not arrive within 0\.5 s"):
        HttpFetcher(policy).fetch(server.url + "stall", max_size=10)


@pytest.mark.parametrize("interim", [1, 3, 32])
def test_interim_responses_are_skipped(server, interim: int) -> None:
    """A CDN's 103 Early Hints (or a 100) before the response: every HTTP client must skip them
    (RFC 9110 15.2); http.client skipped only 100, so the fetch failed with "answered HTTP 103"."""

    def hook(h: Any) -> None:
        head = b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * (
            interim - 1
        )
        h.wfile.write(head + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        h.close_connection = True

    server.hooks["/hinted"] = hook
    assert HttpFetcher(FAST).fetch(server.url + "hinted", max_size=10) == b"ok"


def test_endless_interim_responses_are_refused(server) -> None:
    def hook(h: Any) -> None:
        h.wfile.write(
            b"HTTP/1.1 103 Early Hints\r\n\r\n" * 40 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        h.close_connection = True

    server.hooks["/hints"] = hook
    with pytest.raises(FetchError, match="interim"):
        HttpFetcher(FAST).fetch(server.url + "hints", max_size=10)


@pytest.mark.parametrize(
    "code, error", [(404, NotFoundError), (500, HttpStatusError), (403, HttpStatusError)]
)
def test_status_errors(server, code: int, error: type[Exception]) -> None:
    server.status("/x", code)
    with pytest.raises(error, match=str(code)):
        HttpFetcher(FAST).fetch(server.url + "x", max_size=10)


def test_same_origin_redirect_followed(server, site_dir: Path) -> None:
    (site_dir / "real").write_bytes(b"real")
    server.redirect("/moved", "/real")
    assert HttpFetcher(FAST).fetch(server.url + "moved", max_size=10) == b"real"


def test_redirect_to_other_origin_refused(server, other_server) -> None:
    (other_server.root / "evil").write_bytes(b"evil")
    server.redirect("/x", other_server.url + "evil")
    with pytest.raises(RedirectRefusedError, match="another origin"):
        HttpFetcher(FAST).fetch(server.url + "x", max_size=10)
    assert other_server.requests == []


@pytest.mark.parametrize("sep", ["\\", "\t", " "])
def test_a_redirect_parsers_read_two_ways_never_reaches_the_other_host(
    server, other_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sep: str
) -> None:
    """urlsplit read `http://other\\@registry/` as the registry and urllib3 connected to `other`:
    the request (with the registry's .netrc password) reached another host."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    other = other_server.url.removesuffix("/")
    server.redirect("/x", f"{other}{sep}@{server.url.removeprefix('http://')}registry.json")
    with pytest.raises(RedirectRefusedError, match="another origin"):
        HttpFetcher(FAST).fetch(server.url + "x", max_size=10)
    assert other_server.requests == []


def test_an_idn_registry_host_is_one_origin_to_both_parsers() -> None:
    # urllib3 connects to the IDNA form: a registry named in Unicode could not be fetched at all.
    assert origin("https://bücher.example/reg/") == ("https", "bücher.example", 443)
    # IDNA 2008, as urllib3 encodes (Python's own codec, IDNA 2003, maps ß to ss: another host).
    assert origin("https://straße.example/") == ("https", "straße.example", 443)
    assert origin("https://ςigma.example/") == ("https", "ςigma.example", 443)


def test_redirect_to_file_scheme_refused(server, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    server.redirect("/x", secret.as_uri())
    with pytest.raises(RedirectRefusedError, match="another origin or scheme"):
        HttpFetcher(FAST).fetch(server.url + "x", max_size=10)


def test_redirect_loop_bounded(server) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    with pytest.raises(RedirectRefusedError, match="redirects"):
        HttpFetcher(FAST).fetch(server.url + "a", max_size=10)


def test_compressed_response_refused(server, site_dir: Path) -> None:
    # A gzip body could decompress far beyond the cap; identity was asked for.
    (site_dir / "z").write_bytes(b"0" * 1000)
    server.gzip("/z")
    with pytest.raises(FetchError, match="Content-Encoding 'gzip'"):
        HttpFetcher(FAST).fetch(server.url + "z", max_size=10_000)


def test_file_urls(tmp_path: Path) -> None:
    f = tmp_path / "with space.bin"
    f.write_bytes(b"abc")
    fetcher = HttpFetcher(FAST)
    assert fetcher.fetch(f.as_uri(), max_size=3) == b"abc"
    with pytest.raises(DownloadTooLargeError):
        fetcher.fetch(f.as_uri(), max_size=2)
    with pytest.raises(NotFoundError):
        fetcher.fetch((tmp_path / "missing").as_uri(), max_size=2)
    with pytest.raises(FetchError, match="host"):
        fetcher.fetch("file://example.com/etc/passwd", max_size=2)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "gopher://x/", "javascript:alert(1)"])
def test_other_schemes_refused(url: str) -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        HttpFetcher(FAST).fetch(url, max_size=1)


def test_connection_refused_is_fetch_error(server) -> None:
    port = server.port
    server.stop()
    with pytest.raises(FetchError):
        HttpFetcher(FAST).fetch(f"http://127.0.0.1:{port}/x", max_size=1)


def test_origin_and_join() -> None:
    assert origin("http://127.0.0.1/x") == origin("http://127.0.0.1:80/y")
    assert origin("http://127.0.0.1:1/") != origin("http://127.0.0.1:2/")
    assert origin("https://h/") != origin("http://h/")
    assert join_url("http://h/base", "plugins/a b") == "http://h/base/plugins/a%20b"


def test_mirrors_tried_in_order(server, other_server, site_dir: Path) -> None:
    (other_server.root / "f").write_bytes(b"good")
    server.status("/f", 500)
    sources = Sources(server.url, HttpFetcher(FAST), mirrors=[other_server.url])
    assert sources.fetch("f", max_size=10) == b"good"
    assert server.requests == ["/f"] and other_server.requests == ["/f"]


def test_mirror_cannot_change_content(server, other_server, site_dir: Path) -> None:
    """A mirror serving other bytes is skipped by verification; the origin's error is kept."""
    (site_dir / "f").write_bytes(b"bad-origin")
    (other_server.root / "f").write_bytes(b"bad-mirror")

    def verify(data: bytes) -> bytes:
        if data != b"good":
            raise DownloadTooLargeError(f"rejected {data!r}")
        return data

    sources = Sources(server.url, HttpFetcher(FAST), mirrors=[other_server.url])
    with pytest.raises(DownloadTooLargeError, match="bad-origin"):
        sources.fetch_verified("f", max_size=100, verify=verify)
    (other_server.root / "f").write_bytes(b"good")
    assert sources.fetch_verified("f", max_size=100, verify=verify) == b"good"


def test_all_sources_404_is_not_found(server, other_server) -> None:
    sources = Sources(server.url, HttpFetcher(FAST), mirrors=[other_server.url])
    with pytest.raises(NotFoundError):
        sources.fetch("nothing", max_size=10)


def test_a_host_breaking_a_signed_bound_is_an_attack_and_an_outage_is_not() -> None:
    """Exit 1 for endless data and slow retrieval (the conformance classes), 2 for a failed network."""
    from registry_tool.client.errors import (
        DeadlineExceededError,
        FetchError,
        HttpStatusError,
        SlowRetrievalError,
    )

    for attack in (DownloadTooLargeError("x"), SlowRetrievalError("x"), DeadlineExceededError("x")):
        assert attack.exit_code == 1 and isinstance(attack, FetchError)
    assert HttpStatusError("x").exit_code == 2


class _StalledAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, error: type[requests.RequestException]) -> None:
        super().__init__()
        self.error = error

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        raise self.error("simulated")


def _stalled(error: type[requests.RequestException]) -> requests.Session:
    session = requests.Session()
    session.mount("https://", _StalledAdapter(error))
    return session


def test_no_connection_in_time_is_an_outage_not_an_attack() -> None:
    """A connect timeout is the server being unreachable (exit 2); a stalled answer is the attack."""
    with pytest.raises(FetchError, match="no connection within") as err:
        HttpFetcher(session=_stalled(requests.ConnectTimeout)).fetch("https://127.0.0.1:9/x", max_size=10)
    assert not isinstance(err.value, SlowRetrievalError)
    with pytest.raises(SlowRetrievalError, match="did not answer in time"):
        HttpFetcher(session=_stalled(requests.ReadTimeout)).fetch("https://127.0.0.1:9/x", max_size=10)


def test_hostile_redirect_location_is_quoted_and_cut_short(server) -> None:
    # A server's Location reaches the error paragraph: never as itself, never 5,000 characters long.
    server.redirect("/x", "http://other.example/\x1b]8;;https://evil.example/\x07CLICK\x1b[2J" + "y" * 5000)
    with pytest.raises(RedirectRefusedError) as caught:
        HttpFetcher(FAST).fetch(server.url + "x", max_size=10)
    text = caught.value.diagnostics()
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]8" in text and len(text) < 1000


def test_hostile_content_encoding_is_quoted_and_escaped(server, site_dir: Path) -> None:
    def hook(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Encoding", "br\x1b]52;c;eA==\x07")
        h.send_header("Content-Length", "1")
        h.end_headers()
        h.wfile.write(b"0")

    server.hooks["/z"] = hook
    with pytest.raises(FetchError) as caught:
        HttpFetcher(FAST).fetch(server.url + "z", max_size=100)
    text = caught.value.diagnostics()
    assert "\x1b" not in text and "Content-Encoding 'br\\x1b]52" in text


def test_credentials_for_a_registry_come_from_netrc(
    server: Any, site_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry behind HTTP authentication: the URL may not hold credentials, ~/.netrc (NETRC) does."""
    import base64
    import http.server

    (site_dir / "registry.json").write_bytes(b"{}")
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()

    def guarded(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != expected:
            h.send_error(401)
            return
        h.send_response(200)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    server.hooks["/registry.json"] = guarded
    with pytest.raises(FetchError):
        HttpFetcher(FAST).fetch(server.url + "registry.json", max_size=10)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert HttpFetcher(FAST).fetch(server.url + "registry.json", max_size=10) == b"{}"


def _chunked_with_trailers(lines: int, delay: float) -> Any:
    """A hook answering one chunked body, "Connection: close", then ``lines`` trailer lines."""
    import time

    def hook(h: Any) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        h.wfile.write(b"2\r\n{}\r\n0\r\n")
        h.wfile.flush()
        for i in range(lines):
            try:
                h.wfile.write(b"X-T%d: %s\r\n" % (i, b"t" * 1000))
                h.wfile.flush()
            except OSError:  # the client gave up
                return
            time.sleep(delay)
        h.wfile.write(b"\r\n")
        h.close_connection = True

    return hook


def test_trailer_lines_dripped_after_connection_close_stop_at_the_deadline(server) -> None:
    # http.client drops the connection's socket once a response says "Connection: close": the
    # deadline's timer and per-read bounds found none, and a trailer dripped for as long as the
    # server liked (the file was then accepted after its deadline).
    server.hooks["/drip"] = _chunked_with_trailers(lines=30, delay=0.2)  # 6 s, under the line cap
    policy = FetchPolicy(connect_timeout=30, read_timeout=30, deadline=2, total_deadline=None)
    with pytest.raises(SlowRetrievalError):
        HttpFetcher(policy).fetch(server.url + "drip", max_size=10)


def test_a_flood_of_trailer_lines_is_refused(server) -> None:
    server.hooks["/flood"] = _chunked_with_trailers(lines=1000, delay=0)
    with pytest.raises(FetchError, match="trailer"):
        HttpFetcher(FAST).fetch(server.url + "flood", max_size=10)


def _chunk_sized(size_line: bytes) -> Any:
    def hook(h: Any) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        h.wfile.write(size_line + b"\r\n" + b"x" * 0x21E + b"\r\n0\r\n\r\n")
        h.close_connection = True

    return hook


@pytest.mark.parametrize("size", [b"0x21e", b"2_1e", b"+21e", b"ffffffffffffffffffffffff"])
def test_a_chunk_size_that_is_no_plain_hex_number_is_refused(server, size: bytes) -> None:
    # int(line, 16) took "0x21e", "2_1e" and "+21e" (Go and Rust refuse them), and a size past any
    # file made the read wait for it until the deadline.
    server.hooks["/c"] = _chunk_sized(size)
    with pytest.raises(FetchError):
        HttpFetcher(FAST).fetch(server.url + "c", max_size=1000)


@pytest.mark.parametrize("size", [b"21e", b"21E", b" 21e ", b"21e;ext=1"])
def test_a_plain_chunk_size_is_read(server, size: bytes) -> None:
    server.hooks["/c"] = _chunk_sized(size)
    assert HttpFetcher(FAST).fetch(server.url + "c", max_size=1000) == b"x" * 0x21E


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 3\r\n\r\nabcdef",
        b"HTTP/1.1 200 OK\r\nX: 1\r\nno colon\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc",
    ],
)
def test_a_head_line_that_is_no_header_is_refused(server, head: bytes) -> None:
    # The email parser ended the headers there: a Content-Length or Transfer-Encoding after it was
    # dropped and the body read another way than framed (Go and Rust refuse such a head).
    def hook(h: Any) -> None:
        h.wfile.write(head)
        h.close_connection = True

    server.hooks["/h"] = hook
    with pytest.raises(FetchError):
        HttpFetcher(FAST).fetch(server.url + "h", max_size=1000)


def test_a_folded_header_line_is_still_read(server) -> None:
    def hook(h: Any) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 3\r\n\r\nabc")
        h.close_connection = True

    server.hooks["/h"] = hook
    assert HttpFetcher(FAST).fetch(server.url + "h", max_size=1000) == b"abc"
