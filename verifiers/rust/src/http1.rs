//! The HTTP/1.1 reader under `HttpTransport`: one GET per connection (`Connection: close`), every
//! part of the response bounded before it is buffered.
//!
//! Why our own: ureq 2's chunked decoder buffered a chunk-size line without limit (an endless
//! line of `0` grew the process by about 300 MB/s until the deadline), read a body cut off
//! mid-chunk as complete and refused interim (1xx) responses; ureq 3 reads them right but needs
//! rustc 1.71, above this crate's 1.63. The limits are the Python client's (http.client's):
//! lines of at most 64 KiB, at most 100 header lines, at most 32 interim responses skipped.

use std::io::{self, BufRead, Read};

/// The longest status, header, chunk-size or trailer line read, its line end included
/// (http.client's `_MAXLINE`).
pub const MAX_LINE: usize = 64 * 1024;
/// Header (or trailer) lines of one response at most, the empty line that ends them included
/// (http.client's `_MAXHEADERS`).
pub const MAX_HEADERS: usize = 100;
/// Interim (1xx) responses skipped before the final one at most (the Python client's).
pub const MAX_INTERIM: usize = 32;

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One line without its `\r\n` (or bare `\n`), read at most `MAX_LINE` bytes into memory: a
/// longer one is an error before more is buffered. The end of the stream inside a line is one too.
pub fn read_line<R: BufRead>(r: &mut R, what: &str) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let (done, used) = {
            let buf = match r.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the connection ended inside the {}", what),
                ));
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&buf[..i]);
                    (true, i + 1)
                }
                None => {
                    line.extend_from_slice(buf);
                    (false, buf.len())
                }
            }
        };
        r.consume(used);
        // With its "\n", longer than MAX_LINE (http.client counts the line end too).
        if line.len() >= MAX_LINE {
            return Err(invalid(format!("the {} is longer than {} bytes", what, MAX_LINE)));
        }
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
    }
}

/// A response's status and headers (names lower-cased, values trimmed, in order).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Every value of header `name` (lower-case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// The final response's head: interim 1xx responses (but 101, which ends HTTP/1.1) are read and
/// dropped, at most `MAX_INTERIM` of them.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Head> {
    for _ in 0..=MAX_INTERIM {
        let line = read_line(r, "status line")?;
        let status = parse_status(&line)?;
        let headers = read_fields(r, "header line")?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Head { status, headers });
    }
    Err(invalid(format!("more than {} interim (1xx) responses", MAX_INTERIM)))
}

fn parse_status(line: &[u8]) -> io::Result<u16> {
    // As http.client reads it: words split on any whitespace, a version starting "HTTP/".
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = text.chars().take(80).collect();
        return Err(invalid(format!("the server did not answer with an HTTP/1.x status line ({:?})", shown)));
    }
    code.parse::<u16>().map_err(|e| invalid(e.to_string()))
}

/// Header or trailer fields up to the empty line: `name: value`, a line starting with a space or
/// tab continuing the previous value (obsolete folding); at most `MAX_HEADERS` lines.
fn read_fields<R: BufRead>(r: &mut R, what: &str) -> io::Result<Vec<(String, String)>> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_HEADERS {
        let line = read_line(r, what)?;
        if line.is_empty() {
            return Ok(fields);
        }
        if line.contains(&b'\r') {
            // A bare CR ends a line for Python's and Go's readers: a second header hidden after it
            // (a Content-Length, a Content-Encoding) would be read by one client and not another.
            return Err(invalid(format!("a {} holds a bare CR", what)));
        }
        let text = String::from_utf8_lossy(&line);
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(text.trim());
                    continue;
                }
                None => return Err(invalid(format!("a {} continues no header", what))),
            }
        }
        let (name, value) = match text.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.bytes().any(|b| b <= b' ' || b == 0x7f) => (name, value),
            _ => {
                let shown: String = text.chars().take(80).collect();
                return Err(invalid(format!("a {} is no `name: value` ({:?})", what, shown)));
            }
        };
        fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Err(invalid(format!("more than {} {}s", MAX_HEADERS, what)))
}

/// A body of exactly `left` more bytes: the connection ending before is an error, not a shorter
/// body.
pub struct Sized<R> {
    inner: R,
    left: u64,
}

impl<R> Sized<R> {
    pub fn new(inner: R, length: u64) -> Sized<R> {
        Sized { inner, left: length }
    }
}

