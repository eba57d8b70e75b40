//! The published manifest's schema, `schemas/plugin.schema.json` (a copy, `src/plugin.schema.json`,
//! that a test keeps identical), applied to a parsed plugin.toml as the Python client's
//! `parse_manifest` applies it: JSON Schema draft 7 as Python's `jsonschema` reads it (a boolean
//! is no number, an integral float is an integer, a pattern is searched as the Python client
//! searches it: `$` is the end of the text (ECMA-262: a value ending in a newline never passes),
//! `\s` is any Unicode whitespace as Python's `re` has it). Only the keywords that
//! schema uses are implemented; its patterns are matched by hand (a test checks every pattern of
//! the schema is one of them).

use crate::json::{self, Value as Json};
use std::collections::BTreeMap;
use toml::Value as Toml;

const SCHEMA_TEXT: &str = include_str!("plugin.schema.json");

/// The schema, parsed.
pub fn plugin_schema() -> Json {
    json::parse(SCHEMA_TEXT.as_bytes()).expect("src/plugin.schema.json is strict JSON")
}

fn obj(v: &Json) -> Option<&BTreeMap<String, Json>> {
    match v {
        Json::Obj(m) => Some(m),
        _ => None,
    }
}

fn num(v: &Json) -> Option<f64> {
    match v {
        Json::Int(n) => Some(*n as f64),
        Json::Float(f) => Some(*f),
        _ => None,
    }
}

fn resolve<'a>(root: &'a Json, mut s: &'a Json) -> &'a Json {
    while let Some(Json::Str(r)) = obj(s).and_then(|m| m.get("$ref")) {
        let name = r.trim_start_matches("#/definitions/");
        s = match obj(root).and_then(|m| m.get("definitions")).and_then(obj).and_then(|d| d.get(name)) {
            Some(d) => d,
            None => return s,
        };
    }
    s
}

fn is_type(v: &Toml, t: &str) -> bool {
    match t {
        "object" => matches!(v, Toml::Table(_)),
        "array" => matches!(v, Toml::Array(_)),
        "string" => matches!(v, Toml::String(_)),
        "boolean" => matches!(v, Toml::Boolean(_)),
        "integer" => match v {
            Toml::Integer(_) => true,
            Toml::Float(f) => f.is_finite() && f.fract() == 0.0,
            _ => false,
        },
        "number" => matches!(v, Toml::Integer(_) | Toml::Float(_)),
        _ => false,
    }
}

fn number_of(v: &Toml) -> Option<f64> {
    match v {
        Toml::Integer(n) => Some(*n as f64),
        Toml::Float(f) => Some(*f),
        _ => None,
    }
}

/// jsonschema's equality for enum and const (booleans equal only booleans) and uniqueItems.
fn equal(v: &Toml, c: &Json) -> bool {
    match (v, c) {
        (Toml::Boolean(a), Json::Bool(b)) => a == b,
        (Toml::String(a), Json::Str(b)) => a == b,
        (Toml::Integer(_) | Toml::Float(_), Json::Int(_) | Json::Float(_)) => number_of(v) == num(c),
        _ => false,
    }
}

fn toml_equal(a: &Toml, b: &Toml) -> bool {
    match (a, b) {
        (Toml::Integer(_) | Toml::Float(_), Toml::Integer(_) | Toml::Float(_)) => number_of(a) == number_of(b),
        _ => a == b,
    }
}

fn run(s: &str, first: fn(u8) -> bool, rest: fn(u8) -> bool, min: usize, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && first(b[0]) && (min..=max).contains(&(b.len() - 1)) && b[1..].iter().all(|&c| rest(c))
}

