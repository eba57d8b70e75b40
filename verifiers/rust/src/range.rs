//! Requirement and range syntax (FORMAT 2 section 7), npm semantics, on `semver::Version`.
//! `semver::VersionReq` has Cargo's syntax (`1.2` means `^1.2`, `,` is required between
//! comparators, no `||`), so the grammar is implemented here:
//!
//! ```text
//! range      := set ( ws* "||" ws* set )*
//! set        := comparator ( (ws+ | ws* "," ws*) comparator )*
//! comparator := ("=" | ">" | ">=" | "<" | "<=")? partial | "^" partial | "~" partial | "*"
//! partial    := major ("." minor ("." patch ("-" prerelease)?)?)?   (minor/patch may be x or *)
//! ```

use crate::names;
use semver::{Prerelease, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One bound of a set: operator, version, and whether the user wrote a prerelease there
/// (only then may prereleases of that major.minor.patch match the set).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    op: Op,
    version: Version,
    names_pre: bool,
}

impl Bound {
    fn matches(&self, v: &Version) -> bool {
        match self.op {
            Op::Eq => v == &self.version,
            Op::Gt => v > &self.version,
            Op::Ge => v >= &self.version,
            Op::Lt => v < &self.version,
            Op::Le => v <= &self.version,
        }
    }
}

/// A parsed range: sets of bounds, any set may match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    text: String,
    sets: Vec<Vec<Bound>>,
}

/// A parsed `NAME` or `NAME@RANGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub name: String,
    /// the range text as written (empty for a bare name)
    pub spec: String,
    pub range: Range,
}

impl Requirement {
    /// `NAME` or `NAME@RANGE`, nothing trimmed. A bare name is the range `*`.
    pub fn parse(text: &str) -> Result<Requirement, ReqError> {
        let (name, spec) = match text.find('@') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        if !names::is_plugin_name(name) {
            return Err(ReqError::Name(format!("{:?} is not a plugin name (^[a-z][a-z0-9_-]{{1,63}}$)", name)));
        }
        let (spec, range) = match spec {
            None => (String::new(), Range::parse("*").expect("* is a range")),
            Some(s) => (s.to_owned(), Range::parse(s).map_err(ReqError::Range)?),
        };
        Ok(Requirement { name: name.to_owned(), spec, range })
    }

    pub fn is_exact(&self) -> bool {
        !self.spec.is_empty() && self.range.exact().is_some()
    }
}

/// Why a requirement was refused: a name that is not a plugin name, or a range outside the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReqError {
    Name(String),
    Range(String),
}

