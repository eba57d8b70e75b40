//! Strict JSON (FORMAT 2 section 1, docs/trust.md 5.1): RFC 8259 through serde_json, plus the
//! refusals serde_json's own `Value` does not make: a duplicate member name in any object (a
//! parser keeping the first and one keeping the last would see different documents), a BOM,
//! integers beyond ±2^53 and integers written with a fraction or exponent (`2.0` is a float
//! here, never an integer). serde_json already refuses NaN/Infinity, lone surrogates,
//! invalid UTF-8 and trailing data.
//!
//! Also the serialisers the lockfile and the trust state need, Python's `json.dumps` byte for
//! byte (sorted keys, ASCII only, `\uXXXX` escapes): compact (`separators=(",", ":")`, the
//! lockfile's lines) and `indent=2`.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Largest integer magnitude accepted (2^53, the range every JSON implementation keeps exact).
pub const MAX_INT: i64 = 1 << 53;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Any number written with a fraction or exponent (never accepted where an integer is due).
    Float(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(BTreeMap<String, Value>),
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a non-integer number",
            Value::Str(_) => "a string",
            Value::Arr(_) => "an array",
            Value::Obj(_) => "an object",
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if !(-MAX_INT..=MAX_INT).contains(&v) {
            return Err(E::custom(format!("integer {} is outside ±2^53", v)));
        }
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if v > MAX_INT as u64 {
            return Err(E::custom(format!("integer {} is outside ±2^53", v)));
        }
        Ok(Value::Int(v as i64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if !v.is_finite() {
            return Err(E::custom("number is not finite"));
        }
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member name {:?}", key)));
            }
            let value = map.next_value::<Value>()?;
            out.insert(key, value);
        }
        Ok(Value::Obj(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Parse one strict JSON document. The error is a short human description.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Err("starts with a byte order mark".into());
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err("is not valid UTF-8".into());
    }
    match negative_zero_integers(bytes) {
        Some(fixed) => serde_json::from_slice::<Value>(&fixed),
        None => serde_json::from_slice::<Value>(bytes),
    }
    .map_err(|e| format!("is not strict JSON ({})", e))
}

/// The text with every integer literal `-0` written `0`, or None when it holds none. serde_json
/// hands `-0` to the visitor as the float -0.0 (no integer holds a negative zero), so `2.0` and
/// `-0` would look alike; Python and Go read `-0` as the integer 0 (a size of `-0` is the size 0).
/// A `-` starts a number only after `[`, `,`, `:` or at the start (outside strings, JSON
/// whitespace between); `-0` is an integer when no digit, `.`, `e` or `E` follows.
fn negative_zero_integers(b: &[u8]) -> Option<Vec<u8>> {
    let mut hits = Vec::new();
    let (mut in_string, mut escaped, mut last) = (false, false, b'[');
    for (i, &c) in b.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
                last = c;
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b'-' if matches!(last, b'[' | b',' | b':')
                && b.get(i + 1) == Some(&b'0')
                && !matches!(b.get(i + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E')) =>
            {
                hits.push(i)
            }
            _ => {}
        }
        last = c;
    }
    if hits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut from = 0;
    for i in hits {
        out.extend_from_slice(&b[from..i]);
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
    Some(out)
}

/// An object checked against its member list: unknown members and missing required ones
/// are refused (`additionalProperties: false`).
pub struct Obj<'a> {
    pub map: &'a BTreeMap<String, Value>,
    pub what: String,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, what: &str, required: &[&str], optional: &[&str]) -> Result<Obj<'a>, String> {
        let map = match v {
            Value::Obj(m) => m,
            other => return Err(format!("{} is {}, not an object", what, other.kind())),
        };
        for key in map.keys() {
            if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
                return Err(format!("{} has an unknown member {:?}", what, key));
            }
        }
        for key in required {
            if !map.contains_key(*key) {
                return Err(format!("{} lacks the member {:?}", what, key));
            }
        }
        Ok(Obj { map, what: what.to_owned() })
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{}", self.what, key)
    }

    pub fn value(&self, key: &str) -> Result<&'a Value, String> {
        self.map.get(key).ok_or_else(|| format!("{} lacks the member {:?}", self.what, key))
    }

    pub fn str(&self, key: &str) -> Result<&'a str, String> {
        match self.value(key)? {
            Value::Str(s) => Ok(s),
            other => Err(format!("{} is {}, not a string", self.path(key), other.kind())),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{} is {}, not a string or null", self.path(key), other.kind())),
        }
    }

    pub fn int(&self, key: &str) -> Result<i64, String> {
        match self.value(key)? {
            Value::Int(n) => Ok(*n),
            other => Err(format!("{} is {}, not an integer", self.path(key), other.kind())),
        }
    }

    pub fn int_min(&self, key: &str, min: i64) -> Result<i64, String> {
        let n = self.int(key)?;
        if n < min {
            return Err(format!("{} is {}, below the minimum {}", self.path(key), n, min));
        }
        Ok(n)
    }

    pub fn bool(&self, key: &str) -> Result<bool, String> {
        match self.value(key)? {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("{} is {}, not a boolean", self.path(key), other.kind())),
        }
    }

    pub fn obj(&self, key: &str) -> Result<&'a BTreeMap<String, Value>, String> {
        match self.value(key)? {
            Value::Obj(m) => Ok(m),
            other => Err(format!("{} is {}, not an object", self.path(key), other.kind())),
        }
    }

    pub fn arr(&self, key: &str) -> Result<&'a Vec<Value>, String> {
        match self.value(key)? {
            Value::Arr(a) => Ok(a),
            other => Err(format!("{} is {}, not an array", self.path(key), other.kind())),
        }
    }

    /// An array of strings, each accepted by `check`; `unique` refuses repeats (a set, not a
    /// scan of the list: a lockfile's lists may hold 100,000 strings).
    pub fn str_list(&self, key: &str, unique: bool, check: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, item) in self.arr(key)?.iter().enumerate() {
            let s =
                item.as_str().ok_or_else(|| format!("{}[{}] is {}, not a string", self.path(key), i, item.kind()))?;
            if !check(s) {
                return Err(format!("{}[{}] {:?} is not allowed here", self.path(key), i, s));
            }
            if unique && !seen.insert(s) {
                return Err(format!("{} lists {:?} twice", self.path(key), s));
            }
            out.push(s.to_owned());
        }
        Ok(out)
    }
}

