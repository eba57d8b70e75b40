//! Fetching. The host implements `Transport` (how bytes move); the verifier alone enforces
//! the size cap and the deadline on what any transport returns: the body is read on a helper
//! thread and handed over in chunks, so neither an endless body (`endless-data`) nor a
//! stalled one (`slow-retrieval`) can hold the verifier beyond its cap or deadline, however
//! the host's transport behaves.

use crate::error::{Class, Error};
#[cfg(feature = "http")]
use crate::http1;
use std::io::Read;
#[cfg(feature = "http")]
use std::io::Write;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What a transport returns for one GET.
pub enum Response {
    /// 404 (and only 404): the file does not exist (not an error for optional signature files).
    NotFound,
    /// 200: the body, read by the verifier under its cap and deadline.
    Body(Box<dyn Read + Send>),
    /// 200 with the length its `Content-Length` announces: more than the cap is `endless-data`
    /// at once (nothing is read); otherwise the body is read as `Body`'s.
    Announced(Box<dyn Read + Send>, u64),
}

/// Why a transport could not deliver a response.
#[derive(Debug)]
pub enum TransportError {
    /// connection refused, DNS, TLS, 5xx, 410, a refused redirect, any status but 200 and 404,
    /// a compressed body: not an attack
    Network(String),
    /// the transport gave up on its own deadline
    Timeout(String),
}

/// A host's way of getting bytes for a URL. `deadline` is advisory for the implementation
/// (socket timeouts); the verifier enforces it regardless.
pub trait Transport: Send + Sync {
    fn get(&self, url: &str, deadline: Instant) -> Result<Response, TransportError>;
}

/// A transport bound to a base URL, with the verifier's enforcement around it.
pub struct Fetcher {
    transport: Arc<dyn Transport>,
    base: String,
    deadline: Instant,
}

const CHUNK: usize = 64 * 1024;

type Message = Result<Option<Vec<u8>>, Failure>;

/// Why the helper thread stopped without a body.
enum Failure {
    Transport(TransportError),
    /// the response announced (Content-Length) this many bytes, more than the cap
    Announced(u64),
}

