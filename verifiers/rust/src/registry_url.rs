//! The registry URL rule of a lockfile entry (conformance decision 15).

/// Why a lockfile entry's registry URL is one the Python client refuses (None when it accepts
/// it). The trust state is looked up by each entry's registry URL, so reading the lockfile
/// refuses such an entry (class `lockfile`, as the Python client's `install._registry`), whatever
/// the operation. The Python client's `normalise_url` (registry_tool/client/store.py) refuses a URL `urlsplit`
/// cannot parse (an unbalanced or invalid bracketed host, a netloc holding a character whose NFKC
/// form holds / ? # @ or :, a port that is not 0-65535 in ASCII digits), whose scheme is not
/// http, https or file, that holds a user name or password, or that names no host (file URLs
/// excepted).
pub fn locked_registry_problem(raw: &str) -> Option<String> {
    let (scheme, netloc, _) = split(raw);
    let netloc = netloc.as_deref().unwrap_or("");
    // With an `@` anywhere, a piece of the netloc may be a password's (`https://ci:ab/cd@host/`
    // has the port `ab`): the messages then name no piece of it.
    let secret = raw.contains('@') || raw.contains("%40");
    if !netloc.is_empty() {
        if netloc.chars().any(nfkc_url_delimiter) {
            return Some(
                "cannot be parsed (the host holds a character that NFKC-normalises to one of / ? # @ :)".into(),
            );
        }
        let (open, closed) = (netloc.contains('['), netloc.contains(']'));
        if open != closed {
            return Some("cannot be parsed (Invalid IPv6 URL)".into());
        }
        if open {
            let inner = &netloc[netloc.find('[').unwrap() + 1..];
            let inner = &inner[..inner.find(']').unwrap_or(inner.len())];
            if !bracketed_host_ok(inner) {
                if secret {
                    return Some("cannot be parsed (the bracketed host is not an IPv6 address)".into());
                }
                return Some(format!("cannot be parsed ({:?} is not an IPv6 address)", inner));
            }
        }
    }
    let hostinfo = &netloc[netloc.rfind('@').map_or(0, |i| i + 1)..];
    let (host, port) = match hostinfo.split_once('[') {
        Some((_, bracketed)) => {
            let (h, r) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (h, r.split_once(':').map_or("", |(_, p)| p))
        }
        None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
    };
    if !port.is_empty() {
        if !port.bytes().all(|c| c.is_ascii_digit()) {
            if secret {
                return Some("cannot be parsed (the port is not a number)".into());
            }
            return Some(format!("cannot be parsed (the port {:?} is not a number)", port));
        }
        if port.trim_start_matches('0').len() > 5 || port.parse::<u32>().map_or(true, |n| n > 65535) {
            return Some("cannot be parsed (the port is out of range 0-65535)".into());
        }
    }
    if !matches!(scheme.as_str(), "http" | "https" | "file") {
        return Some("is not an http://, https:// or file:// URL".into());
    }
    if netloc.contains('@') {
        return Some(USERINFO_PROBLEM.into());
    }
    if scheme != "file" && host.is_empty() {
        return Some("names no host".into());
    }
    None
}

/// The first steps of Python's `urlsplit` on `strip()`ped input: leading C0 controls and spaces
/// dropped, tabs, CR and LF removed anywhere, a scheme (lower-cased) before the first `:`, the
/// netloc between `//` and the first `/`, `?` or `#` (None without `//`), and what follows it.
fn split(raw: &str) -> (String, Option<String>, String) {
    let trimmed = raw.trim_matches(crate::manifest::py_is_space).trim_start_matches(|c: char| c <= ' ');
    let u: String = trimmed.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    let mut rest = u.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let head = &rest[..i];
        if i > 0
            && head.as_bytes()[0].is_ascii_alphabetic()
            && head.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            scheme = head.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (scheme, Some(after[..end].to_owned()), after[end..].to_owned())
        }
        None => (scheme, None, rest.to_owned()),
    }
}

