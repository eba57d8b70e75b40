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
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A number of a range. The grammar has no upper limit (Python reads any size): every number
/// above `u64::MAX` (a release's largest), and the successor of `u64::MAX`, is [`OVER`], above
/// every number of a release, so they all compare the same.
type Num = u128;
const OVER: Num = u64::MAX as Num + 1;

fn next(n: Num) -> Num {
    (n + 1).min(OVER)
}

/// The version of a bound: major.minor.patch (each possibly [`OVER`]) and a prerelease.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BoundVersion {
    major: Num,
    minor: Num,
    patch: Num,
    pre: Prerelease,
}

impl BoundVersion {
    fn core(&self) -> (Num, Num, Num) {
        (self.major, self.minor, self.patch)
    }

    /// `v` against this version, in semver precedence.
    fn cmp_release(&self, v: &Version) -> Ordering {
        (v.major as Num, v.minor as Num, v.patch as Num).cmp(&self.core()).then_with(|| v.pre.cmp(&self.pre))
    }
}

/// One bound of a set: operator, version, and whether the user wrote a prerelease there
/// (only then may prereleases of that major.minor.patch match the set).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    op: Op,
    version: BoundVersion,
    names_pre: bool,
}

impl Bound {
    fn matches(&self, v: &Version) -> bool {
        let c = self.version.cmp_release(v);
        match self.op {
            Op::Eq => c == Ordering::Equal,
            Op::Gt => c == Ordering::Greater,
            Op::Ge => c != Ordering::Less,
            Op::Lt => c == Ordering::Less,
            Op::Le => c != Ordering::Greater,
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

/// `0|[1-9][0-9]*`, any size (see [`Num`]).
fn num(s: &str) -> Option<Num> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    Some(if s.len() > 20 { OVER } else { s.parse::<Num>().ok()?.min(OVER) })
}

/// A prerelease of the grammar: dot-separated `0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*`
/// (no `+build`: the grammar has none).
fn is_prerelease(p: &str) -> bool {
    p.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && (!id.bytes().all(|c| c.is_ascii_digit()) || id == "0" || !id.starts_with('0'))
    })
}

fn ver(major: Num, minor: Num, patch: Num) -> BoundVersion {
    BoundVersion { major, minor, patch, pre: Prerelease::EMPTY }
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
    let field = |i: usize| -> Result<Option<Option<Num>>, String> {
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
            if patch_f.is_none() || !is_prerelease(p) {
                return Err(bad("is not a comparator"));
            }
            if !full {
                return Err(bad("has a prerelease after a wildcard"));
            }
            Prerelease::new(p).map_err(|_| bad("is not a comparator"))?
        }
    };
    let names_pre = !pre.is_empty();
    let mut low = ver(major, minor.unwrap_or(0), patch.unwrap_or(0));
    low.pre = pre;
    let above = match (minor, patch) {
        (None, _) => ver(next(major), 0, 0),
        (Some(m), None) => ver(major, next(m), 0),
        (Some(m), Some(p)) => ver(major, m, next(p)),
    };
    let b = |op: Op, version: BoundVersion, names_pre: bool| Bound { op, version, names_pre };
    Ok(match op {
        "^" => {
            let top = match (minor, patch) {
                _ if major > 0 => ver(next(major), 0, 0),
                (None, _) => ver(next(major), 0, 0),
                (Some(m), None) => ver(0, next(m), 0),
                (Some(m), Some(_)) if m > 0 => ver(0, next(m), 0),
                (Some(_), Some(p)) => ver(0, 0, next(p)),
            };
            vec![b(Op::Ge, low, names_pre), b(Op::Lt, top, false)]
        }
        "~" => {
            let top = match minor {
                None => ver(next(major), 0, 0),
                Some(m) => ver(major, next(m), 0),
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
                || set
                    .iter()
                    .any(|b| b.names_pre && b.version.core() == (v.major as Num, v.minor as Num, v.patch as Num)))
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

    /// The successor of u64::MAX overflowed (a panic in debug builds, a wrap to 0 in release:
    /// `>MAX` matched every release); numbers of any size follow Python: above every release number.
    #[test]
    fn ranges_at_the_largest_number_follow_python() {
        let max = "18446744073709551615";
        let versions = [
            "0.0.0".to_owned(),
            "1.2.3".to_owned(),
            format!("{}.0.0", max),
            format!("{}.5.0", max),
            format!("{0}.{0}.{0}", max),
            format!("1.{}.0", max),
            format!("1.2.{}", max),
            format!("{}.0.0-rc.1", max),
        ];
        let matching = |range: &str| -> Vec<usize> {
            let r = Range::parse(range).unwrap_or_else(|e| panic!("{}", e));
            (0..versions.len()).filter(|&i| r.matches(&Version::parse(&versions[i]).unwrap())).collect()
        };
        // the expectations are Python's (registry_tool.format.ranges)
        let cases: Vec<(String, Vec<usize>)> = vec![
            (format!(">{}", max), vec![]),
            (format!(">={}.1", max), vec![3, 4]),
            (format!("<={}", max), vec![0, 1, 2, 3, 4, 5, 6]),
            (format!("^{}", max), vec![2, 3, 4]),
            (format!("~{0}.{0}", max), vec![4]),
            (format!("1.{}", max), vec![5]),
            (format!("<=1.2.{}", max), vec![0, 1, 6]),
            (format!("^0.0.{}", max), vec![]),
            (format!(">1.2.{}", max), vec![2, 3, 4, 5]),
            (">=99999999999999999999".to_owned(), vec![]),
            ("<99999999999999999999".to_owned(), vec![0, 1, 2, 3, 4, 5, 6]),
            ("1.99999999999999999999.x".to_owned(), vec![]),
            ("<1.99999999999999999999".to_owned(), vec![0, 1, 5, 6]),
            (format!(">={0}.0.0-rc.0 <={0}", max), vec![2, 3, 4, 7]),
            (format!("<{}", "9".repeat(200)), vec![0, 1, 2, 3, 4, 5, 6]),
        ];
        for (range, want) in cases {
            assert_eq!(matching(&range), want, "{}", range);
        }
        assert!(m(">=1.0.0-99999999999999999999", "1.0.0-100000000000000000000"));
        assert!(!m(">=1.0.0-99999999999999999999", "1.0.0-99999999999999999998"));
    }

    /// `Version::parse("0.0.0-" + p)` read `rc.1+build` as a prerelease and build metadata; the
    /// grammar has no `+`.
    #[test]
    fn build_metadata_after_a_prerelease_is_refused() {
        for bad in ["1.0.0-rc.1+build", "^1.0.0-rc.1+build", ">=2.0.0-rc.1+b.2", "1.0.0-rc+", "1.0.0-é", "1.0.0-rc..1"]
        {
            assert!(Range::parse(bad).is_err(), "{:?} was accepted", bad);
        }
        assert!(m("^1.0.0-rc.1", "1.0.0-rc.2") && m("1.0.0-0.a-b.0c", "1.0.0-0.a-b.0c"));
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