impl Fetcher {
    /// `base` is the registry URL (a trailing `/` is added when missing); every transfer of
    /// the operation must end before `deadline`.
    pub fn new(transport: Arc<dyn Transport>, base: &str, deadline: Instant) -> Fetcher {
        let mut base = base.to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        Fetcher { transport, base, deadline }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path` relative to the base: `None` when it does not exist, else at most `cap`
    /// bytes (more: `endless-data`), all received before the deadline (else `slow-retrieval`).
    pub fn get(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, Error> {
        let url = self.url(path);
        if Instant::now() >= self.deadline {
            return Err(slow(&url));
        }
        // The whole transport call (connect, status line, body) runs on a detached helper
        // thread: a transport that blocks cannot hold the verifier past the deadline. When the
        // verifier gives up it drops the receiver; the helper stops at its next send.
        let (tx, rx) = mpsc::sync_channel::<Message>(4);
        let transport = Arc::clone(&self.transport);
        let deadline = self.deadline;
        let limit = cap.saturating_add(1);
        let target = url.clone();
        std::thread::spawn(move || pump(transport.as_ref(), &target, deadline, cap, limit, &tx));
        collect(&rx, deadline, cap, &url)
    }
}

fn pump(transport: &dyn Transport, url: &str, deadline: Instant, cap: u64, limit: u64, tx: &mpsc::SyncSender<Message>) {
    let body = match transport.get(url, deadline) {
        Err(e) => {
            let _ = tx.send(Err(Failure::Transport(e)));
            return;
        }
        Ok(Response::NotFound) => {
            let _ = tx.send(Ok(None));
            return;
        }
        Ok(Response::Body(body)) => body,
        Ok(Response::Announced(_, length)) if length > cap => {
            let _ = tx.send(Err(Failure::Announced(length)));
            return;
        }
        Ok(Response::Announced(body, _)) => body,
    };
    let mut body = body.take(limit);
    loop {
        let mut buf = vec![0u8; CHUNK];
        match body.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Ok(Some(Vec::new())));
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(Some(buf))).is_err() {
                    return; // the verifier stopped listening
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let err = match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        TransportError::Timeout(e.to_string())
                    }
                    _ => TransportError::Network(e.to_string()),
                };
                let _ = tx.send(Err(Failure::Transport(err)));
                return;
            }
        }
    }
}

fn slow(url: &str) -> Error {
    Error::new(
        Class::SlowRetrieval,
        format!("slow retrieval attack: {} was not received before the operation's deadline; retry later or use another mirror", url),
    )
}

fn collect(rx: &mpsc::Receiver<Message>, deadline: Instant, cap: u64, url: &str) -> Result<Option<Vec<u8>>, Error> {
    let mut data: Vec<u8> = Vec::new();
    let mut started = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left == Duration::ZERO {
            return Err(slow(url));
        }
        match rx.recv_timeout(left) {
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(slow(url)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::new(Class::Network, format!("the transport for {} stopped without an answer", url)))
            }
            Ok(Err(Failure::Announced(length))) => {
                return Err(Error::new(
                    Class::EndlessData,
                    format!(
                        "size differs from the signed size: {} announces {} bytes, but at most {} are allowed (the size the signed metadata gives, or the fixed cap for this file); the server or a mirror is serving another file than the one signed, nothing was used",
                        url, length, cap
                    ),
                ))
            }
            Ok(Err(Failure::Transport(TransportError::Timeout(_)))) => return Err(slow(url)),
            Ok(Err(Failure::Transport(TransportError::Network(msg)))) => {
                return Err(Error::new(
                    Class::Network,
                    format!("could not fetch {}: {}; check the registry URL and the network", url, msg),
                ))
            }
            Ok(Ok(None)) if !started => return Ok(None),
            Ok(Ok(None)) => unreachable!("NotFound after a body"),
            Ok(Ok(Some(chunk))) => {
                started = true;
                if chunk.is_empty() {
                    return Ok(Some(data));
                }
                data.extend_from_slice(&chunk);
                if data.len() as u64 > cap {
                    return Err(Error::new(
                        Class::EndlessData,
                        format!("endless data attack: {} is larger than its {} byte cap; nothing was used", url, cap),
                    ));
                }
            }
        }
    }
}

/// `file://` URLs (a local mirror of a site, tests, benchmarks). Missing files are `NotFound`.
pub struct FileTransport;

/// A `file://` URL read as the Python client reads it (`fetch._file_url_path`, `_read_file_url`):
/// a host other than `localhost` is refused (`file://evil/x` is no relative path), the path is
/// percent-decoded (`my%20site`), a folder is absent, and anything but a regular file is refused;
/// it is opened with O_NONBLOCK so that a FIFO planted in the site cannot block the open.
impl Transport for FileTransport {
    fn get(&self, url: &str, _deadline: Instant) -> Result<Response, TransportError> {
        let rest = url
            .strip_prefix("file://")
            .ok_or_else(|| TransportError::Network(format!("{} is not a file:// URL", url)))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !(host.is_empty() || host == "localhost") {
            return Err(TransportError::Network(format!(
                "file URL with a host is not supported: {}; use file:///absolute/path",
                url
            )));
        }
        let path = percent_decoded(path);
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = match options.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Response::NotFound),
            Err(e) => return Err(TransportError::Network(format!("cannot read {}: {}", url, e))),
        };
        match file.metadata() {
            Ok(meta) if meta.is_dir() => Ok(Response::NotFound),
            Ok(meta) if meta.is_file() => Ok(Response::Body(Box::new(file))),
            Ok(_) => Err(TransportError::Network(format!(
                "{} is not a regular file (a FIFO, socket or device); serve the registry's files as regular files",
                url
            ))),
            Err(e) => Err(TransportError::Network(format!("cannot read {}: {}", url, e))),
        }
    }
}