fn lower_digit(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn name_char(c: u8) -> bool {
    lower_digit(c) || c == b'_' || c == b'-'
}

/// `^[0-9]+(\.[0-9]+)?\s*(UNIT)$` with the units given (`optional`: the unit group may be empty).
fn number_with_unit(s: &str, units: &[&str], optional: bool) -> bool {
    let digits = |t: &str| t.bytes().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(s);
    if n == 0 {
        return false;
    }
    let mut rest = &s[n..];
    if let Some(after) = rest.strip_prefix('.') {
        let f = digits(after);
        if f > 0 {
            rest = &after[f..];
        }
    }
    let rest = rest.trim_start_matches(crate::manifest::py_is_space);
    if rest.is_empty() {
        return optional;
    }
    units.contains(&rest)
}

/// `pattern` searched in `s` as the Python client searches the patterns of plugin.schema.json.
pub fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    Some(match pattern {
        "^[a-z][a-z0-9_-]{1,63}$" => run(s, |c| c.is_ascii_lowercase(), name_char, 1, 63),
        "^[a-z][a-z0-9_-]{0,63}$" => run(s, |c| c.is_ascii_lowercase(), name_char, 0, 63),
        "^[a-z0-9][a-z0-9_-]{0,31}$" => run(s, lower_digit, name_char, 0, 31),
        "^[0-9a-f]{64}$" => {
            let b = s.as_bytes();
            b.len() == 64 && b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        }
        "^[A-Za-z0-9+/]*={0,2}$" => {
            let t = s;
            let body = t.trim_end_matches('=');
            t.len() - body.len() <= 2 && body.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        }
        "^https?://" => s.starts_with("http://") || s.starts_with("https://"),
        "^(https?|git)://|^git@" => ["http://", "https://", "git://", "git@"].iter().any(|p| s.starts_with(p)),
        "^[0-9]+(\\.[0-9]+)?\\s*([KMG]i?B|B)?$" => {
            number_with_unit(s, &["KB", "KiB", "MB", "MiB", "GB", "GiB", "B"], true)
        }
        "^[0-9]+(\\.[0-9]+)?\\s*(ms|s|m|h|d|w)$" => number_with_unit(s, &["ms", "s", "m", "h", "d", "w"], false),
        _ => return None,
    })
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{}.{}", path, key)
    }
}

