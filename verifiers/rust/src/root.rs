//! Root metadata and the trust rules over it (docs/trust.md section 5): parsing (5.1),
//! threshold counting over distinct public keys (5.2), revocation (5.3), delegation (5.4),
//! the chain walk (5.5), index signatures (5.6) and release signatures (5.7). Pure: bytes
//! and `now` (Unix seconds) in, verdict out.

use crate::error::{TrustCode, TrustError};
use crate::json::{self, Obj, Value};
use crate::minisign::{PublicKey, Signature};
use crate::names;
use std::collections::{BTreeMap, BTreeSet};

pub const MAX_ROOT_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

#[derive(Clone, Debug)]
pub struct Maintainer {
    pub id: String,
    pub keyids: Vec<String>,
    pub plugins: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Revoked {
    pub keyid: String,
    pub key: PublicKey,
    pub revoked_in_version: u64,
    pub revoked_at: i64,
    pub keep_prior_releases: bool,
    pub plugins: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Root {
    pub raw: Vec<u8>,
    pub registry: String,
    pub version: u64,
    pub expires: i64,
    pub keys: BTreeMap<String, PublicKey>,
    pub root_role: Role,
    pub index_role: Role,
    pub maintainers: Vec<Maintainer>,
    pub plugin_thresholds: BTreeMap<String, u64>,
    pub revoked: Vec<Revoked>,
}

fn root_format(msg: impl Into<String>) -> TrustError {
    TrustError::new(TrustCode::RootFormat, msg)
}

fn parse_role(v: &Value, what: &str) -> Result<Role, String> {
    let o = Obj::new(v, what, &["keyids", "threshold"], &[])?;
    let keyids = o.str_list("keyids", true, names::is_key_id)?;
    if keyids.is_empty() {
        return Err(format!("{}.keyids is empty", what));
    }
    Ok(Role { keyids, threshold: o.int_min("threshold", 1)? as u64 })
}

fn time_field(o: &Obj, key: &str) -> Result<i64, String> {
    let s = o.str(key)?;
    names::parse_time(s).ok_or_else(|| format!("{}.{} {:?} is not a YYYY-MM-DDTHH:MM:SSZ time", o.what, key, s))
}

impl Root {
    /// 5.1, every error `root-format`.
    pub fn parse(raw: &[u8]) -> Result<Root, TrustError> {
        if raw.len() > MAX_ROOT_BYTES {
            return Err(root_format("root metadata is larger than 1 MiB"));
        }
        let v = json::parse(raw).map_err(|e| root_format(format!("root metadata {}", e)))?;
        Root::from_value(raw, &v).map_err(root_format)
    }

    fn from_value(raw: &[u8], v: &Value) -> Result<Root, String> {
        let o = Obj::new(
            v,
            "root",
            &[
                "_type",
                "spec_version",
                "registry",
                "version",
                "expires",
                "keys",
                "roles",
                "maintainers",
                "plugin_thresholds",
                "revoked",
            ],
            &["registry_config"],
        )?;
        // registry_config pins registry.toml for ci check and build (docs/trust.md 5.8); a
        // verifier only checks its shape.
        if let Some(pin) = o.get("registry_config") {
            let p = Obj::new(pin, "root.registry_config", &["sha256"], &[])?;
            if !names::is_sha256_hex(p.str("sha256")?) {
                return Err("root.registry_config.sha256 is not 64 lower-case hex digits".into());
            }
        }
        if o.str("_type")? != "registry-root" {
            return Err("root._type is not \"registry-root\"".into());
        }
        if o.int("spec_version")? != 1 {
            return Err("root.spec_version is not 1".into());
        }
        let registry = o.str("registry")?;
        if !names::is_registry_name(registry) {
            return Err(format!("root.registry {:?} is not a registry name", registry));
        }
        let version = o.int_min("version", 1)? as u64;
        let expires = time_field(&o, "expires")?;

        let mut keys = BTreeMap::new();
        for (id, entry) in o.obj("keys")? {
            if !names::is_key_id(id) {
                return Err(format!("root.keys has a key id {:?} that is not 16 upper-case hex digits", id));
            }
            let what = format!("root.keys.{}", id);
            let k = Obj::new(entry, &what, &["public_key"], &["comment"])?;
            if let Some(c) = k.get("comment") {
                let c = c.as_str().ok_or_else(|| format!("{}.comment is not a string", what))?;
                if c.chars().count() > 256 {
                    return Err(format!("{}.comment is longer than 256 characters", what));
                }
            }
            let key = PublicKey::from_base64(k.str("public_key")?)
                .map_err(|e| format!("{}.public_key: {}", what, e.message))?;
            if key.key_id() != *id {
                return Err(format!("{}.public_key has key id {}", what, key.key_id()));
            }
            keys.insert(id.clone(), key);
        }

        let roles = Obj::new(o.value("roles")?, "root.roles", &["root", "index"], &[])?;
        let root_role = parse_role(roles.value("root")?, "root.roles.root")?;
        let index_role = parse_role(roles.value("index")?, "root.roles.index")?;

        let mut maintainers = Vec::new();
        for (id, entry) in o.obj("maintainers")? {
            if !names::is_maintainer_id(id) {
                return Err(format!("root.maintainers has an invalid maintainer id {:?}", id));
            }
            let what = format!("root.maintainers.{}", id);
            let m = Obj::new(entry, &what, &["keyids", "plugins"], &[])?;
            let keyids = m.str_list("keyids", true, names::is_key_id)?;
            let plugins = m.str_list("plugins", true, names::is_plugin_pattern)?;
            if keyids.is_empty() || plugins.is_empty() {
                return Err(format!("{} has an empty keyids or plugins list", what));
            }
            maintainers.push(Maintainer { id: id.clone(), keyids, plugins });
        }

        let mut plugin_thresholds = BTreeMap::new();
        for (name, t) in o.obj("plugin_thresholds")? {
            if !names::is_plugin_name(name) {
                return Err(format!("root.plugin_thresholds has an invalid plugin name {:?}", name));
            }
            match t {
                Value::Int(n) if *n >= 1 => plugin_thresholds.insert(name.clone(), *n as u64),
                _ => return Err(format!("root.plugin_thresholds.{} is not an integer >= 1", name)),
            };
        }

        let mut revoked = Vec::new();
        for (i, entry) in o.arr("revoked")?.iter().enumerate() {
            let what = format!("root.revoked[{}]", i);
            let r = Obj::new(
                entry,
                &what,
                &["keyid", "public_key", "revoked_in_version", "revoked_at", "keep_prior_releases", "plugins"],
                &["reason"],
            )?;
            let keyid = r.str("keyid")?;
            if !names::is_key_id(keyid) {
                return Err(format!("{}.keyid is not a key id", what));
            }
            if let Some(reason) = r.get("reason") {
                let reason = reason.as_str().ok_or_else(|| format!("{}.reason is not a string", what))?;
                if reason.chars().count() > 1024 {
                    return Err(format!("{}.reason is longer than 1024 characters", what));
                }
            }
            let key = PublicKey::from_base64(r.str("public_key")?)
                .map_err(|e| format!("{}.public_key: {}", what, e.message))?;
            if key.key_id() != keyid {
                return Err(format!("{}.public_key has key id {}, not {}", what, key.key_id(), keyid));
            }
            revoked.push(Revoked {
                keyid: keyid.to_owned(),
                key,
                revoked_in_version: r.int_min("revoked_in_version", 1)? as u64,
                revoked_at: time_field(&r, "revoked_at")?,
                keep_prior_releases: r.bool("keep_prior_releases")?,
                plugins: r.str_list("plugins", true, names::is_plugin_pattern)?,
            });
        }

        let root = Root {
            raw: raw.to_vec(),
            registry: registry.to_owned(),
            version,
            expires,
            keys,
            root_role,
            index_role,
            maintainers,
            plugin_thresholds,
            revoked,
        };
        root.check_consistency()?;
        Ok(root)
    }

    /// 5.1 rules 4-8.
    fn check_consistency(&self) -> Result<(), String> {
        let all_ids = self
            .root_role
            .keyids
            .iter()
            .map(|k| ("roles.root", k))
            .chain(self.index_role.keyids.iter().map(|k| ("roles.index", k)))
            .chain(self.maintainers.iter().flat_map(|m| m.keyids.iter().map(|k| ("maintainers", k))));
        for (place, id) in all_ids {
            if !self.keys.contains_key(id) {
                return Err(format!("root.{} names key {} that is not in root.keys", place, id));
            }
        }
        for (name, role) in [("root", &self.root_role), ("index", &self.index_role)] {
            let distinct = self.role_raw_keys(role).len() as u64;
            if role.threshold > distinct {
                return Err(format!(
                    "roles.{} threshold {} exceeds its {} distinct keys",
                    name, role.threshold, distinct
                ));
            }
        }
        let index = self.role_raw_keys(&self.index_role);
        let mut others = self.role_raw_keys(&self.root_role);
        for m in &self.maintainers {
            for id in &m.keyids {
                others.insert(self.keys[id].raw);
            }
        }
        if index.iter().any(|k| others.contains(k)) {
            return Err("an index key is also a root or maintainer key".into());
        }
        let mut seen = BTreeSet::new();
        let mut seen_ids = BTreeSet::new();
        for r in &self.revoked {
            if self.keys.values().any(|k| k.raw == r.key.raw) {
                return Err(format!("revoked key {} is still in root.keys", r.keyid));
            }
            if !seen.insert(r.key.raw) {
                return Err(format!("key {} is revoked twice", r.keyid));
            }
            // Within one root a key id names one public key (5.1 rule 7): a key id is chosen by
            // whoever makes the key, so a copied id must not describe two keys.
            if self.keys.contains_key(&r.keyid) || !seen_ids.insert(r.keyid.clone()) {
                return Err(format!("key id {} names two different public keys", r.keyid));
            }
            if r.revoked_in_version > self.version {
                return Err(format!("revoked key {} has revoked_in_version above the root version", r.keyid));
            }
        }
        for (name, t) in &self.plugin_thresholds {
            let delegated = self.delegated_keys(name).len() as u64;
            if *t > delegated {
                return Err(format!("plugin_thresholds.{} = {} exceeds its {} delegated keys", name, t, delegated));
            }
        }
        Ok(())
    }

    /// Every key id this root names (`keys`, then `revoked`) with its public key.
    pub fn key_ids(&self) -> BTreeMap<String, PublicKey> {
        let mut ids = self.keys.clone();
        for r in &self.revoked {
            ids.entry(r.keyid.clone()).or_insert_with(|| r.key.clone());
        }
        ids
    }

    /// The plugin patterns of every maintainer holding `key` (by raw key), each once, in order.
    pub fn delegation_of(&self, key: &PublicKey) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.maintainers {
            if m.keyids.iter().any(|id| self.keys[id].raw == key.raw) {
                for p in &m.plugins {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    fn role_raw_keys(&self, role: &Role) -> BTreeSet<[u8; 32]> {
        role.keyids.iter().filter_map(|id| self.keys.get(id)).map(|k| k.raw).collect()
    }

    pub fn role_keys(&self, role: &Role) -> Vec<(String, PublicKey)> {
        role.keyids.iter().filter_map(|id| self.keys.get(id).map(|k| (id.clone(), k.clone()))).collect()
    }

    /// Raw keys of the index role (a change resets the highest-seen registry version).
    pub fn index_raw_keys(&self) -> BTreeSet<[u8; 32]> {
        self.role_raw_keys(&self.index_role)
    }

    /// 5.4: (key id, key) of every maintainer key delegated for `plugin`, distinct by raw key.
    pub fn delegated_keys(&self, plugin: &str) -> Vec<(String, PublicKey)> {
        let mut out: Vec<(String, PublicKey)> = Vec::new();
        for m in &self.maintainers {
            if m.plugins.iter().any(|p| names::pattern_matches(p, plugin)) {
                for id in &m.keyids {
                    let key = &self.keys[id];
                    if !out.iter().any(|(_, k)| k.raw == key.raw) {
                        out.push((id.clone(), key.clone()));
                    }
                }
            }
        }
        out
    }

    fn revoked_candidates(&self) -> Vec<Candidate> {
        self.revoked
            .iter()
            .map(|r| {
                Candidate::refused(
                    &r.keyid,
                    &r.key,
                    TrustCode::RevokedKey,
                    format!("key {} was revoked in root version {}", r.keyid, r.revoked_in_version),
                )
            })
            .collect()
    }

    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires
    }
}

/// A key a signature may be checked against: authorised, or refused with an error.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub key_id: String,
    pub key: PublicKey,
    pub refused: Option<TrustError>,
}

impl Candidate {
    pub fn authorised(key_id: &str, key: &PublicKey) -> Candidate {
        Candidate { key_id: key_id.to_owned(), key: key.clone(), refused: None }
    }
    pub fn refused(key_id: &str, key: &PublicKey, code: TrustCode, msg: String) -> Candidate {
        Candidate { key_id: key_id.to_owned(), key: key.clone(), refused: Some(TrustError::new(code, msg)) }
    }
}

/// The outcome of 5.2 before the threshold is applied.
#[derive(Debug, Default)]
pub struct Tally {
    /// raw public key -> key id of the distinct authorised keys that signed
    pub counted: BTreeMap<[u8; 32], String>,
    /// every signature that verified under an authorised key (for trusted-comment checks)
    pub counted_signatures: Vec<Signature>,
    pub first_rejection: Option<TrustError>,
}

impl Tally {
    /// 5.2: count signatures (`sigs`: raw signature files) over `data`. Authorised candidates
    /// come first, then refused ones.
    pub fn count(data: &[u8], sigs: &[Vec<u8>], candidates: &[Candidate]) -> Tally {
        let mut tally = Tally::default();
        for text in sigs {
            let reject = |e: TrustError, tally: &mut Tally| {
                if tally.first_rejection.is_none() {
                    tally.first_rejection = Some(e);
                }
            };
            let sig = match Signature::parse(text) {
                Ok(s) => s,
                Err(e) => {
                    reject(e, &mut tally);
                    continue;
                }
            };
            if sig.is_legacy() {
                reject(
                    TrustError::new(
                        TrustCode::LegacySignature,
                        format!("legacy (Ed) signature by key {}", sig.key_id()),
                    ),
                    &mut tally,
                );
                continue;
            }
            let matching: Vec<&Candidate> = candidates.iter().filter(|c| c.key.keynum == sig.keynum).collect();
            if matching.is_empty() {
                reject(
                    TrustError::new(
                        TrustCode::UnauthorizedSigner,
                        format!("signature by key {} that is not authorised here", sig.key_id()),
                    ),
                    &mut tally,
                );
                continue;
            }
            match matching.iter().find(|c| sig.verify_bytes(&c.key, data).is_ok()) {
                Some(c) => match &c.refused {
                    Some(e) => reject(e.clone(), &mut tally),
                    None => {
                        tally.counted.insert(c.key.raw, c.key_id.clone());
                        tally.counted_signatures.push(sig);
                    }
                },
                None => reject(
                    TrustError::new(
                        TrustCode::BadSignature,
                        format!("signature by key {} does not verify (data or signature changed)", sig.key_id()),
                    ),
                    &mut tally,
                ),
            }
        }
        tally
    }

    pub fn check(&self, threshold: u64, subject: &str) -> Result<BTreeSet<String>, TrustError> {
        if threshold < 1 {
            return Err(TrustError::new(
                TrustCode::EmptyPolicy,
                format!("{}: a threshold of 0 checks nothing", subject),
            ));
        }
        if self.counted.len() as u64 >= threshold {
            return Ok(self.counted.values().cloned().collect());
        }
        if self.counted.is_empty() {
            if let Some(e) = &self.first_rejection {
                return Err(TrustError::new(e.code, format!("{}: {}", subject, e.message)));
            }
        }
        Err(TrustError::new(
            TrustCode::ThresholdNotMet,
            format!(
                "{}: {} of the required {} distinct authorised keys signed",
                subject,
                self.counted.len(),
                threshold
            ),
        ))
    }
}

fn role_candidates(root: &Root, role: &Role, also_refuse: &[Candidate]) -> Vec<Candidate> {
    let refused_raw: BTreeSet<[u8; 32]> = also_refuse.iter().map(|c| c.key.raw).collect();
    let mut out: Vec<Candidate> = root
        .role_keys(role)
        .iter()
        .filter(|(_, k)| !refused_raw.contains(&k.raw))
        .map(|(id, k)| Candidate::authorised(id, k))
        .collect();
    out.extend(also_refuse.iter().cloned());
    out
}

/// A threshold of `root`'s root role over `data` (revoked keys refused).
pub fn verify_root_role(
    root: &Root,
    data: &[u8],
    sigs: &[Vec<u8>],
    subject: &str,
) -> Result<BTreeSet<String>, TrustError> {
    let candidates = role_candidates(root, &root.root_role, &root.revoked_candidates());
    Tally::count(data, sigs, &candidates).check(root.root_role.threshold, subject)
}

/// First use (5.5): a root signed by a threshold of its own root role. Expiry is checked at
/// the end of the first walk, not here (a pinned old root may lead to a current one).
pub fn verify_root_self(raw: &[u8], sigs: &[Vec<u8>]) -> Result<Root, TrustError> {
    let root = Root::parse(raw)?;
    verify_root_role(&root, raw, sigs, &format!("root version {}", root.version))?;
    Ok(root)
}

/// One step of 5.5: from trusted `n` to candidate bytes `raw` with its signatures.
pub fn verify_root_step(n: &Root, raw: &[u8], sigs: &[Vec<u8>]) -> Result<Root, TrustError> {
    let subject = format!("root version {}", n.version + 1);
    // 0. Nothing is parsed unless some key of N's root role signed these bytes.
    let pre = Tally::count(raw, sigs, &role_candidates(n, &n.root_role, &n.revoked_candidates()));
    if pre.counted.is_empty() {
        return Err(pre.check(n.root_role.threshold, &subject).unwrap_err());
    }
    let c = Root::parse(raw)?;
    if c.version != n.version + 1 {
        return Err(TrustError::new(
            TrustCode::RootVersion,
            format!("root version {} follows version {} (must be {})", c.version, n.version, n.version + 1),
        ));
    }
    check_continuity(n, &c)?;
    let c_revoked = c.revoked_candidates();
    let mut n_refused = c_revoked.clone();
    for r in n.revoked_candidates() {
        if !n_refused.iter().any(|x| x.key.raw == r.key.raw) {
            n_refused.push(r);
        }
    }
    Tally::count(raw, sigs, &role_candidates(n, &n.root_role, &n_refused))
        .check(n.root_role.threshold, &format!("{} (previous root keys)", subject))?;
    Tally::count(raw, sigs, &role_candidates(&c, &c.root_role, &c_revoked))
        .check(c.root_role.threshold, &format!("{} (its own root keys)", subject))?;
    Ok(c)
}

/// 5.5 step 4, every failure `root-continuity`: the registry name, the public key of every key
/// id both versions name, and every revocation of `n` are fixed (but its reason, and
/// keep_prior_releases from true to false); a new revocation is dated by `c`'s expiry and names
/// only plugins `n` delegated to the key.
fn check_continuity(n: &Root, c: &Root) -> Result<(), TrustError> {
    let fail = |msg: String| Err(TrustError::new(TrustCode::RootContinuity, msg));
    if c.registry != n.registry {
        return fail(format!("root version {} renames registry {:?} to {:?}", c.version, n.registry, c.registry));
    }
    let new_ids = c.key_ids();
    for (id, old) in n.key_ids() {
        if let Some(new) = new_ids.get(&id) {
            if new.raw != old.raw {
                return fail(format!(
                    "root version {} binds key id {} to another public key (a key id names one public key for the \
                     whole chain; a new key gets a new key id)",
                    c.version, id
                ));
            }
        }
    }
    for old in &n.revoked {
        let plugins = |r: &Revoked| r.plugins.iter().cloned().collect::<BTreeSet<String>>();
        match c.revoked.iter().find(|r| r.key.raw == old.key.raw) {
            Some(r)
                if r.keyid == old.keyid
                    && r.revoked_at == old.revoked_at
                    && r.revoked_in_version == old.revoked_in_version
                    && plugins(r) == plugins(old)
                    && (r.keep_prior_releases == old.keep_prior_releases || !r.keep_prior_releases) => {}
            _ => {
                return fail(format!(
                    "root version {} drops or alters the revocation of key {} (only its reason may change, and \
                     keep_prior_releases from true to false)",
                    c.version, old.keyid
                ))
            }
        }
    }
    for r in &c.revoked {
        if n.revoked.iter().any(|o| o.key.raw == r.key.raw) {
            continue;
        }
        if r.revoked_in_version != c.version {
            return fail(format!(
                "root version {} adds a revocation of key {} dated version {}",
                c.version, r.keyid, r.revoked_in_version
            ));
        }
        if r.revoked_at > c.expires {
            return fail(format!(
                "root version {} revokes key {} as of a time after the version itself expires",
                c.version, r.keyid
            ));
        }
        let delegated = n.delegation_of(&r.key);
        let wider: Vec<&str> = r
            .plugins
            .iter()
            .filter(|p| !delegated.iter().any(|d| names::pattern_within(p, d)))
            .map(|p| p.as_str())
            .collect();
        if !wider.is_empty() {
            return fail(format!(
                "root version {} revokes key {} for plugins {}, which version {} did not delegate to it (delegated: {})",
                c.version,
                r.keyid,
                wider.join(", "),
                n.version,
                if delegated.is_empty() { "none".to_owned() } else { delegated.join(", ") }
            ));
        }
    }
    Ok(())
}

/// 5.5 in full: walk `steps` from `trusted`, then the final root must not be expired.
/// `on_step` sees each newly trusted root.
pub fn verify_root_chain(trusted: &Root, steps: &[(Vec<u8>, Vec<Vec<u8>>)], now: i64) -> Result<Root, TrustError> {
    let mut current = trusted.clone();
    for (raw, sigs) in steps {
        current = verify_root_step(&current, raw, sigs)?;
    }
    if current.is_expired(now) {
        return Err(TrustError::new(TrustCode::RootExpired, format!("root version {} expired", current.version)));
    }
    Ok(current)
}

/// 5.6: `registry.json` needs a threshold of the index role.
pub fn verify_index_signatures(root: &Root, data: &[u8], sigs: &[Vec<u8>]) -> Result<BTreeSet<String>, TrustError> {
    let mut refused = root.revoked_candidates();
    for (id, key) in &root.keys {
        if !root.index_role.keyids.contains(id)
            && !root.role_keys(&root.index_role).iter().any(|(_, k)| k.raw == key.raw)
        {
            refused.push(Candidate::refused(
                id,
                key,
                TrustCode::UnauthorizedSigner,
                format!("key {} is not an index key", id),
            ));
        }
    }
    let candidates = role_candidates(root, &root.index_role, &refused);
    Tally::count(data, sigs, &candidates).check(root.index_role.threshold, "registry.json")
}

/// 5.7 steps 1-4 for `plugin.toml` (or, with `yank = true`, `yank.toml`). `published_at`:
/// the release's publication time, needed for a revoked key's prior releases to count.
pub fn verify_release_signatures(
    root: &Root,
    plugin: &str,
    manifest: &[u8],
    sigs: &[Vec<u8>],
    now: i64,
    published_at: Option<i64>,
) -> Result<BTreeSet<String>, TrustError> {
    if root.is_expired(now) {
        return Err(TrustError::new(TrustCode::RootExpired, format!("root version {} expired", root.version)));
    }
    if !names::is_plugin_name(plugin) {
        return Err(TrustError::new(TrustCode::InvalidPluginName, format!("{:?} is not a plugin name", plugin)));
    }
    let (name, version) = crate::manifest::name_and_version(manifest, "plugin")
        .map_err(|e| TrustError::new(TrustCode::PluginNameMismatch, e))?;
    if name != plugin {
        return Err(TrustError::new(
            TrustCode::PluginNameMismatch,
            format!("manifest names plugin {:?}, not {:?}", name, plugin),
        ));
    }
    let delegated = root.delegated_keys(plugin);
    let mut candidates: Vec<Candidate> = delegated.iter().map(|(id, k)| Candidate::authorised(id, k)).collect();
    for r in &root.revoked {
        let keeps = r.keep_prior_releases
            && r.plugins.iter().any(|p| names::pattern_matches(p, plugin))
            && matches!(published_at, Some(t) if t < r.revoked_at);
        if keeps {
            candidates.insert(0, Candidate::authorised(&r.keyid, &r.key));
        }
    }
    for r in &root.revoked {
        if !candidates.iter().any(|c| c.key.raw == r.key.raw) {
            candidates.push(Candidate::refused(
                &r.keyid,
                &r.key,
                TrustCode::RevokedKey,
                format!("key {} was revoked in root version {}", r.keyid, r.revoked_in_version),
            ));
        }
    }
    for (id, key) in &root.keys {
        if !candidates.iter().any(|c| c.key.raw == key.raw) {
            candidates.push(Candidate::refused(
                id,
                key,
                TrustCode::UnauthorizedSigner,
                format!("key {} is not delegated for plugin {}", id, plugin),
            ));
        }
    }
    let threshold = root.plugin_thresholds.get(plugin).copied().unwrap_or(1);
    let tally = Tally::count(manifest, sigs, &candidates);
    let signers = tally.check(threshold, &format!("{} {}", plugin, version))?;
    for sig in &tally.counted_signatures {
        let plugin_ok = sig.comment_field("plugin").map_or(true, |p| p == plugin);
        let version_ok = sig.comment_field("version").map_or(true, |v| v == version);
        if !plugin_ok || !version_ok {
            return Err(TrustError::new(
                TrustCode::TrustedCommentMismatch,
                format!(
                    "trusted comment of key {}'s signature names another plugin or version: {:?}",
                    sig.key_id(),
                    sig.trusted_comment
                ),
            ));
        }
    }
    Ok(signers)
}

#[cfg(test)]
mod tests {
    //! The key id and revocation rules of a chain step (docs/trust.md 5.1 rule 7 and 5.5 step 4,
    //! conformance/README.md decision 2), on roots built here and signed by their one root key.
    use super::*;
    use serde_json::{json, Value as J};

    /// A minisign key from a fixed seed under a given key number.
    struct Key {
        sk: ed25519_dalek::SigningKey,
        keynum: [u8; 8],
    }

    impl Key {
        fn new(label: &str) -> Key {
            use sha2::Digest;
            let seed: [u8; 32] = sha2::Sha256::digest(format!("rust step {}", label).as_bytes()).into();
            let mut keynum = [0u8; 8];
            keynum.copy_from_slice(&sha2::Sha256::digest(seed)[..8]);
            Key { sk: ed25519_dalek::SigningKey::from_bytes(&seed), keynum }
        }
        /// Another Ed25519 key under this key's number: the same key id, another public key.
        fn impostor(&self, label: &str) -> Key {
            Key { keynum: self.keynum, ..Key::new(&format!("impostor {}", label)) }
        }
        fn with_keynum(&self, keynum: [u8; 8]) -> Key {
            Key { sk: self.sk.clone(), keynum }
        }
        fn id(&self) -> String {
            crate::minisign::key_id(&self.keynum)
        }
        fn line(&self) -> String {
            use base64::Engine;
            let mut blob = b"Ed".to_vec();
            blob.extend_from_slice(&self.keynum);
            blob.extend_from_slice(self.sk.verifying_key().as_bytes());
            base64::engine::general_purpose::STANDARD.encode(blob)
        }
        fn sign(&self, data: &[u8], comment: &str) -> Vec<u8> {
            use base64::Engine;
            use blake2::Digest;
            use ed25519_dalek::Signer;
            let sig = self.sk.sign(&blake2::Blake2b512::digest(data)).to_bytes();
            let mut blob = b"ED".to_vec();
            blob.extend_from_slice(&self.keynum);
            blob.extend_from_slice(&sig);
            let mut signed = sig.to_vec();
            signed.extend_from_slice(comment.as_bytes());
            let global = self.sk.sign(&signed).to_bytes();
            let b64 = base64::engine::general_purpose::STANDARD;
            format!(
                "untrusted comment: t\n{}\ntrusted comment: {}\n{}\n",
                b64.encode(blob),
                comment,
                b64.encode(global)
            )
            .into_bytes()
        }
    }

    struct Keys {
        root: Key,
        index: Key,
        alice: Key,
        bob: Key,
        carol: Key,
        mallory: Key,
    }

    fn keys() -> Keys {
        Keys {
            root: Key::new("root"),
            index: Key::new("index"),
            alice: Key::new("alice"),
            bob: Key::new("bob"),
            carol: Key::new("carol"),
            mallory: Key::new("mallory"),
        }
    }

    fn revocation(k: &Key, version: u64, at: &str, keep: bool, plugins: &[&str]) -> J {
        json!({"keyid": k.id(), "public_key": k.line(), "revoked_in_version": version, "revoked_at": at,
               "keep_prior_releases": keep, "plugins": plugins})
    }

    /// Root 1: alice maintains hello-* and exact, bob bob_plugin; carol was revoked (keeping
    /// prior releases of carol_plugin and carol-*).
    fn base(ks: &Keys) -> J {
        json!({
            "_type": "registry-root", "spec_version": 1, "registry": "step-registry", "version": 1,
            "expires": "2030-01-01T00:00:00Z",
            "keys": {
                ks.root.id(): {"public_key": ks.root.line()}, ks.index.id(): {"public_key": ks.index.line()},
                ks.alice.id(): {"public_key": ks.alice.line()}, ks.bob.id(): {"public_key": ks.bob.line()}
            },
            "roles": {"root": {"keyids": [ks.root.id()], "threshold": 1},
                      "index": {"keyids": [ks.index.id()], "threshold": 1}},
            "maintainers": {"alice": {"keyids": [ks.alice.id()], "plugins": ["hello-*", "exact"]},
                            "bob": {"keyids": [ks.bob.id()], "plugins": ["bob_plugin"]}},
            "plugin_thresholds": {},
            "revoked": [revocation(&ks.carol, 1, "2026-01-01T00:00:00Z", true, &["carol_plugin", "carol-*"])]
        })
    }

    /// The trust code of the step from `doc` to `doc` edited as version 2 ("" when accepted).
    /// Signed by the root key and by another key under its key id (which counts where a step
    /// binds the id to that key), so a step rebinding the root key id meets both thresholds.
    fn step_code(ks: &Keys, doc: &J, edit: &dyn Fn(&mut J)) -> &'static str {
        let prev = Root::parse(&serde_json::to_vec(doc).unwrap()).expect("root 1");
        let mut next = doc.clone();
        next["version"] = json!(2);
        edit(&mut next);
        let raw = serde_json::to_vec(&next).unwrap();
        let comment = "registry-root\tregistry:step-registry\tversion:2";
        let sigs = vec![ks.root.sign(&raw, comment), ks.root.impostor("root").sign(&raw, comment)];
        match verify_root_step(&prev, &raw, &sigs) {
            Ok(_) => "",
            Err(e) => e.code.as_str(),
        }
    }

    fn revoked(d: &mut J) -> &mut Vec<J> {
        d["revoked"].as_array_mut().unwrap()
    }

    fn remove(d: &mut J, table: &str, key: &str) {
        d[table].as_object_mut().unwrap().remove(key);
    }

    /// Alice removed from keys and maintainers and revoked in version 2.
    fn revoke_alice<'a>(ks: &'a Keys, at: &'a str, plugins: &'a [&'a str]) -> Box<dyn Fn(&mut J) + 'a> {
        Box::new(move |d: &mut J| {
            remove(d, "keys", &ks.alice.id());
            remove(d, "maintainers", "alice");
            revoked(d).push(revocation(&ks.alice, 2, at, true, plugins));
        })
    }

    #[test]
    fn a_step_keeps_key_ids_and_revocations() {
        let ks = keys();
        let doc = base(&ks);
        let t = "2026-02-01T00:00:00Z";
        let cases: Vec<(&str, Box<dyn Fn(&mut J) + '_>, &str)> = vec![
            ("unchanged", Box::new(|_: &mut J| {}), ""),
            // A key id of both versions names the same public key, whatever lists it.
            (
                "root key id rebound",
                Box::new(|d: &mut J| d["keys"][ks.root.id()] = json!({"public_key": ks.root.impostor("root").line()})),
                "root-continuity",
            ),
            (
                "index key id rebound",
                Box::new(|d: &mut J| {
                    d["keys"][ks.index.id()] = json!({"public_key": ks.index.impostor("index").line()})
                }),
                "root-continuity",
            ),
            (
                "maintainer key id rebound",
                Box::new(|d: &mut J| {
                    d["keys"][ks.alice.id()] = json!({"public_key": ks.alice.impostor("alice").line()})
                }),
                "root-continuity",
            ),
            (
                "key id of a key rebound by its revocation",
                Box::new(|d: &mut J| {
                    remove(d, "keys", &ks.bob.id());
                    remove(d, "maintainers", "bob");
                    revoked(d).push(revocation(&ks.bob.impostor("bob"), 2, t, false, &[]));
                }),
                "root-continuity",
            ),
            (
                "new key under a new key id",
                Box::new(|d: &mut J| {
                    d["keys"][ks.mallory.id()] = json!({"public_key": ks.mallory.line()});
                    d["maintainers"]["bob"]["keyids"] = json!([ks.bob.id(), ks.mallory.id()]);
                }),
                "",
            ),
            // Within one root a key id names one public key (5.1 rule 7).
            (
                "revoked key id of a kept key",
                Box::new(|d: &mut J| revoked(d).push(revocation(&ks.alice.impostor("alice"), 2, t, false, &[]))),
                "root-format",
            ),
            (
                "revoked key id twice",
                Box::new(|d: &mut J| {
                    revoked(d).push(revocation(&ks.mallory, 2, t, false, &[]));
                    revoked(d).push(revocation(&ks.mallory.impostor("mallory"), 2, t, false, &[]));
                }),
                "root-format",
            ),
            // An existing revocation is fixed but for its reason and keep_prior_releases true -> false.
            (
                "revocation widened",
                Box::new(|d: &mut J| d["revoked"][0]["plugins"] = json!(["carol_plugin", "carol-*", "exact"])),
                "root-continuity",
            ),
            (
                "revocation narrowed",
                Box::new(|d: &mut J| d["revoked"][0]["plugins"] = json!(["carol_plugin"])),
                "root-continuity",
            ),
            (
                "revocation backdated",
                Box::new(|d: &mut J| d["revoked"][0]["revoked_at"] = json!("2025-12-31T23:59:59Z")),
                "root-continuity",
            ),
            (
                "revocation under another key id",
                Box::new(|d: &mut J| {
                    let other = ks.carol.with_keynum([1, 2, 3, 4, 5, 6, 7, 8]);
                    d["revoked"] =
                        json!([revocation(&other, 1, "2026-01-01T00:00:00Z", true, &["carol_plugin", "carol-*"])]);
                }),
                "root-continuity",
            ),
            ("revocation dropped", Box::new(|d: &mut J| d["revoked"] = json!([])), "root-continuity"),
            (
                "revocation plugins reordered",
                Box::new(|d: &mut J| d["revoked"][0]["plugins"] = json!(["carol-*", "carol_plugin"])),
                "",
            ),
            (
                "revocation reason and keep_prior_releases true to false",
                Box::new(|d: &mut J| {
                    d["revoked"][0]["reason"] = json!("leaked earlier");
                    d["revoked"][0]["keep_prior_releases"] = json!(false);
                }),
                "",
            ),
            // A new revocation: dated by the version's expiry, within the key's delegation.
            ("new revocation within the delegation", revoke_alice(&ks, t, &["hello-*", "exact"]), ""),
            ("new revocation of a name under a prefix", revoke_alice(&ks, t, &["hello-world"]), ""),
            ("new revocation of a narrower prefix", revoke_alice(&ks, t, &["hello-w*"]), ""),
            ("new revocation for no plugin", revoke_alice(&ks, t, &[]), ""),
            ("new revocation at the expiry", revoke_alice(&ks, "2030-01-01T00:00:00Z", &["exact"]), ""),
            (
                "new revocation after the expiry",
                revoke_alice(&ks, "2030-01-01T00:00:01Z", &["exact"]),
                "root-continuity",
            ),
            ("new revocation of a wider prefix", revoke_alice(&ks, t, &["hello*"]), "root-continuity"),
            ("new revocation of every plugin", revoke_alice(&ks, t, &["*"]), "root-continuity"),
            ("new revocation of a prefix of an exact name", revoke_alice(&ks, t, &["exact*"]), "root-continuity"),
            (
                "new revocation of another maintainer's plugin",
                revoke_alice(&ks, t, &["exact", "bob_plugin"]),
                "root-continuity",
            ),
            (
                "new revocation of a key that was no maintainer",
                Box::new(|d: &mut J| revoked(d).push(revocation(&ks.mallory, 2, t, true, &["exact"]))),
                "root-continuity",
            ),
            (
                "new revocation of a key that was no maintainer, for no plugin",
                Box::new(|d: &mut J| revoked(d).push(revocation(&ks.mallory, 2, t, true, &[]))),
                "",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, edit, want)| {
                let got = step_code(&ks, &doc, edit.as_ref());
                if got == *want {
                    None
                } else {
                    Some(format!("{}: code {:?}, want {:?}", name, got, want))
                }
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A key delegated by two maintainers may be revoked for the patterns of both.
    #[test]
    fn a_new_revocation_may_name_every_maintainer_holding_the_key() {
        let ks = keys();
        let mut doc = base(&ks);
        doc["maintainers"]["alice-too"] = json!({"keyids": [ks.alice.id()], "plugins": ["other"]});
        let edit = |d: &mut J| {
            remove(d, "maintainers", "alice-too");
            revoke_alice(&ks, "2026-02-01T00:00:00Z", &["exact", "other"])(d);
        };
        assert_eq!(step_code(&ks, &doc, &edit), "");
    }

    #[test]
    fn pattern_within() {
        for (inner, outer, want) in [
            ("exact", "exact", true),
            ("exact", "exac", false),
            ("exact*", "exact", false),
            ("hello-*", "hello*", true),
            ("hello*", "hello-*", false),
            ("hello-x", "hello-*", true),
            ("hello", "hello*", true),
            ("*", "*", true),
            ("a*", "*", true),
            ("*", "a*", false),
        ] {
            assert_eq!(names::pattern_within(inner, outer), want, "{} within {}", inner, outer);
        }
    }
}