/// `%XX` sequences decoded, as Python's `urllib.parse.unquote` does (bytes that are not UTF-8
/// become U+FFFD).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&c| (c as char).to_digit(16));
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Blocking HTTP/1.1 (`http1`: every line, header count and chunk bounded), held to the Python
/// client's `HttpFetcher` rules (docs/trust.md 10.2, conformance decision 4): only 200 carries a
/// body and only 404 means absent (every other status, 410 and 101 included, is `network`;
/// interim 1xx responses are skipped); a redirect (301, 302, 303, 307, 308 with a `Location`) is
/// followed only within the origin asked for (scheme, host, port with the scheme's default), at
/// most [`MAX_REDIRECTS`] of them; `Accept-Encoding: identity` is asked for and a body sent with
/// any other `Content-Encoding` is refused (nothing is decompressed); a `Content-Length` must be
/// one run of ASCII digits; socket timeouts come from the deadline. `https://` needs the `tls`
/// feature (rustls, with the Mozilla roots of `webpki-roots`).
#[cfg(feature = "http")]
pub struct HttpTransport {
    #[cfg(feature = "tls")]
    tls: Arc<rustls::ClientConfig>,
}

/// Redirects followed for one file (a 6th is refused), as the Python client's `FetchPolicy`.
pub const MAX_REDIRECTS: usize = 5;

