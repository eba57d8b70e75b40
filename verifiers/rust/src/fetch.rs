//! Fetching. The host implements `Transport` (how bytes move); the verifier alone enforces
//! the size cap and the deadline on what any transport returns: the body is read on a helper
//! thread and handed over in chunks, so neither an endless body (`endless-data`) nor a
//! stalled one (`slow-retrieval`) can hold the verifier beyond its cap or deadline, however
//! the host's transport behaves.

use crate::error::{Class, Error};
use std::io::Read;
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

/// Blocking HTTP on ureq, held to the Python client's `HttpFetcher` rules (docs/trust.md 10.2,
/// conformance decision 4): only 200 carries a body and only 404 means absent (every other
/// status, 410 included, is `network`); a redirect (301, 302, 303, 307, 308 with a `Location`)
/// is followed only within the origin asked for (scheme, host, port with the scheme's default),
/// at most [`MAX_REDIRECTS`] of them; `Accept-Encoding: identity` is asked for and a body sent
/// with any other `Content-Encoding` is refused (nothing is decompressed); socket timeouts come
/// from the deadline.
#[cfg(feature = "http")]
pub struct HttpTransport {
    agent: ureq::Agent,
}

/// Redirects followed for one file (a 6th is refused), as the Python client's `FetchPolicy`.
pub const MAX_REDIRECTS: usize = 5;

#[cfg(feature = "http")]
impl HttpTransport {
    pub fn new() -> HttpTransport {
        // ureq follows redirects to any origin; the verifier follows them itself.
        HttpTransport { agent: ureq::AgentBuilder::new().redirects(0).user_agent("registry-verifier (rust)").build() }
    }
}

#[cfg(feature = "http")]
impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

/// (scheme, host, port) of an absolute URL, as the Python client's `fetch.origin` compares them.
#[cfg(feature = "http")]
fn origin(u: &ureq::RequestUrl) -> (String, String, Option<u16>) {
    let u = u.as_url();
    (u.scheme().to_ascii_lowercase(), u.host_str().unwrap_or("").to_ascii_lowercase(), u.port_or_known_default())
}

#[cfg(feature = "http")]
impl Transport for HttpTransport {
    fn get(&self, url: &str, deadline: Instant) -> Result<Response, TransportError> {
        let start = self.agent.get(url).request_url().map_err(|e| TransportError::Network(e.to_string()))?;
        let mut current = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                return Err(TransportError::Timeout(format!("no time left for {}", url)));
            }
            let resp =
                match self.agent.get(current.as_url().as_str()).set("Accept-Encoding", "identity").timeout(left).call()
                {
                    Ok(resp) => resp,
                    Err(ureq::Error::Status(404, _)) => return Ok(Response::NotFound),
                    Err(ureq::Error::Status(code, _)) => {
                        return Err(TransportError::Network(format!("HTTP status {}", code)))
                    }
                    Err(ureq::Error::Transport(t)) => {
                        let text = t.to_string();
                        return Err(if text.contains("timed out") || text.contains("Timeout") {
                            TransportError::Timeout(text)
                        } else {
                            TransportError::Network(text)
                        });
                    }
                };
            let status = resp.status();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                if let Some(location) = resp.header("Location") {
                    let target = current
                        .as_url()
                        .join(location)
                        .ok()
                        .and_then(|t| self.agent.get(t.as_str()).request_url().ok())
                        .filter(|t| origin(t) == origin(&start))
                        .ok_or_else(|| {
                            TransportError::Network(format!(
                                "refusing the redirect from {} to {:?}: another origin or scheme",
                                current.as_url(),
                                location
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
            let encoding = resp.all("Content-Encoding").join(", ");
            let encoding = encoding.trim().to_lowercase();
            if !encoding.is_empty() && encoding != "identity" {
                return Err(TransportError::Network(format!(
                    "{} was sent with Content-Encoding {:?} although identity was asked for",
                    current.as_url(),
                    encoding
                )));
            }
            // Content-Length, as the Python client (urllib3) and Go read it: repeated headers (or
            // comma-separated values) that disagree are refused; one length above the cap is
            // endless-data before the body is read (Fetcher::get).
            let lengths: Vec<String> =
                resp.all("Content-Length").iter().flat_map(|v| v.split(',')).map(|v| v.trim().to_owned()).collect();
            if lengths.iter().any(|v| v != &lengths[0]) {
                return Err(TransportError::Network(format!(
                    "{} was sent with Content-Length headers that disagree ({})",
                    current.as_url(),
                    lengths.join(", ")
                )));
            }
            let announced = lengths
                .first()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
            let body: Box<dyn Read + Send> = Box::new(resp.into_reader());
            return Ok(match announced {
                Some(length) => Response::Announced(body, length),
                None => Response::Body(body),
            });
        }
        Err(TransportError::Network(format!("more than {} redirects fetching {}", MAX_REDIRECTS, url)))
    }
}

/// The transport for a registry URL: `file://` locally, `http(s)://` through ureq.
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

    #[test]
    fn exact_sizes_pass_and_one_byte_more_is_refused() {
        assert_eq!(fetch("ok", 5, Duration::from_secs(60)).unwrap().unwrap(), b"hello");
        assert_eq!(fetch("ok", 4, Duration::from_secs(60)).unwrap_err().class, Class::EndlessData);
        assert_eq!(fetch("404", 4, Duration::from_secs(60)).unwrap(), None);
        assert_eq!(fetch("500", 4, Duration::from_secs(60)).unwrap_err().class, Class::Network);
    }
}