/// The one spelling the Python client's `normalise_url` gives a registry URL
/// `locked_registry_problem` accepts: scheme and host lower-cased, the path without a trailing
/// `registry.json` (people paste the file's URL) and with a trailing `/`, no query or fragment.
/// The trust state and every lockfile entry hold it, so the three clients name a registry alike.
/// A URL `locked_registry_problem` refuses is returned as it is (its own check refuses it).
pub fn canonical(raw: &str) -> String {
    if locked_registry_problem(raw).is_some() {
        return raw.to_owned();
    }
    let (scheme, netloc, rest) = split(raw);
    let mut path = rest[..rest.find(['?', '#']).unwrap_or(rest.len())].to_owned();
    if let Some(stripped) = path.strip_suffix("registry.json") {
        path = stripped.to_owned();
    }
    if !path.ends_with('/') {
        path.push('/');
    }
    let netloc = netloc.unwrap_or_default();
    if netloc.is_empty() && path.starts_with("//") {
        return format!("{}:{}", scheme, path); // Python's urlunsplit adds no `//` before a path that has one
    }
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // str::to_lowercase is Python's str.lower: full mappings and the final sigma.
    format!("{}://{}{}", scheme, netloc.to_lowercase(), path)
}

/// A registry URL is written into the lockfile, the trust state and messages, so a user name or
/// password in it would leak (conformance decision 15).
pub const USERINFO_PROBLEM: &str =
    "holds a user name or password, which would be written into the lockfile, the trust state and messages";

/// How a refused URL is shown, the rule of the Python client's `store.redacted`: tabs, CR and
/// LF removed; everything from the first `//` to the last `@` after it becomes `***` (a password
/// may hold `/`, `?` or `#`: base64 tokens do); then, in each run of characters other than
/// whitespace, quotes, `/`, `[`, `]` and `@`, the part before an `@` that ends the run or before
/// the run's last `%40` becomes `***` (`https:/user:token@host`). Over-redacting costs nothing.
pub fn redacted(raw: &str) -> String {
    let mut clean: String = raw.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    if let Some(i) = clean.find("//") {
        if let Some(at) = clean[i + 2..].rfind('@') {
            clean = format!("{}***{}", &clean[..i + 2], &clean[i + 2 + at..]);
        }
    }
    let breaks = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '/' | '[' | ']' | '@');
    let mut out = String::new();
    let mut rest = clean.as_str();
    while !rest.is_empty() {
        let end = rest.find(breaks).unwrap_or(rest.len());
        let run = &rest[..end];
        if end > 0 && rest[end..].starts_with('@') {
            out.push_str("***");
        } else {
            match run.rfind("%40") {
                Some(p) if p > 0 => {
                    out.push_str("***");
                    out.push_str(&run[p..]);
                }
                _ => out.push_str(run),
            }
        }
        match rest[end..].chars().next() {
            Some(c) => {
                out.push(c);
                rest = &rest[end + c.len_utf8()..];
            }
            None => rest = "",
        }
    }
    out
}

/// Python's `_check_bracketed_host`: an IPvFuture (a lower-case `v`, hex digits, a dot, then any
/// characters at all: Python's pattern is `v[a-fA-F0-9]+\..+`) or an IPv6 address with an
/// optional zone (Python's `ipaddress`: a zone is not empty and holds no `%`), never an IPv4 one.
fn bracketed_host_ok(h: &str) -> bool {
    if let Some(future) = h.strip_prefix('v') {
        return match future.split_once('.') {
            Some((hex, rest)) => !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) && !rest.is_empty(),
            None => false,
        };
    }
    let addr = h.split_once('%').map_or(h, |(a, zone)| if zone.is_empty() || zone.contains('%') { "" } else { a });
    addr.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Whether `c` is one of the characters whose NFKC form holds `/ ? # @ :`, which Python's