#[cfg(feature = "http")]
impl HttpTransport {
    pub fn new() -> HttpTransport {
        HttpTransport {
            #[cfg(feature = "tls")]
            tls: Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
                    .with_no_client_auth(),
            ),
        }
    }

    /// One GET of `url` on a new connection: the final response's head and the stream after it.
    fn request(&self, url: &url::Url, deadline: Instant) -> Result<(http1::Head, Stream), TransportError> {
        let net = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => TransportError::Timeout(e.to_string()),
            _ => TransportError::Network(e.to_string()),
        };
        let left = || {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                Err(TransportError::Timeout(format!("no time left for {}", url)))
            } else {
                Ok(left)
            }
        };
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(TransportError::Network(format!("{} is no http(s) URL ({})", url, other))),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TransportError::Network(format!("{} names no host", url)))?;
        let addrs = url.socket_addrs(|| None).map_err(net)?;
        let mut tcp = Err(TransportError::Network(format!("{} resolves to no address", host)));
        for addr in addrs {
            tcp = std::net::TcpStream::connect_timeout(&addr, left()?).map_err(net);
            if tcp.is_ok() {
                break;
            }
        }
        let tcp = tcp?;
        tcp.set_read_timeout(Some(left()?)).map_err(net)?;
        tcp.set_write_timeout(Some(left()?)).map_err(net)?;
        // Every read waits at most until the deadline, and none starts after it: a server that
        // trickles its head or trailers would otherwise hold this helper thread and its socket
        // long after the verifier gave up (Fetcher answers on time either way).
        let clock = tcp.try_clone().map_err(net)?;
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let authority = match url.port() {
            Some(port) => format!("{}:{}", host, port),
            None => host.to_owned(),
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: registry-verifier (rust)\r\nAccept: */*\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
            target, authority
        );
        let mut stream: Box<dyn ReadWrite> = if https { self.tls_stream(host, tcp)? } else { Box::new(tcp) };
        stream.write_all(request.as_bytes()).map_err(net)?;
        stream.flush().map_err(net)?;
        let stream: Box<dyn ReadWrite> = Box::new(UntilDeadline { inner: stream, clock, deadline });
        let mut reader = std::io::BufReader::new(stream);
        let head = http1::read_head(&mut reader).map_err(net)?;
        Ok((head, reader))
    }

    #[cfg(feature = "tls")]
    fn tls_stream(&self, host: &str, tcp: std::net::TcpStream) -> Result<Box<dyn ReadWrite>, TransportError> {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
                .map_err(|e| TransportError::Network(format!("{} is no TLS server name: {}", host, e)))?;
        let conn = rustls::ClientConnection::new(Arc::clone(&self.tls), name)
            .map_err(|e| TransportError::Network(format!("TLS with {}: {}", host, e)))?;
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    #[cfg(not(feature = "tls"))]
    fn tls_stream(&self, host: &str, _tcp: std::net::TcpStream) -> Result<Box<dyn ReadWrite>, TransportError> {
        Err(TransportError::Network(format!("https://{} needs the verifier built with the `tls` feature", host)))
    }
}

/// A connection whose every read ends by the deadline: the socket's read timeout is set to the
/// time left before each read, and a read after the deadline shuts the socket and fails.
#[cfg(feature = "http")]
struct UntilDeadline {
    inner: Box<dyn ReadWrite>,
    clock: std::net::TcpStream, // the same socket, to set its timeout
    deadline: Instant,
}

#[cfg(feature = "http")]
impl Read for UntilDeadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left == Duration::ZERO {
            let _ = self.clock.shutdown(std::net::Shutdown::Both);
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the operation's deadline passed"));
        }
        self.clock.set_read_timeout(Some(left))?;
        self.inner.read(buf)
    }
}

#[cfg(feature = "http")]
impl std::io::Write for UntilDeadline {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A connection, plain or TLS.
#[cfg(feature = "http")]
trait ReadWrite: Read + std::io::Write + Send {}
#[cfg(feature = "http")]
impl<T: Read + std::io::Write + Send> ReadWrite for T {}
#[cfg(feature = "http")]
type Stream = std::io::BufReader<Box<dyn ReadWrite>>;

#[cfg(feature = "http")]
impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

/// (scheme, host, port) of an absolute URL, as the Python client's `fetch.origin` compares them.
#[cfg(feature = "http")]
fn origin(u: &url::Url) -> (String, String, Option<u16>) {
    (u.scheme().to_ascii_lowercase(), u.host_str().unwrap_or("").to_ascii_lowercase(), u.port_or_known_default())
}

#[cfg(feature = "http")]
impl Transport for HttpTransport {
    fn get(&self, url: &str, deadline: Instant) -> Result<Response, TransportError> {
        let start = url::Url::parse(url).map_err(|e| TransportError::Network(format!("{}: {}", url, e)))?;
        let mut current = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let (head, reader) = self.request(&current, deadline)?;
            let status = head.status;
            if status == 404 {
                return Ok(Response::NotFound);
            }
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                if let Some(location) = head.all("location").first() {
                    let target =
                        current.join(location).ok().filter(|t| origin(t) == origin(&start)).ok_or_else(|| {
                            TransportError::Network(format!(
                                "refusing the redirect from {} to {:?}: another origin or scheme",
                                current, location
                            ))
                        })?;
                    current = target;
                    continue;
                }
            }
            if status != 200 {
                return Err(TransportError::Network(format!("HTTP status {}", status)));
            }
            // Python reads the header (repeated ones joined by ", "), stripped and lower-cased:
            // anything but "" or "identity" is refused.
            let encoding = head.all("content-encoding").join(", ");
            let encoding = encoding.trim().to_lowercase();
            if !encoding.is_empty() && encoding != "identity" {
                return Err(TransportError::Network(format!(
                    "{} was sent with Content-Encoding {:?} although identity was asked for",
                    current, encoding
                )));
            }
            // Content-Length as the Python client reads it (repeated headers joined by ", "): one
            // run of ASCII digits, or no length at all; one above the cap is endless-data before
            // the body is read (Fetcher::get).
            let lengths = head.all("content-length");
            let announced = if lengths.is_empty() {
                None
            } else {
                let joined = lengths.join(", ");
                let digits = joined.trim();
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(TransportError::Network(format!(
                        "{} was sent with Content-Length {:?}, which is no length",
                        current, joined
                    )));
                }
                Some(digits.parse::<u64>().unwrap_or(u64::MAX))
            };
            // Chunked when the first Transfer-Encoding header says exactly that (http.client's
            // reading); a chunked body's Content-Length is only the announcement checked above.
            let chunked = head.all("transfer-encoding").first().map_or(false, |v| v.eq_ignore_ascii_case("chunked"));
            let body: Box<dyn Read + Send> = match (chunked, announced) {
                (true, _) => Box::new(http1::Chunked::new(reader)),
                (false, Some(length)) => Box::new(http1::Sized::new(reader, length)),
                (false, None) => Box::new(reader), // to the connection's end (HTTP/1.0 style)
            };
            return Ok(match announced {
                Some(length) => Response::Announced(body, length),
                None => Response::Body(body),
            });
        }
        Err(TransportError::Network(format!("more than {} redirects fetching {}", MAX_REDIRECTS, url)))
    }
}

/// The transport for a registry URL: `file://` locally, `http(s)://` over `HttpTransport`.
pub fn default_transport(url: &str) -> Result<Arc<dyn Transport>, Error> {
    // The lockfile's URL rule first (decision 15): a URL with credentials is refused before any
    // message could show them.
    if let Some(why) = crate::registry_url::locked_registry_problem(url) {
        return Err(Error::new(
            Class::Network,
            format!(
                "the registry URL {:?} {}; pass the registry's http(s):// or file:// URL",
                crate::registry_url::redacted(url),
                why
            ),
        ));
    }
    let url = &crate::registry_url::canonical(url); // HTTP:// is http://
    if url.starts_with("file://") {
        return Ok(Arc::new(FileTransport));
    }
    #[cfg(feature = "http")]
    {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Arc::new(HttpTransport::new()));
        }
    }
    Err(Error::new(
        Class::Network,
        format!(
            "registry URL {:?} has no transport here (file://, or http(s):// with the `http` feature)",
            crate::registry_url::redacted(url)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn file_urls_are_read_as_the_python_client_reads_them() {
        let dir = std::env::temp_dir().join(format!("rv-file-url-{}", std::process::id()));
        let site = dir.join("my site");
        std::fs::create_dir_all(site.join("sub")).unwrap();
        std::fs::write(site.join("a.json"), b"{}").unwrap();
        let base = format!("file://{}/my%20site/", dir.display());
        let get = |rel: &str| FileTransport.get(&format!("{}{}", base, rel), Instant::now());
        match get("a.json") {
            Ok(Response::Body(mut body)) => {
                let mut data = Vec::new();
                body.read_to_end(&mut data).unwrap();
                assert_eq!(data, b"{}");
            }
            _ => panic!("a percent-encoded path is decoded"),
        }
        assert!(matches!(get("missing.json"), Ok(Response::NotFound)));
        assert!(matches!(get("sub"), Ok(Response::NotFound)), "a folder is absent");
        let fifo = site.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        assert!(matches!(get("fifo"), Err(TransportError::Network(_))), "a FIFO is refused");
        assert!(started.elapsed() < Duration::from_secs(5), "and never waited on");
        let other = FileTransport.get("file://evil/a.json", Instant::now());
        assert!(matches!(other, Err(TransportError::Network(m)) if m.contains("host")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    struct Endless;
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            for b in buf.iter_mut() {
                *b = b'x';
            }
            Ok(buf.len())
        }
    }

    struct Stalled;
    impl Read for Stalled {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }

    struct Serve(&'static str);
    impl Transport for Serve {
        fn get(&self, _url: &str, _deadline: Instant) -> Result<Response, TransportError> {
            match self.0 {
                "endless" => Ok(Response::Body(Box::new(Endless))),
                "stalled" => Ok(Response::Body(Box::new(Stalled))),
                "hang" => {
                    std::thread::sleep(Duration::from_secs(3600));
                    Ok(Response::NotFound)
                }
                "announced" => Ok(Response::Announced(Box::new(Stalled), 1_000_000)),
                "announced-ok" => Ok(Response::Announced(Box::new(io::Cursor::new(b"hello".to_vec())), 5)),
                "404" => Ok(Response::NotFound),
                "500" => Err(TransportError::Network("HTTP status 500".into())),
                _ => Ok(Response::Body(Box::new(io::Cursor::new(b"hello".to_vec())))),
            }
        }
    }

    fn fetch(kind: &'static str, cap: u64, deadline: Duration) -> Result<Option<Vec<u8>>, Error> {
        Fetcher::new(Arc::new(Serve(kind)), "http://x", Instant::now() + deadline).get("f", cap)
    }

    #[test]
    fn an_endless_body_stops_at_the_cap_whatever_the_transport() {
        assert_eq!(fetch("endless", 1000, Duration::from_secs(60)).unwrap_err().class, Class::EndlessData);
    }

    #[test]
    fn a_stalled_body_or_a_hanging_transport_ends_at_the_deadline() {
        // the deadline is short and the transport sleeps for an hour: no timing luck involved
        assert_eq!(fetch("stalled", 1000, Duration::from_millis(200)).unwrap_err().class, Class::SlowRetrieval);
        assert_eq!(fetch("hang", 1000, Duration::from_millis(200)).unwrap_err().class, Class::SlowRetrieval);
    }

    #[test]
    fn an_announced_length_above_the_cap_is_refused_without_reading() {
        // the body would stall for an hour: the verdict comes from the announced length alone
        assert_eq!(fetch("announced", 1000, Duration::from_secs(60)).unwrap_err().class, Class::EndlessData);
        assert_eq!(fetch("announced-ok", 5, Duration::from_secs(60)).unwrap().unwrap(), b"hello");
        assert_eq!(fetch("announced-ok", 4, Duration::from_secs(60)).unwrap_err().class, Class::EndlessData);
    }

    /// A server on 127.0.0.1 answering one connection with `head` then `tail` repeated `times`.
    #[cfg(feature = "http")]
    fn serve_once(head: &'static [u8], tail: &'static [u8], times: usize) -> String {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(head);
            for _ in 0..times {
                if conn.write_all(tail).is_err() {
                    return; // the client gave up: what the test wants
                }
            }
        });
        url
    }

    #[cfg(feature = "http")]
    #[test]
    fn an_endless_chunk_size_line_is_refused_with_bounded_memory() {
        // 64 MiB of "0" without a line end: refused after the 64 KiB line bound, long before the
        // server is done (ureq 2 buffered the whole line: about 300 MB/s until the deadline).
        static ZEROS: [u8; 65536] = [b'0'; 65536];
        let url = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &ZEROS, 1024);
        let got = Fetcher::new(Arc::new(HttpTransport::new()), &url, Instant::now() + Duration::from_secs(60))
            .get("f", 1 << 20);
        let err = got.unwrap_err();
        assert_eq!(err.class, Class::Network, "{}", err.message);
        assert!(err.message.contains("longer than"), "{}", err.message);
    }

    #[cfg(feature = "http")]
    #[test]
    fn a_chunked_body_cut_off_mid_chunk_is_no_body() {
        let url = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello", b"", 0);
        let got = Fetcher::new(Arc::new(HttpTransport::new()), &url, Instant::now() + Duration::from_secs(60))
            .get("f", 1 << 20);
        assert_eq!(got.unwrap_err().class, Class::Network);
        let url =
            serve_once(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"", 0);
        let got = Fetcher::new(Arc::new(HttpTransport::new()), &url, Instant::now() + Duration::from_secs(60))
            .get("f", 1 << 20);
        assert_eq!(got.unwrap().unwrap(), b"hello", "an interim response is skipped");
    }

    #[cfg(feature = "http")]
    #[test]
    fn no_read_starts_after_the_deadline() {
        // A trickling server held the helper thread (and its socket) long past the deadline: every
        // read is bounded by the time left, and one after the deadline fails at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let clock = client.try_clone().unwrap();
        let mut conn = UntilDeadline { inner: Box::new(client), clock, deadline: Instant::now() };
        let started = Instant::now();
        let err = conn.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5), "never waited on the silent server");
    }

    #[test]
    fn exact_sizes_pass_and_one_byte_more_is_refused() {
        assert_eq!(fetch("ok", 5, Duration::from_secs(60)).unwrap().unwrap(), b"hello");
        assert_eq!(fetch("ok", 4, Duration::from_secs(60)).unwrap_err().class, Class::EndlessData);
        assert_eq!(fetch("404", 4, Duration::from_secs(60)).unwrap(), None);
        assert_eq!(fetch("500", 4, Duration::from_secs(60)).unwrap_err().class, Class::Network);
    }
}