impl ReqError {
    pub fn message(&self) -> &str {
        match self {
            ReqError::Name(m) | ReqError::Range(m) => m,
        }
    }
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn ver(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

fn comparator(token: &str, text: &str) -> Result<Vec<Bound>, String> {
    let bad = |why: &str| format!("version range {:?} is not valid: {:?} {}", text, token, why);
    if token == "*" {
        return Ok(Vec::new());
    }
    let (op, rest) = [">=", "<=", "^", "~", ">", "<", "="]
        .iter()
        .find_map(|op| token.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("=", token));
    let (core, pre) = match rest.find('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 {
        return Err(bad("is not a comparator"));
    }
    let wild = |p: &str| p == "x" || p == "*";
    let major = num(parts[0]).ok_or_else(|| bad("is not a comparator"))?;
    let field = |i: usize| -> Result<Option<Option<u64>>, String> {
        match parts.get(i) {
            None => Ok(None),
            Some(p) if wild(p) => Ok(Some(None)),
            Some(p) => num(p).map(|n| Some(Some(n))).ok_or_else(|| bad("is not a comparator")),
        }
    };
    let (minor_f, patch_f) = (field(1)?, field(2)?);
    if matches!(minor_f, Some(None)) && matches!(patch_f, Some(Some(_))) {
        return Err(bad("has a wildcard minor but a fixed patch"));
    }
    let minor = minor_f.flatten();
    let patch = patch_f.flatten();
    let full = minor.is_some() && patch.is_some();
    let pre = match pre {
        None => Prerelease::EMPTY,
        Some(p) => {
            if patch_f.is_none() || !p.is_ascii() {
                return Err(bad("is not a comparator"));
            }
            if !full {
                return Err(bad("has a prerelease after a wildcard"));
            }
            // semver checks the identifiers: non-empty, no leading zeros in numeric ones
            Version::parse(&format!("0.0.0-{}", p)).map_err(|_| bad("is not a comparator"))?.pre
        }
    };
    let names_pre = !pre.is_empty();
    let mut low = ver(major, minor.unwrap_or(0), patch.unwrap_or(0));
    low.pre = pre;
    let above = match (minor, patch) {
        (None, _) => ver(major + 1, 0, 0),
        (Some(m), None) => ver(major, m + 1, 0),
        (Some(m), Some(p)) => ver(major, m, p + 1),
    };
    let b = |op: Op, version: Version, names_pre: bool| Bound { op, version, names_pre };
    Ok(match op {
        "^" => {
            let top = match (minor, patch) {
                _ if major > 0 => ver(major + 1, 0, 0),
                (None, _) => ver(major + 1, 0, 0),
                (Some(m), None) => ver(0, m + 1, 0),
                (Some(m), Some(_)) if m > 0 => ver(0, m + 1, 0),
                (Some(_), Some(p)) => ver(0, 0, p + 1),
            };
            vec![b(Op::Ge, low, names_pre), b(Op::Lt, top, false)]
        }
        "~" => {
            let top = match minor {
                None => ver(major + 1, 0, 0),
                Some(m) => ver(major, m + 1, 0),
            };
            vec![b(Op::Ge, low, names_pre), b(Op::Lt, top, false)]
        }
        "=" if full => vec![b(Op::Eq, low, names_pre)],
        "=" => vec![b(Op::Ge, low, false), b(Op::Lt, above, false)],
        ">" if full => vec![b(Op::Gt, low, names_pre)],
        ">" => vec![b(Op::Ge, above, false)],
        ">=" => vec![b(Op::Ge, low, names_pre)],
        "<" => vec![b(Op::Lt, low, names_pre)],
        "<=" if full => vec![b(Op::Le, low, names_pre)],
        _ => vec![b(Op::Lt, above, false)], // "<=" of a partial
    })
}

/// Split on `sep` (a literal) with optional spaces/tabs around it.
fn split_around<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(sep) {
        out.push(rest[..i].trim_end_matches(is_ws));
        rest = rest[i + sep.len()..].trim_start_matches(is_ws);
    }
    out.push(rest);
    out
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        if text.is_empty() || text != text.trim_matches(is_ws) || text.len() > 256 {
            return Err(format!("version range {:?} is not valid: empty, surrounded by spaces or too long", text));
        }
        let mut sets = Vec::new();
        for part in split_around(text, "||") {
            if part.is_empty() {
                return Err(format!("version range {:?} is not valid: an empty alternative around '||'", text));
            }
            let mut bounds = Vec::new();
            // ws* "," ws* or ws+ between comparators
            for chunk in split_around(part, ",") {
                if chunk.is_empty() {
                    return Err(format!("version range {:?} is not valid: an empty comparator", text));
                }
                for token in chunk.split(is_ws).filter(|t| !t.is_empty()) {
                    bounds.extend(comparator(token, text)?);
                }
            }
            sets.push(bounds);
        }
        Ok(Range { text: text.to_owned(), sets })
    }

    /// The version an exact pin (`1.2.3` or `=1.2.3`, the whole range) names: the only way to
    /// select a yanked release.
    pub fn exact(&self) -> Option<Version> {
        let body = self.text.strip_prefix('=').unwrap_or(&self.text);
        if names::is_version(body) {
            Version::parse(body).ok()
        } else {
            None
        }
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.sets.iter().any(|set| {
            (v.pre.is_empty()
                || set.iter().any(|b| {
                    b.names_pre && (b.version.major, b.version.minor, b.version.patch) == (v.major, v.minor, v.patch)
                }))
                && set.iter().all(|b| b.matches(v))
        })
    }

