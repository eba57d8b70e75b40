//! The HTTP transport against a real server on 127.0.0.1, held to the Python client's
//! `HttpFetcher` rules (docs/trust.md 10.2, conformance decision 4), which the conformance
//! runner's fault directives cannot express: every status but 200 and 404 is `network` (410
//! too: it never ends a root walk nor means an absent signature); redirects are followed within
//! the origin only, at most 5 of them; a body with a `Content-Encoding` other than identity is
//! refused.

use registry_verifier::fetch::{Fetcher, MAX_REDIRECTS};
use registry_verifier::{Class, HttpTransport};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The answer (status line and headers, body) for a request path; `port` is the server's.
fn answer(path: &str, port: u16) -> (String, &'static [u8]) {
    let redirect = |code: &str, to: String| (format!("HTTP/1.1 {}\r\nLocation: {}\r\n", code, to), &b""[..]);
    let file = |headers: &str| (format!("HTTP/1.1 200 OK\r\n{}", headers), &b"file"[..]);
    if let Some(n) = path.strip_prefix("/hop/") {
        // /hop/N redirects to /hop/N-1 (302, relative Location), /hop/0 is the file
        let n: usize = n.parse().unwrap();
        return if n == 0 { file("") } else { redirect("302 Found", format!("/hop/{}", n - 1)) };
    }
    match path {
        "/307" => redirect("307 Temporary Redirect", format!("http://127.0.0.1:{}/hop/0", port)),
        "/308-same-origin-explicit" => redirect("308 Permanent Redirect", format!("HTTP://127.0.0.1:{}/hop/1", port)),
        "/other-host" => redirect("302 Found", format!("http://localhost:{}/hop/0", port)),
        "/other-port" => redirect("302 Found", format!("http://127.0.0.1:{}/hop/0", port.wrapping_add(1).max(1))),
        "/other-scheme" => redirect("302 Found", format!("https://127.0.0.1:{}/hop/0", port)),
        "/redirect-to-404" => redirect("302 Found", "/nothing".to_owned()),
        "/redirect-to-410" => redirect("302 Found", "/gone".to_owned()),
        "/302-without-location" => ("HTTP/1.1 302 Found\r\n".to_owned(), b""),
        "/gone" => ("HTTP/1.1 410 Gone\r\n".to_owned(), b"gone"),
        "/500" => ("HTTP/1.1 500 Internal Server Error\r\n".to_owned(), b""),
        "/204" => ("HTTP/1.1 204 No Content\r\n".to_owned(), b""),
        "/gzip" => file("Content-Encoding: gzip\r\n"),
        "/br" => file("Content-Encoding: br\r\n"),
        "/identity-then-gzip" => file("Content-Encoding: identity\r\nContent-Encoding: gzip\r\n"),
        "/identity" => file("Content-Encoding:  IDENTITY \r\n"),
        "/empty-encoding" => file("Content-Encoding: \r\n"),
        "/plain" => file(""),
        _ => ("HTTP/1.1 404 Not Found\r\n".to_owned(), b"not found"),
    }
}

/// A server on an ephemeral 127.0.0.1 port running `handle(stream, port)` on its own thread for
/// every connection.
fn listen<F: Fn(TcpStream, u16) + Copy + Send + 'static>(handle: F) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || handle(stream, port));
        }
    });
    port
}

/// A server on an ephemeral 127.0.0.1 port answering every connection with `answer`.
fn serve() -> u16 {
    listen(|mut stream, port| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) if header == "\r\n" || header == "\n" => break,
                Ok(_) => {}
            }
        }
        let (head, body) = answer(&path, port);
        let _ = write!(stream, "{}Content-Length: {}\r\nConnection: close\r\n\r\n", head, body.len());
        let _ = stream.write_all(body);
    })
}

