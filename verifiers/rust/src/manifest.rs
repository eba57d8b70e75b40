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
    /// permission names set to true
    pub permissions: BTreeSet<String>,
    pub dependencies: BTreeMap<String, String>,
    /// `[limits]` the manifest declares: fuel, memory in bytes, wall_time in milliseconds
    pub fuel: Option<i64>,
    pub memory: Option<i64>,
    pub wall_time_ms: Option<i64>,
}

/// A number with an optional unit: `^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$`.
fn number_unit(text: &str) -> Option<(f64, String)> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start());
    let mut parts = num.split('.');
    let int_ok = parts.next().map_or(false, |p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let frac_ok = parts.next().map_or(true, |p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    if !int_ok || !frac_ok || parts.next().is_some() || !unit.bytes().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((num.parse().ok()?, unit.to_ascii_lowercase()))
}

/// Bytes of a size: an integer, or a number with B, KB/MB/GB (1000^n), KiB/MiB/GiB (1024^n).
pub fn parse_size(v: &Toml) -> Option<i64> {
    match v {
        Toml::Integer(n) if *n >= 0 => Some(*n),
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
            Some((n * factor) as i64)
        }
        _ => None,
    }
}

/// Milliseconds of a duration: a number of seconds, or a number with ms, s, m, h, d, w.
pub fn parse_duration_ms(v: &Toml) -> Option<i64> {
    let secs = match v {
        Toml::Integer(n) if *n >= 0 => *n as f64,
        Toml::Float(f) if *f >= 0.0 => *f,
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
            n * factor
        }
        _ => return None,
    };
    Some((secs * 1000.0).round() as i64)
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
    text.parse::<Toml>().map_err(|e| format!("plugin.toml is not valid TOML ({})", e))
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

fn opt_string(t: &toml::value::Table, table: &str, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(_) => string(t, table, key).map(Some),
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
    pub fn parse(data: &[u8]) -> Result<ManifestFacts, String> {
        let doc = parse_toml(data)?;
        let plugin = table(&doc, "plugin")?.ok_or("plugin.toml lacks [plugin]")?;
        let artifact = table(&doc, "artifact")?.ok_or("plugin.toml lacks [artifact]")?;
        let mut host = match table(&doc, "compatibility")? {
            Some(c) => opt_string(c, "compatibility", "host")?,
            None => None,
        };
        if host.is_none() {
            host = opt_string(plugin, "plugin", "min_host_version")?.map(|v| format!(">={}", v));
        }
        let size = match artifact.get("size") {
            Some(Toml::Integer(n)) if *n >= 0 => *n as u64,
            _ => return Err("plugin.toml artifact.size is not a non-negative integer".into()),
        };
        let exports = match table(&doc, "exports")? {
            None => Vec::new(),
            Some(e) => match e.get("functions") {
                None => Vec::new(),
                Some(Toml::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or("plugin.toml exports.functions has a non-string"))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("plugin.toml exports.functions is not an array".into()),
            },
        };
        let mut permissions = BTreeSet::new();
        if let Some(p) = table(&doc, "permissions")? {
            for (k, v) in p {
                match v {
                    Toml::Boolean(true) => {
                        permissions.insert(k.clone());
                    }
                    Toml::Boolean(false) => {}
                    _ => return Err(format!("plugin.toml permissions.{} is not a boolean", k)),
                }
            }
        }
        let dependencies = match table(&doc, "dependencies")? {
            Some(d) => required_dependencies(d)?,
            None => BTreeMap::new(),
        };
        let (mut fuel, mut memory, mut wall_time_ms) = (None, None, None);
        if let Some(l) = table(&doc, "limits")? {
            if let Some(v) = l.get("fuel") {
                fuel = Some(
                    v.as_integer()
                        .filter(|n| *n >= 0)
                        .ok_or("plugin.toml limits.fuel is not a non-negative integer")?,
                );
            }
            if let Some(v) = l.get("memory") {
                memory = Some(parse_size(v).ok_or("plugin.toml limits.memory is not a size")?);
            }
            if let Some(v) = l.get("wall_time") {
                wall_time_ms = Some(parse_duration_ms(v).ok_or("plugin.toml limits.wall_time is not a duration")?);
            }
        }
        Ok(ManifestFacts {
            name: string(plugin, "plugin", "name")?,
            version: string(plugin, "plugin", "version")?,
            abi: opt_string(plugin, "plugin", "abi")?,
            host,
            artifact_file: string(artifact, "artifact", "file")?,
            artifact_sha256: string(artifact, "artifact", "sha256")?.to_ascii_lowercase(),
            artifact_size: size,
            exports,
            permissions,
            dependencies,
            fuel,
            memory,
            wall_time_ms,
        })
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