/// Why `v` does not satisfy the schema `s` (None when it does).
pub fn check(root: &Json, s: &Json, v: &Toml, path: &str) -> Option<String> {
    let s = resolve(root, s);
    let m = obj(s)?;
    let whr = if path.is_empty() { "document" } else { path };
    if let Some(t) = m.get("type") {
        let types: Vec<&str> = match t {
            Json::Str(x) => vec![x.as_str()],
            Json::Arr(xs) => xs.iter().filter_map(|x| x.as_str()).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| is_type(v, t)) {
            return Some(format!("{}: expected {}, got a TOML {}", whr, types.join(" or "), v.type_str()));
        }
    }
    if let Some(Json::Arr(e)) = m.get("enum") {
        if !e.iter().any(|c| equal(v, c)) {
            return Some(format!("{}: {} is not one of the allowed values", whr, v));
        }
    }
    if let Some(c) = m.get("const") {
        if !equal(v, c) {
            return Some(format!("{}: {} is not the allowed value", whr, v));
        }
    }
    if let Toml::String(text) = v {
        let n = text.chars().count() as f64;
        if m.get("minLength").and_then(num).map_or(false, |min| n < min) {
            return Some(format!("{}: {:?} is too short", whr, text));
        }
        if m.get("maxLength").and_then(num).map_or(false, |max| n > max) {
            return Some(format!("{}: the text is too long", whr));
        }
        if let Some(Json::Str(p)) = m.get("pattern") {
            if !pattern_matches(p, text).unwrap_or(false) {
                return Some(format!("{}: {:?} does not match the required pattern {}", whr, text, p));
            }
        }
    }
    if let Some(x) = number_of(v) {
        let below = |bound: f64| match v {
            Toml::Integer(i) if bound.fract() == 0.0 && bound.abs() < 9e18 => *i < bound as i64,
            _ => x < bound,
        };
        if m.get("minimum").and_then(num).map_or(false, below) {
            return Some(format!("{}: {} is less than the minimum", whr, v));
        }
        if m.get("maximum").and_then(num).map_or(false, |max| x > max) {
            return Some(format!("{}: {} is greater than the maximum", whr, v));
        }
    }
    if let Toml::Array(items) = v {
        let n = items.len() as f64;
        if m.get("minItems").and_then(num).map_or(false, |min| n < min) {
            return Some(format!("{}: has too few items", whr));
        }
        if m.get("maxItems").and_then(num).map_or(false, |max| n > max) {
            return Some(format!("{}: has too many items", whr));
        }
        if let Some(Json::Bool(true)) = m.get("uniqueItems") {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| toml_equal(a, b)) {
                    return Some(format!("{}: has non-unique elements", whr));
                }
            }
        }
        if let Some(item_schema) = m.get("items") {
            for (i, item) in items.iter().enumerate() {
                if let Some(why) = check(root, item_schema, item, &format!("{}[{}]", path, i)) {
                    return Some(why);
                }
            }
        }
    }
    if let Toml::Table(t) = v {
        if let Some(Json::Arr(req)) = m.get("required") {
            for r in req.iter().filter_map(|r| r.as_str()) {
                if !t.contains_key(r) {
                    return Some(format!("{}: '{}' is required", whr, r));
                }
            }
        }
        if m.get("maxProperties").and_then(num).map_or(false, |max| t.len() as f64 > max) {
            return Some(format!("{}: has too many members", whr));
        }
        if let Some(names) = m.get("propertyNames") {
            for k in t.keys() {
                if let Some(why) = check(root, names, &Toml::String(k.clone()), path) {
                    return Some(why);
                }
            }
        }
        let props = m.get("properties").and_then(obj);
        for (k, item) in t {
            if let Some(sub) = props.and_then(|p| p.get(k)) {
                if let Some(why) = check(root, sub, item, &at(path, k)) {
                    return Some(why);
                }
                continue;
            }
            match m.get("additionalProperties") {
                Some(Json::Bool(false)) => return Some(format!("unknown key '{}'", at(path, k))),
                Some(sub @ Json::Obj(_)) => {
                    if let Some(why) = check(root, sub, item, &at(path, k)) {
                        return Some(why);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Json::Arr(one)) = m.get("oneOf") {
        let valid = one.iter().filter(|sub| check(root, sub, v, path).is_none()).count();
        if valid != 1 {
            return Some(format!("{}: {} is not valid under exactly one of the given schemas", whr, v));
        }
    }
    None
}

/// Python's `nesting_depth`: the top table is 1, each table or array level adds one.
pub fn depth(v: &Toml) -> usize {
    let (mut level, mut frontier) = (0, vec![v]);
    loop {
        let mut children = Vec::new();
        for item in &frontier {
            match item {
                Toml::Table(t) => children.extend(t.values()),
                Toml::Array(a) => children.extend(a.iter()),
                _ => {}
            }
        }
        if children.is_empty() {
            return level;
        }
        level += 1;
        frontier = children.into_iter().filter(|c| matches!(c, Toml::Table(_) | Toml::Array(_))).collect();
        if frontier.is_empty() {
            return level;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Obj(m) => {
                if let Some(Json::Str(p)) = m.get("pattern") {
                    out.push(p.clone());
                }
                m.values().for_each(|x| patterns(x, out));
            }
            Json::Arr(a) => a.iter().for_each(|x| patterns(x, out)),
            _ => {}
        }
    }

    /// The copy is the repository's schema, and every pattern in it has a matcher here.
    #[test]
    fn schema_copy_is_current_and_its_patterns_are_known() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/plugin.schema.json");
        if let Ok(text) = std::fs::read_to_string(&repo) {
            assert_eq!(text, SCHEMA_TEXT, "src/plugin.schema.json differs from schemas/plugin.schema.json: copy it");
        }
        let mut ps = Vec::new();
        patterns(&plugin_schema(), &mut ps);
        assert!(ps.len() >= 9);
        for p in ps {
            assert!(pattern_matches(&p, "x").is_some(), "no matcher for pattern {}", p);
        }
    }

    #[test]
    fn patterns_read_as_the_python_client_reads_them() {
        let size = "^[0-9]+(\\.[0-9]+)?\\s*([KMG]i?B|B)?$";
        for (s, ok) in [
            ("16MiB", true),
            ("16 MiB", true),
            ("16\u{a0}MiB", true),
            ("16MiB\n", false),
            ("16MiB\n\n", false),
            ("16\n\n", true),
            ("16mib", false),
            ("1.5KiB", true),
            ("1.KiB", false),
            (" 16", false),
            ("16B", true),
            ("16b", false),
        ] {
            assert_eq!(pattern_matches(size, s), Some(ok), "{:?}", s);
        }
        let name = "^[a-z][a-z0-9_-]{1,63}$";
        assert_eq!(pattern_matches(name, "ab\n"), Some(false));
        assert_eq!(pattern_matches(name, "a"), Some(false));
        assert_eq!(pattern_matches(name, "Ab"), Some(false));
        let b64 = "^[A-Za-z0-9+/]*={0,2}$";
        assert_eq!(pattern_matches(b64, "ab=="), Some(true));
        assert_eq!(pattern_matches(b64, "ab==="), Some(false));
        assert_eq!(pattern_matches(b64, "!!"), Some(false));
    }
}