fn get(port: u16, path: &str) -> Result<Option<Vec<u8>>, registry_verifier::Error> {
    let fetcher = Fetcher::new(
        Arc::new(HttpTransport::new()),
        &format!("http://127.0.0.1:{}/", port),
        Instant::now() + Duration::from_secs(30),
    );
    fetcher.get(path, 1000)
}

fn network(port: u16, path: &str) {
    match get(port, path) {
        Err(e) => assert_eq!(e.class, Class::Network, "{}: {}", path, e),
        Ok(v) => panic!("{}: accepted ({:?}), want network", path, v),
    }
}

#[test]
fn a_registry_url_no_lockfile_could_hold_is_refused_before_anything_is_fetched() {
    // The URL library reads the backslashes as slashes and would fetch the site; the lockfile would
    // then record a registry no reader accepts (decision 15), and the directory be unusable.
    let port = serve();
    let state = std::env::temp_dir().join(format!("rv-http-bad-url-{}", std::process::id()));
    let url = format!("http://127.0.0.1:{}\\sub\\", port);
    let v = registry_verifier::Verifier::new(&url, &state, Arc::new(HttpTransport::new()));
    for err in [v.pin(b"{}", &[]).err(), v.refresh().err()] {
        let err = err.expect("refused");
        assert_eq!(err.class, Class::Network, "{}", err);
        assert!(err.to_string().contains("port"), "{}", err);
    }
    assert!(!state.exists());
}

#[test]
fn only_200_carries_a_body_and_only_404_is_absent() {
    let port = serve();
    assert_eq!(get(port, "plain").unwrap().unwrap(), b"file");
    assert_eq!(get(port, "nothing").unwrap(), None);
    for path in ["gone", "500", "204", "302-without-location"] {
        network(port, path);
    }
}

#[test]
fn redirects_are_followed_within_the_origin_up_to_five() {
    let port = serve();
    assert_eq!(MAX_REDIRECTS, 5);
    for path in ["hop/1", "hop/5", "307", "308-same-origin-explicit"] {
        assert_eq!(get(port, path).unwrap().unwrap(), b"file", "{}", path);
    }
    network(port, "hop/6");
    // the end of a redirect chain answers as itself: 404 is absent, 410 is network
    assert_eq!(get(port, "redirect-to-404").unwrap(), None);
    network(port, "redirect-to-410");
}

#[test]
fn a_redirect_to_another_origin_is_refused() {
    let port = serve();
    for path in ["other-host", "other-port", "other-scheme"] {
        network(port, path);
    }
}

#[test]
fn a_body_with_a_content_encoding_other_than_identity_is_refused() {
    let port = serve();
    for path in ["gzip", "br", "identity-then-gzip"] {
        network(port, path);
    }
    assert_eq!(get(port, "identity").unwrap().unwrap(), b"file");
    assert_eq!(get(port, "empty-encoding").unwrap().unwrap(), b"file");
}

/// A server on 127.0.0.1 answering every connection with `head` (status line and headers), one
/// body byte, then nothing for a minute (the connection stays open).
fn serve_raw(head: &'static str) -> u16 {
    listen(move |mut stream, _| {
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
        let _ = write!(stream, "{}\r\nx", head);
        let _ = stream.flush();
        std::thread::sleep(Duration::from_secs(60));
    })
}

#[test]
fn a_content_length_above_the_cap_is_endless_data_at_once() {
    // As the Python client: the announced length alone decides; the body is not awaited (the
    // server stalls after one byte, the deadline is 30 s away).
    for head in ["HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n"] {
        let start = Instant::now();
        match get(serve_raw(head), "file") {
            Err(e) => assert_eq!(e.class, Class::EndlessData, "{:?}: {}", head, e),
            Ok(v) => panic!("{:?}: accepted {:?}", head, v),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}: refused after {:?}", head, start.elapsed());
    }
}

#[test]
fn content_length_headers_that_disagree_are_network() {
    for head in
        ["HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n"]
    {
        let start = Instant::now();
        network(serve_raw(head), "file");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}: refused after {:?}", head, start.elapsed());
    }
}
