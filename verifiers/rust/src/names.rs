//! The name, digest and time rules of FORMAT 2 section 1 and docs/trust.md sections 2 and 5,
//! each matched in full (no trailing-newline acceptance, ASCII only).

fn ascii_all(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(ok)
}

fn lower_digit(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Plugin name `^[a-z][a-z0-9_-]{1,63}$`.
pub fn is_plugin_name(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && ascii_all(&s[1..], |c| lower_digit(c) || c == b'_' || c == b'-')
}

/// Plugin pattern: a name, `prefix*` (prefix `^[a-z][a-z0-9_-]{0,62}$`) or `*`.
pub fn is_plugin_pattern(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    if let Some(prefix) = s.strip_suffix('*') {
        let b = prefix.as_bytes();
        return (1..=63).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && ascii_all(&prefix[1..], |c| lower_digit(c) || c == b'_' || c == b'-');
    }
    is_plugin_name(s)
}

pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Whether every plugin name pattern `inner` matches is also matched by pattern `outer`
/// (docs/trust.md 5.5 step 4): an outer `prefix*` holds an inner (without its trailing `*`)
/// starting with `prefix`; an exact outer holds only itself.
pub fn pattern_within(inner: &str, outer: &str) -> bool {
    match outer.strip_suffix('*') {
        Some(prefix) => inner.strip_suffix('*').unwrap_or(inner).starts_with(prefix),
        None => inner == outer,
    }
}

/// Key id `^[0-9A-F]{16}$`.
pub fn is_key_id(s: &str) -> bool {
    s.len() == 16 && ascii_all(s, |c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
}

/// Permission `^[a-z][a-z0-9_-]{0,63}$`.
pub fn is_permission(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && ascii_all(&s[1..], |c| lower_digit(c) || c == b'_' || c == b'-')
}

/// File name `^[A-Za-z0-9._-]{1,255}$`, not `.` or `..`.
pub fn is_file_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s != "."
        && s != ".."
        && ascii_all(s, |c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Registry name `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
/// plugin.toml, yank.toml or a signature name of either (`…minisig` after `plugin.toml.` or
/// `yank.toml.`), compared in lower case: a release's own metadata files, which no module may be
/// named (format/rules.py `is_reserved_name`).
pub fn is_reserved_name(s: &str) -> bool {
    let folded = s.to_ascii_lowercase();
    if s.contains('/') {
        return false;
    }
    folded == "plugin.toml"
        || folded == "yank.toml"
        || (folded.ends_with(".minisig") && (folded.starts_with("plugin.toml.") || folded.starts_with("yank.toml.")))
}

/// `plugin.toml.minisig` or `plugin.toml.<KEYID>.minisig`: the only files a lockfile entry's
/// `signatures` may name.
pub fn is_manifest_signature_name(s: &str) -> bool {
    match s.strip_prefix("plugin.toml.").and_then(|rest| rest.strip_suffix("minisig")) {
        Some("") => true,
        Some(keyed) => keyed.strip_suffix('.').map_or(false, is_key_id),
        None => false,
    }
}

pub fn is_registry_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && ascii_all(s, |c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Maintainer id `^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`.
pub fn is_maintainer_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && ascii_all(s, |c| c.is_ascii_alphanumeric() || b"._@-".contains(&c))
}

/// 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && ascii_all(s, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Strict semver 2.0 without `+build` (ASCII digits only; no leading zeros).
pub fn is_version(s: &str) -> bool {
    !s.contains('+') && s.is_ascii() && semver::Version::parse(s).is_ok()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (a valid calendar date and time) as seconds since the Unix epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = &b[from..to];
        if !part.iter().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(part.iter().fold(0i64, |acc, c| acc * 10 + (c - b'0') as i64))
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y < 1 || d < 1 || d > days_in_month || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_full() {
        assert!(is_plugin_name("validate_email"));
        assert!(!is_plugin_name("validate_email\n"));
        assert!(!is_plugin_name("a"));
        assert!(!is_plugin_name("Abc"));
        assert!(!is_plugin_name("ab/c"));
        assert!(!is_plugin_name(&"a".repeat(65)));
        assert!(is_key_id("1B2C3D4E5F607182"));
        assert!(!is_key_id("1b2c3d4e5f607182"));
        assert!(!is_file_name(".."));
        assert!(!is_file_name("a/b"));
        assert!(is_file_name("x.wasm"));
        assert!(is_plugin_pattern("json-*"));
        assert!(!is_plugin_pattern("json-*x"));
        assert!(pattern_matches("json-*", "json-x"));
        assert!(!pattern_matches("json-*", "jsonx"));
    }

    #[test]
    fn versions_are_strict_semver_without_build() {
        assert!(is_version("1.0.0"));
        assert!(is_version("1.0.0-rc.1"));
        assert!(!is_version("1.0.0+build"));
        assert!(!is_version("01.0.0"));
        assert!(!is_version("1.0"));
        assert!(!is_version("1.0.0-01"));
    }

    #[test]
    fn times_are_one_spelling_and_a_real_date() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-27T12:00:00Z"), Some(1_795_780_800));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_time("2026-02-29T00:00:00Z"), None);
        assert_eq!(parse_time("2026-11-27T12:00:60Z"), None);
        assert_eq!(parse_time("2026-11-27T12:00:00+00:00"), None);
        assert_eq!(parse_time("2026-11-27 12:00:00Z"), None);
    }
}
