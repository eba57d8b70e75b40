//! The fixed trust vectors of tests/trust/vectors (docs/trust.md section 9): every case gets
//! the verdict cases.json names.

use registry_verifier::json::{self, Value};
use registry_verifier::minisign::{self, PublicKey};
use registry_verifier::root::{self, Root};
use registry_verifier::{names, TrustError};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/trust/vectors")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{}: {}", rel, e))
}

fn s<'a>(case: &'a Value, key: &str) -> &'a str {
    match case {
        Value::Obj(m) => m.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("case lacks {}", key)),
        _ => panic!("case is not an object"),
    }
}

fn get<'a>(case: &'a Value, key: &str) -> &'a Value {
    match case {
        Value::Obj(m) => m.get(key).unwrap_or(&Value::Null),
        _ => &Value::Null,
    }
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::Arr(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        _ => Vec::new(),
    }
}

fn chain(case: &Value) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    match get(case, "chain") {
        Value::Arr(steps) => steps
            .iter()
            .map(|st| (read(s(st, "root")), strs(get(st, "signatures")).iter().map(|p| read(p)).collect()))
            .collect(),
        _ => Vec::new(),
    }
}

fn run(case: &Value) -> Result<Option<u64>, TrustError> {
    let now = || names::parse_time(s(case, "now")).expect("now");
    match s(case, "kind") {
        "signature" => {
            let key = PublicKey::from_file(&read(s(case, "public_key")))?;
            minisign::verify(&key, &read(s(case, "data")), &read(s(case, "signature")), false)?;
            Ok(None)
        }
        "root-self" => {
            let sigs: Vec<Vec<u8>> = strs(get(case, "signatures")).iter().map(|p| read(p)).collect();
            let r = root::verify_root_self(&read(s(case, "root")), &sigs)?;
            if r.is_expired(now()) {
                return Err(TrustError::new(registry_verifier::TrustCode::RootExpired, "expired"));
            }
            Ok(Some(r.version))
        }
        "root-chain" => {
            let trusted = Root::parse(&read(s(case, "trusted")))?;
            let r = root::verify_root_chain(&trusted, &chain(case), now())?;
            Ok(Some(r.version))
        }
        "release" => {
            let trusted = Root::parse(&read(s(case, "trusted")))?;
            let r = root::verify_root_chain(&trusted, &chain(case), now())?;
            let sigs: Vec<Vec<u8>> = strs(get(case, "signatures")).iter().map(|p| read(p)).collect();
            let published = get(case, "published_at").as_str().map(|t| names::parse_time(t).unwrap());
            root::verify_release_signatures(
                &r,
                s(case, "plugin"),
                &read(s(case, "manifest")),
                &sigs,
                now(),
                published,
            )?;
            Ok(Some(r.version))
        }
        other => panic!("unknown kind {}", other),
    }
}

#[test]
fn every_trust_vector_gets_its_verdict() {
    let doc = json::parse(&read("cases.json")).expect("cases.json");
    let cases = match get(&doc, "cases") {
        Value::Arr(c) => c.clone(),
        _ => panic!("no cases"),
    };
    assert!(cases.len() >= 16, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expect = s(case, "expect");
        let got = run(case);
        let verdict = match &got {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code.as_str().to_owned(),
        };
        if verdict != expect {
            failures.push(format!("{}: expected {}, got {} ({:?})", s(case, "name"), expect, verdict, got));
            continue;
        }
        if let (Value::Int(v), Ok(Some(version))) = (get(case, "final_version"), &got) {
            if *v as u64 != *version {
                failures.push(format!("{}: final version {} not {}", s(case, "name"), version, v));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