    /// A release's `host` range admits `host_version`; an unparseable range admits nothing.
    pub fn host_compatible(host: Option<&str>, host_version: Option<&Version>) -> bool {
        match (host, host_version) {
            (Some(h), Some(v)) => Range::parse(h).map(|r| r.matches(v)).unwrap_or(false),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(range: &str, v: &str) -> bool {
        Range::parse(range).unwrap_or_else(|e| panic!("{}", e)).matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn caret_tilde_and_partials_follow_npm() {
        assert!(m("^1.2", "1.2.0") && m("^1.2", "1.9.9") && !m("^1.2", "2.0.0") && !m("^1.2", "1.1.9"));
        assert!(m("^0.2.3", "0.2.9") && !m("^0.2.3", "0.3.0") && !m("^0.2.3", "0.2.2"));
        assert!(m("^0.0.3", "0.0.3") && !m("^0.0.3", "0.0.4"));
        assert!(m("^0", "0.9.0") && !m("^0", "1.0.0"));
        assert!(m("^0.0", "0.0.5") && !m("^0.0", "0.1.0"));
        assert!(m("~1.2", "1.2.7") && !m("~1.2", "1.3.0"));
        assert!(m("~1.2.3", "1.2.9") && !m("~1.2.3", "1.3.0") && !m("~1.2.3", "1.2.2"));
        assert!(m("~1", "1.9.0") && !m("~1", "2.0.0"));
        assert!(m("1.2", "1.2.5") && !m("1.2", "1.3.0"));
        assert!(m("1", "1.5.0") && !m("1", "2.0.0"));
        assert!(m("1.2.3", "1.2.3") && !m("1.2.3", "1.2.4"));
        assert!(m("1.x", "1.4.0") && m("1.2.*", "1.2.8") && !m("1.x", "2.0.0"));
        assert!(m("*", "3.0.0"));
    }

    #[test]
    fn comparators_and_sets() {
        assert!(m(">=0.2.0, <1.0.0", "0.3.1") && !m(">=0.2.0, <1.0.0", "1.0.0"));
        assert!(m(">=1.0.0 <2.0.0", "1.5.0") && !m(">=1.0.0 <2.0.0", "2.0.0"));
        assert!(m("<1.1 || >=2", "1.0.9") && m("<1.1 || >=2", "2.1.0") && !m("<1.1 || >=2", "1.5.0"));
        assert!(m(">1.2", "1.3.0") && !m(">1.2", "1.2.9"));
        assert!(m(">1", "2.0.0") && !m(">1", "1.9.0"));
        assert!(m("<=1.2", "1.2.9") && !m("<=1.2", "1.3.0"));
        assert!(m("<1.2", "1.1.9") && !m("<1.2", "1.2.0"));
        assert!(m(">=1.0.0,<2.0.0", "1.0.0"));
    }

    #[test]
    fn prereleases_match_only_when_their_tuple_is_named() {
        assert!(!m("^1.0", "1.1.0-rc.1"));
        assert!(!m("*", "1.0.0-rc.1"));
        assert!(m(">=1.2.3-beta.1 <2", "1.2.3-beta.2"));
        assert!(!m(">=1.2.3-beta.1 <2", "1.2.4-beta.2"));
        assert!(m("^1.2.3-beta.2", "1.2.3-beta.3") && !m("^1.2.3-beta.2", "1.2.3-beta.1"));
        assert!(m("1.2.3-rc.1", "1.2.3-rc.1"));
    }

    #[test]
    fn only_a_whole_range_of_one_exact_version_is_an_exact_pin() {
        assert!(Range::parse("1.2.3").unwrap().exact().is_some());
        assert!(Range::parse("=1.2.3").unwrap().exact().is_some());
        assert!(Range::parse("1.2").unwrap().exact().is_none());
        assert!(Range::parse("1.2.3 || 1.2.4").unwrap().exact().is_none());
        assert!(Range::parse(">=1.2.3").unwrap().exact().is_none());
    }

    #[test]
    fn anything_outside_the_grammar_is_refused() {
        for bad in [
            "",
            " ",
            "1.2.3 - 2.0.0",
            "^",
            "~>1.2",
            "1.2.3+build",
            "01.2.3",
            "a.b.c",
            ">= 1.0",
            "1.2.3,",
            ",1.2.3",
            "1.2.3 |",
            "|| 1.2.3",
            "1.2.3 ||",
            "1 | 2",
            "x.1",
            "1.2.3-",
            "1.2.3-01",
            "1.2-rc",
            "v1.2.3",
            "1.2.3.4",
            "1.2.3 ",
            "!=1.0.0",
            "1.0.0\n",
            "x",
            "1.x.3",
            " 1.2.3",
        ] {
            assert!(Range::parse(bad).is_err(), "{:?} was accepted", bad);
        }
    }

    #[test]
    fn requirements_split_name_and_range() {
        let r = Requirement::parse("validate_email@^1.0").unwrap();
        assert_eq!((r.name.as_str(), r.spec.as_str()), ("validate_email", "^1.0"));
        assert!(Requirement::parse("validate_email").unwrap().spec.is_empty());
        assert!(Requirement::parse("../x@1.0.0").is_err());
        assert!(Requirement::parse("Bad@1.0.0").is_err());
        assert!(Requirement::parse("ok_name@").is_err());
        assert!(Requirement::parse(" validate_email").is_err());
        assert!(Requirement::parse("validate_email@1.2.3").unwrap().is_exact());
        assert!(!Requirement::parse("validate_email@^1.2.3").unwrap().is_exact());
    }
}
