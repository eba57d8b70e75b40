//! The facts a verifier takes from a maintainer-signed `plugin.toml` (docs/manifest.md). The
//! signed manifest, not the registry's plugin document, decides a release's identity,
//! artifact pin, ABI, host range, exports, permissions and dependencies.

use std::collections::{BTreeMap, BTreeSet};
use toml::Value as Toml;

/// A manifest larger than this is refused before parsing (the build's own cap is far lower).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFacts {
    pub name: String,
    pub version: String,
    pub abi: Option<String>,
    /// `[compatibility] host`, or `>=<min_host_version>`; None when neither is given.
    pub host: Option<String>,
    pub artifact_file: String,
    pub artifact_sha256: String,
    pub artifact_size: u64,
    pub exports: Vec<String>,
    /// `[exports] functions` is present (Python compares an absent list, None, with the entry's)
    pub exports_declared: bool,
    /// permission names set to true
    pub permissions: BTreeSet<String>,
    pub dependencies: BTreeMap<String, String>,
    /// `[limits]` the manifest declares: fuel, memory in bytes, wall_time in milliseconds
    pub fuel: Option<i64>,
    pub memory: Option<i64>,
    pub wall_time_ms: Option<i64>,
}

/// A number with an optional unit, as registry_tool/manifest/units.py `_NUMBER_UNIT` reads it
/// (`re.ASCII`): `^\s*(\d{1,18}(?:\.\d{1,9})?)\s*([A-Za-z]*)\s*$`; the unit in lower case.
fn number_unit(text: &str) -> Option<(f64, String)> {
    let ascii_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b');
    let t = text.trim_matches(ascii_ws);
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start_matches(ascii_ws));
    let mut parts = num.split('.');
    let int_ok = parts.next().map_or(false, |p| (1..=18).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()));
    let frac_ok = parts.next().map_or(true, |p| (1..=9).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()));
    if !int_ok || !frac_ok || parts.next().is_some() || !unit.bytes().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((num.parse().ok()?, unit.to_ascii_lowercase()))
}

/// units.py's bound on a size: the registry's documents hold integers up to 2**53.
const MAX_SAFE_SIZE: i64 = 1 << 53;

/// Bytes of a size (units.py `parse_size`): an integer in [0, 2**53], or a number with B,
/// KB/MB/GB (1000^n), KiB/MiB/GiB (1024^n), any case, up to 2**53 bytes; a float is refused.
pub fn parse_size(v: &Toml) -> Option<i64> {
    match v {
        Toml::Integer(n) if *n >= 0 && *n <= MAX_SAFE_SIZE => Some(*n),
        Toml::String(s) => {
            let (n, unit) = number_unit(s)?;
            let factor: f64 = match unit.as_str() {
                "" | "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "kib" => 1024.0,
                "mib" => 1048576.0,
                "gib" => 1073741824.0,
                _ => return None,
            };
            // Compared as the product: `as i64` saturates past its range.
            if n * factor > MAX_SAFE_SIZE as f64 {
                return None;
            }
            Some((n * factor) as i64)
        }
        _ => None,
    }
}

/// units.py `MAX_SECONDS`: a numeric duration beyond ten years is refused.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 86400.0;

/// Seconds of a duration (units.py `parse_duration`): a finite number in [0, ten years], or a
/// number with ms, s, m, h, d or w (any case).
fn parse_duration(v: &Toml) -> Option<f64> {
    let secs = match v {
        Toml::Integer(n) => *n as f64,
        Toml::Float(f) => *f,
        Toml::String(s) => {
            let (n, unit) = number_unit(s)?;
            let factor = match unit.as_str() {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                "w" => 604800.0,
                _ => return None,
            };
            // Ten years bounds a duration string as it bounds a number (units.py parse_duration).
            let secs = n * factor;
            return if secs <= MAX_SECONDS { Some(secs) } else { None };
        }
        _ => return None,
    };
    if !secs.is_finite() || secs.abs() > MAX_SECONDS || secs < 0.0 {
        return None;
    }
    Some(secs)
}

/// Milliseconds of a duration, a half rounded away from zero (units.py `milliseconds`).
pub fn parse_duration_ms(v: &Toml) -> Option<i64> {
    parse_duration(v).map(|secs| (secs * 1000.0).round() as i64)
}