/// Python's `json.dumps(value, indent=2, sort_keys=True)` (ensure_ascii), without the final LF.
pub fn to_python_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Float(f) => out.push_str(&format!("{:?}", f)),
        Value::Str(s) => write_string(out, s),
        Value::Arr(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Obj(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            // BTreeMap orders by UTF-8 bytes; Python sorts by code points: the same order.
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`: no
/// whitespace at all, keys sorted, everything outside printable ASCII as `\uXXXX`.
pub fn to_python_compact(value: &Value) -> String {
    let mut out = String::new();
    write_compact(&mut out, value);
    out
}

fn write_compact(out: &mut String, value: &Value) {
    match value {
        Value::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        Value::Obj(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_compact(out, v);
            }
            out.push('}');
        }
        scalar => write_value(out, scalar, 0),
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        assert!(parse(br#"{"a": 1, "a": 2}"#).is_err());
        assert!(parse(br#"{"x": [{"b": 1, "b": 1}]}"#).is_err());
        assert!(parse(br#"{"a": 1, "b": 2}"#).is_ok());
    }

    #[test]
    fn non_finite_numbers_and_lone_surrogates_are_refused() {
        assert!(parse(b"NaN").is_err());
        assert!(parse(b"[Infinity]").is_err());
        assert!(parse(b"1e999").is_err());
        assert!(parse(br#""\ud800""#).is_err());
        assert!(parse(br#""\ud83d\ude00""#).is_ok());
    }

    #[test]
    fn integers_are_exact_and_written_without_fraction() {
        assert_eq!(parse(b"2").unwrap(), Value::Int(2));
        assert!(matches!(parse(b"2.0").unwrap(), Value::Float(_)));
        assert!(matches!(parse(b"2e0").unwrap(), Value::Float(_)));
        assert_eq!(parse(b"9007199254740992").unwrap(), Value::Int(MAX_INT));
        assert!(parse(b"9007199254740993").is_err());
        assert!(parse(b"-9007199254740993").is_err());
        // beyond u64 serde_json reads a float: never an integer, so refused wherever one is due
        assert!(matches!(parse(b"18446744073709551616").unwrap(), Value::Float(_)));
        // `-0` is the integer 0 (as Python and Go read it); `-0.0` and `-0e0` stay floats
        assert_eq!(parse(b"-0").unwrap(), Value::Int(0));
        assert_eq!(parse(b"[1,-0, -0 ]").unwrap(), Value::Arr(vec![Value::Int(1), Value::Int(0), Value::Int(0)]));
        assert!(matches!(parse(b"{\"size\":-0}").unwrap(), Value::Obj(m) if m["size"] == Value::Int(0)));
        assert!(matches!(parse(b"-0.0").unwrap(), Value::Float(_)));
        assert!(matches!(parse(b"-0e0").unwrap(), Value::Float(_)));
        assert!(matches!(parse(b"[1e-0]").unwrap(), Value::Arr(v) if matches!(v[0], Value::Float(_))));
        assert_eq!(parse(b"\"-0\"").unwrap(), Value::Str("-0".into()));
        assert_eq!(parse(b"[\"a\\\"\",-0]").unwrap(), Value::Arr(vec![Value::Str("a\"".into()), Value::Int(0)]));
        for bad in [&b"--0"[..], b"[--0]", b"-00", b"[-]", b"[0-0]"] {
            assert!(parse(bad).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn bom_invalid_utf8_and_trailing_data_are_refused() {
        assert!(parse(b"\xef\xbb\xbf{}").is_err());
        assert!(parse(b"\"\xff\"").is_err());
        assert!(parse(b"{} {}").is_err());
        assert!(parse(b"{}\n").is_ok());
    }

    #[test]
    fn unknown_and_missing_members_are_refused() {
        let v = parse(br#"{"a": 1, "b": 2}"#).unwrap();
        assert!(Obj::new(&v, "doc", &["a"], &[]).is_err());
        assert!(Obj::new(&v, "doc", &["a", "b", "c"], &[]).is_err());
        assert!(Obj::new(&v, "doc", &["a"], &["b"]).is_ok());
    }

    #[test]
    fn pretty_printing_matches_python_json_dumps() {
        let v =
            parse("{\"b\": [1, {}], \"a\": \"\u{e9}\u{1f600}\\n\\u0001\", \"c\": [], \"d\": null}".as_bytes()).unwrap();
        // python3 -c 'import json; print(json.dumps({"b":[1,{}],"a":"\u00e9\U0001F600\n\x01","c":[],"d":None}, indent=2, sort_keys=True))'
        let expected = "{\n  \"a\": \"\\u00e9\\ud83d\\ude00\\n\\u0001\",\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": [],\n  \"d\": null\n}";
        assert_eq!(to_python_pretty(&v), expected);
        // python3 -c 'import json; print(json.dumps({"b":[1,{}],"a":"\u00e9\U0001F600\n\x01","c":[],"d":None}, sort_keys=True, separators=(",", ":")))'
        let compact = "{\"a\":\"\\u00e9\\ud83d\\ude00\\n\\u0001\",\"b\":[1,{}],\"c\":[],\"d\":null}";
        assert_eq!(to_python_compact(&v), compact);
    }
}