impl<R: Read> Read for Sized<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the connection ended {} bytes before the announced Content-Length", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Transfer-Encoding: chunked` body: each chunk-size line (extensions after `;` ignored) and
/// trailer line is bounded as every other line; the connection ending anywhere before the last
/// chunk's trailer is an error, never the end of the body.
pub struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R> Chunked<R> {
    pub fn new(inner: R) -> Chunked<R> {
        Chunked { inner, left: 0, done: false }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = read_line(&mut self.inner, "chunk-size line")?;
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or("").trim();
            if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
                let shown: String = text.chars().take(40).collect();
                return Err(invalid(format!("a chunk size is no hexadecimal number ({:?})", shown)));
            }
            let digits = size.trim_start_matches('0');
            let size = if digits.is_empty() {
                0
            } else {
                u64::from_str_radix(digits, 16).map_err(|e| invalid(format!("a chunk size of {}: {}", size, e)))?
            };
            if size == 0 {
                read_fields(&mut self.inner, "trailer line")?;
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended inside a chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 && !read_line(&mut self.inner, "chunk's end")?.is_empty() {
            return Err(invalid("a chunk is longer than its size".to_owned()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn body<R: Read>(mut r: R) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn interim_responses_are_skipped_and_101_is_final() {
        let mut r =
            Cursor::new(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nA: 1\r\n\r\n".to_vec());
        let head = read_head(&mut r).unwrap();
        assert_eq!((head.status, head.all("a")), (200, vec!["1"]));
        let mut r = Cursor::new(b"HTTP/1.1 101 Switching\r\n\r\n".to_vec());
        assert_eq!(read_head(&mut r).unwrap().status, 101);
        let many = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1) + "HTTP/1.1 200 OK\r\n\r\n";
        assert!(read_head(&mut Cursor::new(many.into_bytes())).is_err());
    }

    #[test]
    fn lines_and_header_counts_are_bounded() {
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_LINE + 1));
        assert!(read_head(&mut Cursor::new(long.into_bytes())).is_err());
        // http.client's exact bounds: 99 header lines and the empty one, 65,536 bytes with "\r\n".
        let fields = |n: usize| format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: 1\r\n".repeat(n)).into_bytes();
        assert!(read_head(&mut Cursor::new(fields(MAX_HEADERS - 1))).is_ok());
        assert!(read_head(&mut Cursor::new(fields(MAX_HEADERS))).is_err());
        let line = |n: usize| format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(n - 5)).into_bytes();
        assert!(read_head(&mut Cursor::new(line(MAX_LINE))).is_ok());
        assert!(read_head(&mut Cursor::new(line(MAX_LINE + 1))).is_err());
        let tab = b"HTTP/1.1\t200  OK\r\n\r\n".to_vec();
        assert_eq!(read_head(&mut Cursor::new(tab)).unwrap().status, 200, "split on any whitespace");
        assert!(read_head(&mut Cursor::new(b"<html>\r\n\r\n".to_vec())).is_err(), "HTTP/0.9");
        assert!(read_head(&mut Cursor::new(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n".to_vec())).is_err());
        let hidden = b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 9\r\n\r\n".to_vec();
        assert!(read_head(&mut Cursor::new(hidden)).is_err(), "a bare CR hides a header from one reader");
        let folded = b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\rContent-Encoding: gzip\r\n\r\n".to_vec();
        assert!(read_head(&mut Cursor::new(folded)).is_err(), "in a folded line too");
    }

    #[test]
    fn a_chunked_body_is_decoded_and_every_cut_is_an_error() {
        let ok = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n".to_vec();
        assert_eq!(body(Chunked::new(Cursor::new(ok))).unwrap(), b"hello world");
        for cut in [&b"5\r\nhel"[..], b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n", b"5"] {
            assert!(body(Chunked::new(Cursor::new(cut.to_vec()))).is_err(), "{:?}", cut);
        }
        assert!(body(Chunked::new(Cursor::new(b"5\r\nhelloXX\r\n0\r\n\r\n".to_vec()))).is_err());
        assert!(body(Chunked::new(Cursor::new(b"zz\r\n".to_vec()))).is_err());
        let padded = b"000000000000000000005\r\nhello\r\n0\r\n\r\n".to_vec();
        assert_eq!(body(Chunked::new(Cursor::new(padded))).unwrap(), b"hello", "leading zeros");
        assert!(body(Chunked::new(Cursor::new(b"10000000000000000\r\n".to_vec()))).is_err(), "past u64");
    }

    #[test]
    fn an_endless_chunk_size_line_is_refused_at_the_line_bound() {
        // An endless line of "0": refused once MAX_LINE bytes are buffered, never more.
        struct Zeros(usize);
        impl Read for Zeros {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += buf.len();
                assert!(self.0 < 4 * MAX_LINE, "read far past the line bound");
                buf.iter_mut().for_each(|b| *b = b'0');
                Ok(buf.len())
            }
        }
        let err = body(Chunked::new(io::BufReader::new(Zeros(0)))).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{}", err);
    }

    #[test]
    fn a_sized_body_ending_early_is_an_error() {
        assert_eq!(body(Sized::new(Cursor::new(b"hello".to_vec()), 5)).unwrap(), b"hello");
        assert_eq!(body(Sized::new(Cursor::new(b"hello, more".to_vec()), 5)).unwrap(), b"hello");
        assert!(body(Sized::new(Cursor::new(b"hel".to_vec()), 5)).is_err());
    }
}