/// Most `[`/`{` open at once, and most dots in one dotted key, that a TOML parser is
/// handed (conformance decision 11, the same rule as the Python client's and the Go verifier's):
/// the parser recurses on nested arrays, inline tables and dotted keys, and 20,000 levels in 40 KB
/// overflowed this verifier's stack (an abort, not an error).
pub const MAX_TOML_NESTING: usize = 64;

/// Why `text` nests too deep for a TOML parser to be trusted with it, or None. Outside strings
/// and comments: more than [`MAX_TOML_NESTING`] `[`/`{` open at once (`[`/`{` +1, `]`/`}` -1,
/// never below 0), or more than [`MAX_TOML_NESTING`] dots in one segment (every dot counts, a
/// float's or a time fraction's too; the count restarts at a newline, `=`, `,`, `{` and `[`). An
/// unterminated string ends the scan: the parser reports it. The scan of registry_tool/_toml.py `nesting_problem`, line for line.
pub fn toml_nesting_problem(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let n = b.len();
    let (mut depth, mut dots, mut i) = (0usize, 0usize, 0usize);
    while i < n {
        let c = b[i];
        match c {
            b'#' => match b[i..].iter().position(|&c| c == b'\n') {
                Some(j) => {
                    i += j;
                    continue;
                }
                None => return None,
            },
            b'"' | b'\'' => match toml_string_end(b, i) {
                Some(end) => {
                    i = end;
                    continue;
                }
                None => return None, // unterminated: the parser says where
            },
            b'\n' | b'=' | b',' | b'{' | b'[' => {
                dots = 0;
                if c == b'[' || c == b'{' {
                    depth += 1;
                    if depth > MAX_TOML_NESTING {
                        return Some(format!(
                            "more than {} arrays or inline tables are open at once",
                            MAX_TOML_NESTING
                        ));
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'.' => {
                dots += 1;
                if dots > MAX_TOML_NESTING {
                    return Some(format!("a dotted key has more than {} parts", MAX_TOML_NESTING));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index after the string whose opening quote is `b[i]`, or None when it never ends: basic
/// strings, one-line or multi-line (three double quotes; a backslash escapes the next character),
/// and literal strings, one-line or multi-line (three single quotes); a one-line string does not
/// span lines.
fn toml_string_end(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let multi = b.len() >= i + 3 && b[i + 1] == q && b[i + 2] == q;
    let close = if multi { 3 } else { 1 };
    let mut j = i + close;
    loop {
        let k = j + b.get(j..)?.windows(close).position(|w| w.iter().all(|&c| c == q))?;
        if q == b'"' {
            // a backslash escapes the next character: count the backslashes right before the quote
            let slashes = b[..k].iter().rev().take_while(|&&c| c == b'\\').count();
            if slashes % 2 == 1 {
                j = k + 1;
                continue;
            }
        }
        if !multi && b[j..k].contains(&b'\n') {
            return None; // the parser reports it
        }
        let mut end = k + close;
        while multi && end < b.len() && b[end] == q && end - k < 5 {
            end += 1; // up to two more quotes belong to a multi-line string's content
        }
        return Some(end);
    }
}

fn parse_toml(data: &[u8]) -> Result<Toml, String> {
    if data.len() > MAX_MANIFEST_BYTES {
        return Err("plugin.toml is larger than 1 MiB".into());
    }
    let text = std::str::from_utf8(data).map_err(|_| "plugin.toml is not UTF-8".to_string())?;
    if let Some(problem) = toml_nesting_problem(text) {
        return Err(format!(
            "plugin.toml is not valid TOML: {} (at most {} levels are read)",
            problem, MAX_TOML_NESTING
        ));
    }
    let doc = text.parse::<Toml>().map_err(|e| format!("plugin.toml is not valid TOML ({})", e))?;
    if let Some(d) = impossible_date(&doc) {
        return Err(format!("plugin.toml is not valid TOML (the date {} does not exist)", d));
    }
    if has_negative_infinity(&doc) {
        if let Some(f) = overflowing_float(text) {
            return Err(format!("plugin.toml is not valid TOML (the float {} is too large for 64 bits)", f));
        }
    }
    Ok(doc)
}

fn has_negative_infinity(v: &Toml) -> bool {
    match v {
        Toml::Float(f) => *f == f64::NEG_INFINITY,
        Toml::Array(items) => items.iter().any(has_negative_infinity),
        Toml::Table(t) => t.values().any(has_negative_infinity),
        _ => false,
    }
}

/// The first float written as a number that overflows to -inf (toml_edit 0.19 refuses only
/// +inf; TOML 1.0 and the Python client refuse both), read from the raw text of every float.
fn overflowing_float(text: &str) -> Option<String> {
    use toml_edit::visit::{visit_document, Visit};
    struct Finder(Option<String>);
    impl<'doc> Visit<'doc> for Finder {
        fn visit_float(&mut self, node: &'doc toml_edit::Formatted<f64>) {
            let raw = node.as_repr().and_then(|r| r.as_raw().as_str()).unwrap_or("");
            if self.0.is_none() && node.value().is_infinite() && !raw.contains("inf") {
                self.0 = Some(raw.to_owned());
            }
        }
    }
    let doc = text.parse::<toml_edit::Document>().ok()?;
    let mut finder = Finder(None);
    visit_document(&mut finder, &doc);
    finder.0
}

/// The first date in a parsed TOML value that the Python client's parser (tomli, building a
/// datetime.date) refuses and the toml crate lets through: year 0 (a proleptic Gregorian date
/// starts at year 1) or a day past the end of its month (1979-02-29, 1979-04-31).
fn impossible_date(v: &Toml) -> Option<String> {
    match v {
        Toml::Datetime(dt) => {
            let d = dt.date.as_ref()?;
            let leap = d.year % 4 == 0 && (d.year % 100 != 0 || d.year % 400 == 0);
            let days = match d.month {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                2 if leap => 29,
                2 => 28,
                _ => 0,
            };
            if d.year == 0 || d.day == 0 || d.day > days {
                return Some(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day));
            }
            None
        }
        Toml::Array(items) => items.iter().find_map(impossible_date),
        Toml::Table(t) => t.values().find_map(impossible_date),
        _ => None,
    }
}

fn table<'a>(doc: &'a Toml, key: &str) -> Result<Option<&'a toml::value::Table>, String> {
    match doc.get(key) {
        None => Ok(None),
        Some(Toml::Table(t)) => Ok(Some(t)),
        Some(_) => Err(format!("plugin.toml [{}] is not a table", key)),
    }
}

fn string(t: &toml::value::Table, table: &str, key: &str) -> Result<String, String> {
    match t.get(key) {
        Some(Toml::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("plugin.toml {}.{} is not a string", table, key)),
        None => Err(format!("plugin.toml lacks {}.{}", table, key)),
    }
}

/// `[<table>] name` and `version` (both strings) of a plugin.toml or yank.toml.
pub fn name_and_version(data: &[u8], table_name: &str) -> Result<(String, String), String> {
    let doc = parse_toml(data)?;
    let t = table(&doc, table_name)?.ok_or_else(|| format!("the file lacks a [{}] table", table_name))?;
    Ok((string(t, table_name, "name")?, string(t, table_name, "version")?))
}

/// A manifest's `[dependencies]` as the index publishes them: the required ones only, name ->
/// range (Python's `required_dependencies`, registry_tool/client/trust_state.py). An entry is
/// `name = "range"` or a table, inline or `[dependencies.name]`: a table with `optional = true`
/// is left out whatever else it holds; any other table's `version` is the range and must be a
/// string (its other keys, a non-boolean `optional` included, are not read).
fn required_dependencies(deps: &toml::value::Table) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (name, spec) in deps {
        let range = match spec {
            Toml::Table(t) => {
                if let Some(Toml::Boolean(true)) = t.get("optional") {
                    continue;
                }
                match t.get("version") {
                    Some(v) => v,
                    None => return Err(format!("plugin.toml dependencies.{} is a table without a version", name)),
                }
            }
            other => other,
        };
        let range = range.as_str().ok_or_else(|| format!("plugin.toml dependencies.{} is not a range string", name))?;
        out.insert(name.clone(), range.to_owned());
    }
    Ok(out)
}

impl ManifestFacts {
    /// The facts as the Python client's `ManifestFacts.parse` reads them (registry_tool/client/
    /// trust_state.py; conformance decision 11, step 1): UTF-8 TOML without a byte order mark,
    /// a `[plugin]` and an `[artifact]` table holding name, version, file, sha256 and size; a
    /// field that is no string is compared as Python's `str()` of it, the size as Python's `int()`
    /// of it, the sha256 in lower case; `[permissions]`, `[compatibility]`, `[exports]` and
    /// `[dependencies]` must be tables; fuel, memory and wall_time are converted as the build
    /// converts them. Everything else the schema decides, later ([`check_strict`]).
    pub fn parse(data: &[u8]) -> Result<ManifestFacts, String> {
        let lacks =
            |what: String| format!("plugin.toml lacks a readable [plugin] name/version or [artifact] pin ({})", what);
        if data.starts_with(b"\xef\xbb\xbf") {
            return Err(lacks("it starts with a byte order mark".into()));
        }
        let doc = parse_toml(data)?;
        let plugin = match doc.get("plugin") {
            Some(Toml::Table(t)) => t,
            _ => return Err(lacks("[plugin] is missing or not a table".into())),
        };
        let artifact = match doc.get("artifact") {
            Some(Toml::Table(t)) => t,
            _ => return Err(lacks("[artifact] is missing or not a table".into())),
        };
        let empty = toml::value::Table::new();
        let perms = match doc.get("permissions") {
            None => &empty,
            Some(Toml::Table(t)) => t,
            Some(_) => return Err(lacks("permissions is not a table".into())),
        };
        let mut host = match doc.get("compatibility") {
            None => None,
            Some(Toml::Table(t)) => t.get("host").map(py_str),
            Some(_) => return Err(lacks("compatibility is not a table".into())),
        };
        if host.is_none() {
            host = plugin.get("min_host_version").map(|v| format!(">={}", py_str(v)));
        }
        let (mut exports, mut exports_declared) = (Vec::new(), false);
        match doc.get("exports") {
            None => {}
            Some(Toml::Table(t)) => {
                if let Some(f) = t.get("functions") {
                    exports_declared = true;
                    exports = match f {
                        Toml::Array(items) => items.iter().map(py_str).collect(),
                        Toml::String(s) => s.chars().map(String::from).collect(),
                        Toml::Table(t) => t.keys().cloned().collect(),
                        _ => return Err(lacks("exports.functions is not a list".into())),
                    };
                }
            }
            Some(_) => return Err(lacks("exports is not a table".into())),
        }
        let dependencies = match doc.get("dependencies") {
            Some(Toml::Table(d)) => required_dependencies(d).map_err(lacks)?,
            Some(_) => return Err(lacks("[dependencies] is not a table".into())),
            None => BTreeMap::new(),
        };
        let (mut fuel, mut memory, mut wall_time_ms) = (None, None, None);
        if let Some(l) = doc.get("limits").filter(|l| py_truthy(l)) {
            for key in ["fuel", "memory", "wall_time"] {
                let found = match l {
                    Toml::Table(t) => t.contains_key(key),
                    Toml::Array(items) => items.iter().any(|i| i.as_str() == Some(key)),
                    Toml::String(s) => s.contains(key),
                    _ => return Err(lacks("limits is not a table".into())),
                };
                if !found {
                    continue;
                }
                let v = match l {
                    Toml::Table(t) => &t[key],
                    _ => return Err(lacks("limits is not a table".into())),
                };
                let bad = || lacks(format!("limits.{} is not a valid value", key));
                match key {
                    "fuel" => fuel = Some(py_int(v).ok_or_else(bad)?),
                    "memory" => memory = Some(parse_size(v).ok_or_else(bad)?),
                    _ => wall_time_ms = Some(parse_duration_ms(v).ok_or_else(bad)?),
                }
            }
        }
        let field = |t: &toml::value::Table, table: &str, key: &str| {
            t.get(key).map(py_str).ok_or_else(|| lacks(format!("{}.{} is missing", table, key)))
        };
        let name = field(plugin, "plugin", "name")?;
        let version = field(plugin, "plugin", "version")?;
        let artifact_file = field(artifact, "artifact", "file")?;
        let artifact_sha256 = field(artifact, "artifact", "sha256")?.to_lowercase();
        let size = artifact.get("size").ok_or_else(|| lacks("artifact.size is missing".into()))?;
        let artifact_size = py_int(size).ok_or_else(|| lacks("artifact.size is not an integer".into()))?;
        let permissions =
            perms.iter().filter(|(_, v)| matches!(v, Toml::Boolean(true))).map(|(k, _)| k.clone()).collect();
        Ok(ManifestFacts {
            name,
            version,
            abi: plugin.get("abi").map(py_str),
            host,
            artifact_file,
            artifact_sha256,
            // a negative size never equals a pin's (sizes are >= 1)
            artifact_size: if artifact_size < 0 { u64::MAX } else { artifact_size as u64 },
            exports,
            exports_declared,
            permissions,
            dependencies,
            fuel,
            memory,
            wall_time_ms,
        })
    }
}

/// The Python client's cap on a manifest it schema-checks (`parse_manifest`).
pub const MAX_STRICT_MANIFEST_BYTES: usize = 256 * 1024;
/// Parsed values nested deeper are refused before the schema (Python's `MAX_DEPTH`).
const MAX_SCHEMA_DEPTH: usize = 16;

/// What the Python client's `parse_manifest` (registry_tool/manifest/model.py) applies to a signed
/// plugin.toml once the index entry was compared with it (conformance decision 11, step 4): at
/// most 256 KiB, values nested at most 16 levels, `schemas/plugin.schema.json` (no unknown table
/// or key, required keys, types, patterns, lengths, ranges; an integer may be written as an
/// integral float), then the limits converted as the build converts them. The error says why.
pub fn check_strict(data: &[u8]) -> Result<(), String> {
    let fail = |why: String| Err(format!("the signed plugin.toml does not follow schemas/plugin.schema.json: {}", why));
    if data.len() > MAX_STRICT_MANIFEST_BYTES {
        return fail(format!("it is {} bytes, above the 256 KiB cap", data.len()));
    }
    let doc = parse_toml(data)?;
    if crate::schema::depth(&doc) > MAX_SCHEMA_DEPTH {
        return fail(format!("values are nested more than {} levels deep", MAX_SCHEMA_DEPTH));
    }
    let schema = crate::schema::plugin_schema();
    if let Some(why) = crate::schema::check(&schema, &schema, &doc, "") {
        return fail(why);
    }
    if let Some(Toml::Table(limits)) = doc.get("limits") {
        for (key, v) in limits {
            let ok = match key.as_str() {
                "memory" | "module_size" | "stack" => parse_size(v).is_some(),
                "wall_time" => parse_duration(v).is_some(),
                _ => true, // fuel, table_elements, instances: integers (the schema said so)
            };
            if !ok {
                return fail(format!("limits.{} = {} is not a valid value", key, v));
            }
        }
    }
    Ok(())
}

/// Stands for Python's `str()` of a table, an array or a date-time: no entry field holds it.
const NOT_A_STRING: &str = "\u{0}(not a string)";

/// Python's `str()` of a TOML value: a string as is, an integer in decimal, True/False, a float
/// as Python's repr; tables, arrays and date-times compare equal to nothing.
fn py_str(v: &Toml) -> String {
    match v {
        Toml::String(s) => s.clone(),
        Toml::Integer(n) => n.to_string(),
        Toml::Boolean(b) => (if *b { "True" } else { "False" }).to_string(),
        Toml::Float(f) => py_float_repr(*f),
        _ => NOT_A_STRING.to_string(),
    }
}

/// Python's repr of a float: the shortest round-trip digits, positional when the exponent is in
/// [-4, 16), else `d.ddde+XX`.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let e = format!("{:e}", f); // shortest digits: -d.ddde-X
    let (sign, e) = match e.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", e),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = mant.replace('.', "");
    if (-4..16).contains(&exp) {
        let out = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if digits.len() <= (exp + 1) as usize {
            format!("{}{}.0", digits, "0".repeat((exp + 1) as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..(exp + 1) as usize], &digits[(exp + 1) as usize..])
        };
        return format!("{}{}", sign, out);
    }
    let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits.clone() };
    format!("{}{}e{}{:02}", sign, m, if exp < 0 { "-" } else { "+" }, exp.abs())
}

/// Python's `int()` of a TOML value: an integer, a float truncated, a boolean 0/1, a string of
/// digits (surrounding whitespace, a sign and single underscores between digits allowed).
fn py_int(v: &Toml) -> Option<i64> {
    match v {
        Toml::Integer(n) => Some(*n),
        Toml::Boolean(b) => Some(*b as i64),
        // Python's int is unbounded: beyond i64 a value no entry holds (entries stay within 2^53)
        Toml::Float(f) if f.is_finite() => Some(f.trunc() as i64),
        Toml::String(s) => {
            let t = s.trim_matches(py_is_space);
            let (neg, t) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
                return None;
            }
            let digits = t.replace('_', "");
            if !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let n: i64 = digits.parse().ok()?;
            Some(if neg { -n } else { n })
        }
        _ => None,
    }
}

/// Python's `str.isspace` (what `\s` matches in Python's `re` on text).
pub(crate) fn py_is_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\u{1c}'..='\u{20}' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
        | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// Python's truth of a TOML value.
fn py_truthy(v: &Toml) -> bool {
    match v {
        Toml::String(s) => !s.is_empty(),
        Toml::Integer(n) => *n != 0,
        Toml::Float(f) => *f != 0.0,
        Toml::Boolean(b) => *b,
        Toml::Array(a) => !a.is_empty(),
        Toml::Table(t) => !t.is_empty(),
        Toml::Datetime(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "[plugin]\nname = \"deep\"\nversion = \"1.0.0\"\n\n[artifact]\nfile = \"deep.wasm\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize = 1\n";

    fn deep(n: usize) -> Vec<(&'static str, String)> {
        let dotted = format!("{}a", "a.".repeat(n));
        vec![
            ("array", format!("[x]\ny = {}{}\n", "[".repeat(n), "]".repeat(n))),
            ("inline table", format!("[x]\ny = {}1{}\n", "{a=".repeat(n), "}".repeat(n))),
            ("table header", format!("[{}]\n", dotted)),
            ("array header", format!("[[{}]]\n", dotted)),
            ("dotted key", format!("[x]\n{} = 1\n", dotted)),
        ]
    }

    /// 20,000 nested `[[[...]]]` or `[a.a.a...]` overflowed the stack of toml 0.5 (the process
    /// aborted); more than 64 open brackets or counted dots in one key are refused before it runs.
    #[test]
    fn deep_toml_is_refused_before_the_parser_runs() {
        for (name, body) in deep(64) {
            let text = format!("{}{}", MANIFEST, body);
            assert!(ManifestFacts::parse(text.as_bytes()).is_ok(), "{}, 64 levels", name);
        }
        for n in [65, 20_000] {
            for (name, body) in deep(n) {
                let text = format!("{}{}", MANIFEST, body);
                let err = ManifestFacts::parse(text.as_bytes()).expect_err(name);
                assert!(err.contains("at most 64 levels"), "{}, {} levels: {}", name, n, err);
                assert!(name_and_version(text.as_bytes(), "plugin").is_err());
            }
        }
        // brackets and dots inside strings and comments, numeric dots: not nesting
        let many = "[{.".repeat(100);
        for line in [
            format!("s = \"{}\"", many),
            format!("s = '{}'", many),
            format!("s = \"\"\"{}\n{}\"\"\"", many, many),
            format!("s = '''{}\n{}'''", many, many),
            format!("s = \"\\\"{}\"", many),
            format!("s = \"\"\"a\\\"\"\"{}\"\"\"", many),
            format!("s = \"\"\"\"\"{}\"\"\"\"\"", many),
            format!("# {}", many),
            format!("f = [{}]", "1.5, ".repeat(100)),
            format!("t = [{}]", "07:32:00.999, ".repeat(100)),
        ] {
            assert_eq!(toml_nesting_problem(&format!("[x]\n{}\n", line)), None, "{:?}", line);
        }
        for text in [
            "[".repeat(65),
            "{".repeat(65),
            format!("{}{}", "]".repeat(10), "[".repeat(65)),
            format!("s = \"a\\\\\"{}", "[".repeat(65)),
            format!("# c\n{}", "{".repeat(65)),
            format!("a{}", ".a".repeat(65)),
            format!("1.{}", ".a".repeat(64)),
            format!("s = '''x''''{}", "[".repeat(65)),
        ] {
            assert!(toml_nesting_problem(&text).is_some(), "{:?} accepted", text);
        }
        // the count of dots restarts at each line; an unterminated string ends the scan
        assert_eq!(toml_nesting_problem(&format!("{}a = 1\n", "a.".repeat(40)).repeat(3)), None);
        assert_eq!(toml_nesting_problem(&format!("s = \"abc{}", "[".repeat(65))), None);
    }

    /// TOML 1.0 as the Python client's tomli 2.2 reads it (decision 11 step 1): TOML 1.1, a table
    /// defined twice, a control character in a comment, a date that does not exist and a number
    /// beyond 64 bits are refused; a sub-table of a dotted-key table is not.
    #[test]
    fn toml_is_read_as_toml_1_0() {
        for bad in [
            "[x]\ns = \"\\e\"\n",
            "[x]\ns = \"\\x41\"\n",
            "[x]\nt = {a = 1,}\n",
            "[x]\nt = {\na = 1\n}\n",
            "[x]\nt = 07:32\n",
            "[x]\nt.a = 1\n[x.t]\nb = 2\n",
            "[x]\nt = {a = 1}\nt.b = 2\n",
            "# \u{7f}\n",
            "[x]\nd = 0000-01-01\n",
            "[x]\nd = 0000-01-01T00:00:00Z\n",
            "[x]\nd = 1979-02-29\n",
            "[x]\nd = 1979-04-31\n",
            "[x]\nd = 1979-05-27T24:00:00Z\n",
            "[x]\nd = 1979-05-27T00:00:00+24:00\n",
            "[x]\nt = 07:32:60\n",
            "[x]\nn = 9223372036854775808\n",
            "[x]\nn = -9223372036854775809\n",
            "[x]\nf = 1e400\n",
            "[x]\nf = -1e400\n",
            "[x]\nf = [-inf, -1.8e308]\n",
        ] {
            let text = format!("{}{}", MANIFEST, bad);
            assert!(parse_toml(text.as_bytes()).is_err(), "{:?} accepted", bad);
        }
        for good in [
            "[x]\nt.status = 200\n[x.t.headers]\na = \"b\"\n",
            "[x]\nd = 2000-02-29\n",
            "[x]\nd = 0001-01-01T00:00:00+23:59\n",
            "[x]\nn = -9223372036854775808\n",
            "[x]\nf = [-inf, -1.7976931348623157e308, 1e-400]\n",
            "# \t\n",
        ] {
            let text = format!("{}{}", MANIFEST, good);
            assert!(parse_toml(text.as_bytes()).is_ok(), "{:?} refused", good);
        }
    }

    /// The dot count restarts at a newline, `=`, `,`, `{` and `[` (65 shallow keys on one line
    /// are fine), and every dot counts (decision 11 step 1: no dot is free, so neither the key
    /// `[1.1.1...]` nor `x.0-0.0-0...` slips by; a float or a time has one dot).
    #[test]
    fn toml_dots_count_per_dotted_key() {
        let items = vec!["{a.b = 0}"; 65].join(", ");
        let keys = (0..65).map(|i| format!("k{}.v = 1", i)).collect::<Vec<_>>().join(", ");
        for text in [
            format!("x = [{}]\n", items),
            format!("h = {{{}}}\n", keys),
            format!("a{}", ".a".repeat(64)),              // 64 dots
            format!("[{}1]\n", "1.".repeat(64)),          // 64 dots
            format!("a.1.5{}", ".a".repeat(62)),          // 64 dots
            format!("[x]\n{}a = 1.5\n", "a.".repeat(64)), // `=` ends the key
            format!("v = [{}1.5]\n", "1.5, ".repeat(99)),
            "t = 1979-05-27T07:32:00.999Z\n".to_string(),
        ] {
            assert_eq!(toml_nesting_problem(&text), None, "{:?}", text);
        }
        let long_key = format!("[{}1]\n", "1.".repeat(19_999));
        for text in [
            format!("a{}", ".a".repeat(65)),
            format!("[{}1]\n", "1.".repeat(65)),
            format!("1{}", ".1".repeat(65)),
            format!("a.1.5{}", ".a".repeat(63)),
            format!("[x]\n{}a = 1.5\n", "a.".repeat(65)),
            format!("x{} = 1\n", ".0-0".repeat(19_999)),
            long_key.clone(),
        ] {
            assert!(toml_nesting_problem(&text).is_some(), "{:.60?} accepted", text);
        }
        for body in [format!("[x]\ny = [{}]\n", items), format!("[x]\nh = {{{}}}\n", keys)] {
            let text = format!("{}{}", MANIFEST, body);
            assert!(ManifestFacts::parse(text.as_bytes()).is_ok(), "{:?}", body);
        }
        let text = format!("{}{}", MANIFEST, long_key);
        let err = ManifestFacts::parse(text.as_bytes()).expect_err("[1.1.1...] with 20,000 parts");
        assert!(err.contains("at most 64 levels"), "{}", err);
    }

    /// `[dependencies]` in both documented forms (docs/manifest.md), read as Python's
    /// `required_dependencies` reads them: a range string, or a table whose `version` is the
    /// range; `optional = true` entries are left out (the build publishes only the required ones,
    /// and decision 11 step 4 compares the two). The table form was refused.
    #[test]
    fn dependencies_are_read_as_python_reads_them() {
        let deps = |body: &str| {
            ManifestFacts::parse(format!("{}{}", MANIFEST, body).as_bytes())
                .map(|f| f.dependencies.iter().map(|(k, v)| format!("{}={}", k, v)).collect::<Vec<_>>().join(","))
        };
        for (name, body, want) in [
            ("none", "", ""),
            ("empty table", "\n[dependencies]\n", ""),
            ("string", "\n[dependencies]\nbase = \"^1\"\n", "base=^1"),
            ("inline table", "\n[dependencies]\nbase = { version = \"^1\" }\n", "base=^1"),
            ("inline optional", "\n[dependencies]\nbase = { version = \"^1\", optional = true }\n", ""),
            ("inline optional false", "\n[dependencies]\nbase = { version = \"^1\", optional = false }\n", "base=^1"),
            ("sub-table", "\n[dependencies.base]\nversion = \"^1\"\n", "base=^1"),
            ("sub-table optional", "\n[dependencies.base]\nversion = \"^1\"\noptional = true\n", ""),
            ("optional, no version", "\n[dependencies]\nbase = { optional = true }\n", ""),
            ("optional, int version", "\n[dependencies]\nbase = { optional = true, version = 1 }\n", ""),
            ("non-boolean optional", "\n[dependencies]\nbase = { version = \"^1\", optional = \"true\" }\n", "base=^1"),
            ("integer optional", "\n[dependencies]\nbase = { version = \"^1\", optional = 1 }\n", "base=^1"),
            ("unknown key is not read", "\n[dependencies]\nbase = { version = \"^1\", features = [\"x\"] }\n", "base=^1"),
            (
                "mixed",
                "\n[dependencies]\na = \"^1\"\nb = { version = \">=2\", optional = true }\nc = { version = \"~3\" }\n\n[dependencies.d]\nversion = \"4\"\n",
                "a=^1,c=~3,d=4",
            ),
        ] {
            assert_eq!(deps(body).as_deref(), Ok(want), "{}", name);
        }
        for (name, body) in [
            ("table without version", "\n[dependencies]\nbase = {}\n"),
            ("optional false, no version", "\n[dependencies]\nbase = { optional = false }\n"),
            ("non-boolean optional, no version", "\n[dependencies]\nbase = { optional = \"true\" }\n"),
            ("sub-table without version", "\n[dependencies.base]\noptional = false\n"),
            ("integer version", "\n[dependencies]\nbase = { version = 1 }\n"),
            ("table version", "\n[dependencies]\nbase = { version = { a = \"x\" } }\n"),
            ("array version", "\n[dependencies]\nbase = { version = [\"^1\"] }\n"),
            ("integer", "\n[dependencies]\nbase = 1\n"),
            ("boolean", "\n[dependencies]\nbase = true\n"),
            ("array", "\n[dependencies]\nbase = [\"^1\"]\n"),
            ("array of tables", "\n[[dependencies.base]]\nversion = \"^1\"\n"),
            ("dependencies array of tables", "\n[[dependencies]]\nbase = \"^1\"\n"),
        ] {
            assert!(deps(body).is_err(), "{} accepted", name);
        }
        for top in ["dependencies = \"x\"\n", "dependencies = []\n", "dependencies = 1\n"] {
            assert!(ManifestFacts::parse(format!("{}{}", top, MANIFEST).as_bytes()).is_err(), "{:?} accepted", top);
        }
        let empty = ManifestFacts::parse(format!("dependencies = {{}}\n{}", MANIFEST).as_bytes()).unwrap();
        assert!(empty.dependencies.is_empty());
    }

    #[test]
    fn sizes_and_durations_follow_the_manifest_units() {
        let s = |t: &str| parse_size(&Toml::String(t.into()));
        assert_eq!(s("16MiB"), Some(16 * 1024 * 1024));
        assert_eq!(s("1GB"), Some(1_000_000_000));
        assert_eq!(s("512 kib"), Some(512 * 1024));
        assert_eq!(s("4096"), Some(4096));
        assert_eq!(s("1.5KiB"), Some(1536));
        assert_eq!(s("16 MiBs"), None);
        assert_eq!(s("-1"), None);
        assert_eq!(parse_size(&Toml::Integer(7)), Some(7));
        let d = |t: &str| parse_duration_ms(&Toml::String(t.into()));
        assert_eq!(d("2s"), Some(2000));
        assert_eq!(d("500ms"), Some(500));
        assert_eq!(d("1.5m"), Some(90_000));
        assert_eq!(d("2"), None);
        assert_eq!(parse_duration_ms(&Toml::Integer(3)), Some(3000));
        assert_eq!(parse_duration_ms(&Toml::Float(0.25)), Some(250));
    }
}