/// `urlsplit` refuses in a netloc (`urllib.parse._checknetloc`: a non-ASCII netloc, its `@` and
/// `:` removed, must not gain one of them under NFKC; as NFKC never composes these ASCII
/// characters away, that is a netloc holding one of these code points). The list is every such
/// code point of Python's `unicodedata` (Unicode 14): `[c for c in range(0x80, 0x110000) if
/// any(x in unicodedata.normalize("NFKC", chr(c)) for x in "/?#@:")]`.
fn nfkc_url_delimiter(c: char) -> bool {
    matches!(
        c,
        '\u{2047}' | '\u{2048}' | '\u{2049}' // ⁇ ⁈ ⁉
            | '\u{2100}' | '\u{2101}' | '\u{2105}' | '\u{2106}' // ℀ ℁ ℅ ℆ (a/c a/s c/o c/u)
            | '\u{2A74}' // ⩴ (::=)
            | '\u{FE13}' | '\u{FE16}' | '\u{FE55}' | '\u{FE56}' | '\u{FE5F}' | '\u{FE6B}' // vertical and small forms
            | '\u{FF03}' | '\u{FF0F}' | '\u{FF1A}' | '\u{FF1F}' | '\u{FF20}' // full-width # / : ? @
    )
}

#[cfg(test)]
mod tests {
    use super::locked_registry_problem as p;

    #[test]
    fn registry_urls_are_judged_as_python_normalises_them() {
        for ok in [
            "http://127.0.0.1:8080/",
            "HTTPS://H/x",
            "file:///tmp/x/",
            "file:x",
            " http://h/\u{2003}",
            "ht\ntp://h/",
            "http://[::1]/",
            "http://h:/",
            "http://h?q",
            "http://\u{e9}/",
            "http://h/\u{ff0f}",
            "http://[fe80::1%a b]/",
            "http://[fe80::1%\u{e9}]/",
            "http://[v1.a b]/",
            "http://[v1.\u{e9}]/",
            "http://[vF.:]/",
            "http://h/a@b/",
            "file:///home/a@b/site/",
        ] {
            assert_eq!(p(ok), None, "{:?}", ok);
        }
        for bad in [
            "ftp://127.0.0.1/",
            "gopher://x/",
            "",
            "plugins/",
            "http:///",
            "http:x",
            "http://u@/",
            "http://[::1/",
            "http://[1.2.3.4]/",
            "http://[zz]/",
            "http://[]/",
            "http://h:1:2/",
            "http://h:+1/",
            "http://h:99999/",
            "1http://h/",
            "http://h:\u{ff10}/",
            "http://h\u{ff0f}x/",
            "http://a\u{2100}b/",
            "http://u\u{ff20}@h/",
            "file://h\u{2047}/",
            "http://[::1]\u{ff1a}/",
            "http://[::1%1%2]/",
            "http://[fe80::1%%]/",
            "http://[fe80::1%]/",
            "http://[v1.]/",
            "http://[V1.a]/",
            "http://u:p@h/",
            "http://@h/",
            "https://token@h:8443/x/",
            "file://u@/x/",
        ] {
            assert!(p(bad).is_some(), "{:?} accepted", bad);
        }
    }

    /// conformance/url-vectors.json holds the Python client's answers: how `normalise_url` spells an
    /// accepted registry URL and how a refused one is shown.
    #[test]
    fn the_shared_url_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/url-vectors.json");
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(_) => return, // not in a registry-tool checkout
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (key, f) in [("canonical", super::canonical as fn(&str) -> String), ("redacted", super::redacted)] {
            for pair in v[key].as_array().unwrap() {
                let (raw, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
                assert_eq!(f(raw), want, "{} of {:?}", key, raw);
            }
        }
        // No piece of a password in a refusal: `https://ci:sec/ret@host/` has the port `sec`.
        for (u, piece) in [
            ("https://ci:sec/ret@host/", "sec"),
            ("http://[u:secret@::1]/", "secret"),
            ("http://u:secret@h/", "secret"),
        ] {
            let why = p(u).unwrap();
            assert!(!why.contains(piece), "{:?}: {}", u, why);
        }
    }
}
