//! The verifier's operations (FORMAT 2 section 6): pin a root, refresh (root chain walk, top
//! document signatures, expiry, rollback), walk the plugin tree, resolve `name@range`, fetch
//! and verify a release, install it atomically with the shared lockfile (version 3), and verify
//! installed plugins offline.
//!
//! A trust state directory holds one registry's trusted root and the highest registry
//! version seen (`root.json`, `state.json`); both are written only after an operation
//! succeeded.

use crate::documents::{Node, PluginDocument, Release, TopDocument, MAX_TOP_BYTES};
use crate::error::{Class, Error, Result, TrustCode, TrustError};
use crate::fetch::{Fetcher, Transport};
use crate::fsx;
use crate::json::{self, Obj, Value};
use crate::lockfile::{
    plan_commit, Commit, Entry, Lockfile, LockfileFile, DEPENDENCY_ONLY, LOCKFILE, MAX_LOCKFILE_BYTES,
};
use crate::manifest::ManifestFacts;
use crate::minisign::MAX_SIGNATURE_FILE;
use crate::names;
use crate::range::{Range, ReqError, Requirement};
use crate::root::{self, Root, Tally, MAX_ROOT_BYTES};
use semver::Version;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOT_FILE: &str = "root.json";
const STATE_FILE: &str = "state.json";
/// The sha256 of the root last pinned (decision 1: pinning it again keeps the state).
const PINNED_FILE: &str = "pinned-root.sha256";
const SIG_CAP: u64 = MAX_SIGNATURE_FILE as u64;

/// What the state directory remembers about its registry.
#[derive(Clone, Debug)]
pub struct TrustState {
    pub url: String,
    pub root: Root,
    pub highest_version: i64,
}

impl TrustState {
    /// `None` when nothing was pinned in `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Option<TrustState>> {
        let root_bytes = match std::fs::read(state_dir.join(ROOT_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(env_error(&state_dir.join(ROOT_FILE), e)),
        };
        let corrupt = |what: String| {
            Error::new(
                Class::NotPinned,
                format!(
                    "the trust state in {} is unreadable ({}); pin the registry's root again",
                    state_dir.display(),
                    what
                ),
            )
        };
        let root = Root::parse(&root_bytes).map_err(|e| corrupt(e.message))?;
        let state_bytes = std::fs::read(state_dir.join(STATE_FILE)).map_err(|e| corrupt(e.to_string()))?;
        let v = json::parse(&state_bytes).map_err(corrupt)?;
        let o = Obj::new(&v, "state", &["url", "highest_version"], &[]).map_err(corrupt)?;
        Ok(Some(TrustState {
            url: o.str("url").map_err(corrupt)?.to_owned(),
            root,
            highest_version: o.int("highest_version").map_err(corrupt)?,
        }))
    }

    /// Save unless what is stored is further along, as the Python client's `StateStore.save`:
    /// under the state directory's lock, a stored root of a higher version is kept (another
    /// process committed a newer one: a session never lowers it), and for the same root version
    /// the higher of the two highest registry versions is written. Sessions save through this;
    /// `pin` writes the state itself (conformance decision 1).
    pub fn save_merged(&self, state_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(state_dir).map_err(|e| env_error(state_dir, e))?;
        let _lock = fsx::DirLock::acquire(state_dir)?;
        let mut state = self.clone();
        if let Ok(Some(current)) = TrustState::load(state_dir) {
            if current.url == self.url {
                if current.root.version > self.root.version {
                    return Ok(());
                }
                if current.root.version == self.root.version {
                    state.highest_version = state.highest_version.max(current.highest_version);
                }
            }
        }
        state.save(state_dir)
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(state_dir).map_err(|e| env_error(state_dir, e))?;
        let mut m = BTreeMap::new();
        m.insert("url".to_owned(), Value::Str(self.url.clone()));
        m.insert("highest_version".to_owned(), Value::Int(self.highest_version));
        let mut text = json::to_python_pretty(&Value::Obj(m));
        text.push('\n');
        fsx::write_atomic(state_dir, ROOT_FILE, &self.root.raw)?;
        fsx::write_atomic(state_dir, STATE_FILE, text.as_bytes())?;
        Ok(())
    }
}

fn env_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(Class::Network, format!("{}: {}; check the path and its permissions", path.display(), e))
}

fn not_pinned(state_dir: &Path) -> Error {
    Error::new(
        Class::NotPinned,
        format!(
            "no root is pinned in {}; pin the registry's root first (a root file obtained out of band)",
            state_dir.display()
        ),
    )
}

/// Options of an install.
#[derive(Clone, Debug, Default)]
pub struct InstallOptions {
    /// the host's version: releases whose `host` range excludes it are skipped
    pub host_version: Option<String>,
    /// permissions the host grants; a release declaring any other is refused
    pub allow: BTreeSet<String>,
}

/// A resolved dependency graph: plugin name -> (its verified document, the chosen version).
type GraphChoice = BTreeMap<String, (PluginDocument, String)>;

/// A verifier bound to one registry URL and one trust state directory.
pub struct Verifier {
    pub url: String,
    pub state_dir: PathBuf,
    transport: Arc<dyn Transport>,
    /// current time (Unix seconds) for every expiry check
    pub now: i64,
    /// bound on all transfers of one operation
    pub timeout: Duration,
}

impl Verifier {
    /// The registry URL is one a lockfile entry may hold (decision 15): every install records it,
    /// and a URL the lockfile rules refuse (`http://host:80\sub\`, which the URL library reads
    /// with slashes) would make the plugin directory unreadable for every later command.
    fn check_url(&self) -> Result<()> {
        match crate::registry_url::locked_registry_problem(&self.url) {
            None => Ok(()),
            Some(why) => Err(Error::new(
                Class::Network,
                format!(
                    "the registry URL {:?} {}; pass the registry's http(s):// or file:// URL",
                    crate::registry_url::redacted(&self.url),
                    why
                ),
            )),
        }
    }

    pub fn new(url: &str, state_dir: &Path, transport: Arc<dyn Transport>) -> Verifier {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Verifier {
            // The Python client's spelling (decision 15): the trust state and lockfile entries of
            // the three clients name a registry alike.
            url: crate::registry_url::canonical(url),
            state_dir: state_dir.to_path_buf(),
            transport,
            now,
            timeout: Duration::from_secs(120),
        }
    }

    pub fn with_now(mut self, now: i64) -> Verifier {
        self.now = now;
        self
    }

    /// The time limit of each session's downloads; a limit past `MAX_TIMEOUT` (about 136
    /// years, "no limit" in practice) is that long, never an overflow.
    pub fn with_timeout(mut self, timeout: Duration) -> Verifier {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::new(Arc::clone(&self.transport), &self.url, Instant::now() + self.timeout)
    }

    /// First use: trust `root_bytes` if a threshold of its own root role signed it
    /// (`sigs`; when empty, the keyed signature files are fetched from the registry).
    /// Expiry is checked by the first refresh (an old pinned root may lead to a current one).
    pub fn pin(&self, root_bytes: &[u8], sigs: &[Vec<u8>]) -> Result<Root> {
        self.check_url()?;
        let mut sigs = sigs.to_vec();
        if sigs.is_empty() {
            let root =
                Root::parse(root_bytes).map_err(|e| Error::from_trust(Class::RootChain, "the root to pin", e))?;
            let fetcher = self.fetcher();
            for id in &root.root_role.keyids {
                if let Some(s) = fetcher.get(&format!("root/{}.root.json.{}.minisig", root.version, id), SIG_CAP)? {
                    sigs.push(s);
                }
            }
        }
        let root = root::verify_root_self(root_bytes, &sigs)
            .map_err(|e| Error::from_trust(Class::RootChain, "the root to pin is not self-signed", e))?;
        // The very root pinned before, pinned again (a host pinning its bundled root at every
        // start): what the sessions learned stays, a newer root and the rollback floor
        // (conformance decision 1). Any other root (a recovery root after a compromise) replaces
        // the state.
        let _lock = {
            std::fs::create_dir_all(&self.state_dir).map_err(|e| env_error(&self.state_dir, e))?;
            fsx::DirLock::acquire(&self.state_dir)?
        };
        let sum = names::sha256_hex(root_bytes);
        if let Ok(Some(current)) = TrustState::load(&self.state_dir) {
            let prev = std::fs::read_to_string(self.state_dir.join(PINNED_FILE)).unwrap_or_default();
            if current.url == self.url && prev.trim() == sum {
                return Ok(current.root);
            }
        }
        TrustState { url: self.url.clone(), root: root.clone(), highest_version: 0 }.save(&self.state_dir)?;
        fsx::write_atomic(&self.state_dir, PINNED_FILE, format!("{}\n", sum).as_bytes())?;
        Ok(root)
    }

    /// Walk the root chain and verify the top document. Nothing is persisted until the
    /// session's `commit` (call it when the whole operation succeeded).
    pub fn refresh(&self) -> Result<Session<'_>> {
        self.check_url()?;
        let state = TrustState::load(&self.state_dir)?.ok_or_else(|| not_pinned(&self.state_dir))?;
        let fetcher = self.fetcher();
        let (root, rotated) = walk_roots(&fetcher, &state.root, self.now, MAX_ROOT_STEPS)?;
        let highest = if rotated { 0 } else { state.highest_version };
        let top = fetch_top(&fetcher, &root, self.now, highest)?;
        let new_state =
            TrustState { url: self.url.clone(), root: root.clone(), highest_version: highest.max(top.version) };
        Ok(Session {
            verifier: self,
            fetcher,
            root,
            top,
            new_state,
            fetched: RefCell::new(BTreeMap::new()),
            documents: RefCell::new(BTreeMap::new()),
        })
    }
}

fn chain_error(e: TrustError) -> Error {
    let class = if e.code == TrustCode::RootExpired { Class::RootExpired } else { Class::RootChain };
    Error::from_trust(class, "root chain", e)
}

/// How many new root versions one session walks (conformance decision 2): a chain that still
/// goes on after them is `root-chain`, never ended at the root the walk stopped at (an expired
/// root there would block every refresh, a key rotated further on would go unseen).
pub const MAX_ROOT_STEPS: usize = 1024;

/// 5.5 over the network: fetch `root/<N+1>.root.json` until 404, each version checked before
/// the next is fetched, at most `max_steps` new versions ([`MAX_ROOT_STEPS`]; tests pass a
/// smaller bound). Returns the final root and whether a step on the way removed an index key.
fn walk_roots(fetcher: &Fetcher, trusted: &Root, now: i64, max_steps: usize) -> Result<(Root, bool)> {
    let mut current = trusted.clone();
    let mut rotated = false;
    for steps in 0.. {
        let next = current.version + 1;
        let path = format!("root/{}.root.json", next);
        let raw = match fetcher.get(&path, MAX_ROOT_BYTES as u64)? {
            None => break,
            Some(raw) => raw,
        };
        if steps == max_steps {
            return Err(Error::from_trust(
                Class::RootChain,
                &path,
                TrustError::new(
                    TrustCode::RootVersion,
                    format!(
                        "more than {} new root versions after version {}; pin a recent root version",
                        max_steps, trusted.version
                    ),
                ),
            ));
        }
        let mut fetched: BTreeSet<String> = BTreeSet::new();
        let mut sigs = Vec::new();
        for id in &current.root_role.keyids {
            if fetched.insert(id.clone()) {
                if let Some(s) = fetcher.get(&format!("{}.{}.minisig", path, id), SIG_CAP)? {
                    sigs.push(s);
                }
            }
        }
        // Step 0 before anything else is read: some key of N's root role must have signed.
        let pre_candidates: Vec<root::Candidate> =
            current.role_keys(&current.root_role).iter().map(|(id, k)| root::Candidate::authorised(id, k)).collect();
        let pre = Tally::count(&raw, &sigs, &pre_candidates);
        if pre.counted.is_empty() {
            return Err(chain_error(root::verify_root_step(&current, &raw, &sigs).unwrap_err()));
        }
        // Only now learn N+1's own root keys, and fetch their signatures too.
        if let Ok(candidate) = Root::parse(&raw) {
            for id in &candidate.root_role.keyids {
                if fetched.insert(id.clone()) {
                    if let Some(s) = fetcher.get(&format!("{}.{}.minisig", path, id), SIG_CAP)? {
                        sigs.push(s);
                    }
                }
            }
        }
        let c = root::verify_root_step(&current, &raw, &sigs).map_err(chain_error)?;
        // Only a step that removes an index key (a raw key of N's index role missing from
        // N+1's; raw keys compare, so a key under two key ids is one key) resets the highest
        // version seen: after a step that only adds keys or changes the threshold, a document
        // the old keys signed still verifies, so an older one is still a rollback.
        if !current.index_raw_keys().is_subset(&c.index_raw_keys()) {
            rotated = true;
        }
        current = c;
    }
    if current.is_expired(now) {
        return Err(chain_error(TrustError::new(
            TrustCode::RootExpired,
            format!("root version {} expired; the registry's owners must publish a renewed root", current.version),
        )));
    }
    Ok((current, rotated))
}

/// FORMAT 2 section 6 step 2.
fn fetch_top(fetcher: &Fetcher, root: &Root, now: i64, highest: i64) -> Result<TopDocument> {
    let data = fetcher.get("registry.json", MAX_TOP_BYTES as u64)?.ok_or_else(|| {
        Error::new(Class::Network, format!("{} does not exist; check the registry URL", fetcher.url("registry.json")))
    })?;
    let mut sigs = Vec::new();
    let mut names_: Vec<String> = vec!["registry.json.minisig".to_owned()];
    let ids: BTreeSet<&String> = root.index_role.keyids.iter().collect();
    names_.extend(ids.iter().map(|id| format!("registry.json.{}.minisig", id)));
    for name in &names_ {
        if let Some(s) = fetcher.get(name, SIG_CAP)? {
            sigs.push(s);
        }
    }
    root::verify_index_signatures(root, &data, &sigs).map_err(|e| {
        let attack = if e.code == TrustCode::UnauthorizedSigner {
            "registry.json is signed by a key that is not an index key"
        } else {
            "tampered registry.json or signature"
        };
        Error::from_trust(
            Class::BadSignature,
            &format!(
                "{}: it lacks {} valid signature(s) by the index keys of root version {}",
                attack, root.index_role.threshold, root.version
            ),
            e,
        )
    })?;
    let top = TopDocument::parse(&data)?;
    if top.registry_name != root.registry {
        return Err(Error::new(
            Class::WrongRegistry,
            format!(
                "registry.json is for registry {:?}, but the pinned root is for {:?}; check the registry URL",
                top.registry_name, root.registry
            ),
        ));
    }
    if top.root_version > root.version as i64 {
        return Err(Error::new(
            Class::Malformed,
            format!("registry.json was built under root version {}, but the newest published root is {}; the registry is inconsistent", top.root_version, root.version),
        ));
    }
    if now >= top.expires_at {
        return Err(Error::new(
            Class::Freeze,
            "freeze attack or stale mirror: registry.json has expired; retry later or use another mirror".to_string(),
        ));
    }
    if top.version < highest {
        return Err(Error::new(
            Class::Rollback,
            format!(
                "rollback attack: registry version {} is lower than the highest seen {}; use another mirror",
                top.version, highest
            ),
        ));
    }
    Ok(top)
}

/// A release downloaded and verified: the bytes to install and the facts the lockfile keeps.
#[derive(Clone, Debug)]
pub struct VerifiedRelease {
    pub release: Release,
    pub facts: ManifestFacts,
    pub manifest: Vec<u8>,
    /// (file name, bytes) of every signature file found
    pub signatures: Vec<(String, Vec<u8>)>,
    pub signers: BTreeSet<String>,
    pub wasm: Vec<u8>,
}

/// A refreshed registry: verified root and top document.
pub struct Session<'v> {
    verifier: &'v Verifier,
    fetcher: Fetcher,
    pub root: Root,
    pub top: TopDocument,
    new_state: TrustState,
    /// metadata documents fetched in this session (sha256 -> bytes), cached on commit
    fetched: RefCell<BTreeMap<String, Vec<u8>>>,
    /// plugin documents found in this session, by name: a resolution looks one plugin up many
    /// times (8,000 requests for an 8-plugin graph, 1,017 walks of one tree node)
    documents: RefCell<BTreeMap<String, PluginDocument>>,
}

const CACHE_DIR: &str = "cache";

/// An installed release's manifest, signature files (name, bytes) and module.
type InstalledCopy = (Vec<u8>, Vec<(String, Vec<u8>)>, Vec<u8>);

impl<'v> Session<'v> {
    /// Persist the new root, the highest registry version seen and the verified metadata
    /// documents (`<state>/cache/<sha256>`, re-hashed whenever they are used).
    pub fn commit(&self) -> Result<()> {
        self.new_state.save_merged(&self.verifier.state_dir)?;
        for (sha, data) in self.fetched.borrow().iter() {
            fsx::write_atomic(&self.verifier.state_dir, &format!("{}/{}", CACHE_DIR, sha), data)?;
        }
        Ok(())
    }

    fn fetch_pinned(&self, pin: &crate::documents::Pin, what: &str) -> Result<Vec<u8>> {
        if let Some(data) = self.fetched.borrow().get(&pin.sha256) {
            return Ok(data.clone()); // verified against this very pin when it was fetched
        }
        let cached = fsx::read_below(&self.verifier.state_dir, &format!("{}/{}", CACHE_DIR, pin.sha256), pin.size);
        if let Ok(Some(data)) = cached {
            if data.len() as u64 == pin.size && names::sha256_hex(&data) == pin.sha256 {
                return Ok(data);
            }
        }
        let data = self.fetch_pinned_remote(pin, what)?;
        self.fetched.borrow_mut().insert(pin.sha256.clone(), data.clone());
        Ok(data)
    }

    fn fetch_pinned_remote(&self, pin: &crate::documents::Pin, what: &str) -> Result<Vec<u8>> {
        let path = pin.path();
        let data = self.fetcher.get(&path, pin.size)?.ok_or_else(|| {
            Error::new(Class::Network, format!("{} ({}) is missing from the registry", what, self.fetcher.url(&path)))
        })?;
        if data.len() as u64 != pin.size || names::sha256_hex(&data) != pin.sha256 {
            return Err(Error::new(
                Class::DigestMismatch,
                format!("tampered {}: {} does not match the size and sha256 its signed parent pins", what, path),
            ));
        }
        Ok(data)
    }

    /// The tree walk (FORMAT 2 section 3) and the plugin document of `name`.
    pub fn plugin_document(&self, name: &str) -> Result<PluginDocument> {
        if let Some(doc) = self.documents.borrow().get(name) {
            return Ok(doc.clone());
        }
        let doc = self.find_plugin_document(name)?;
        self.documents.borrow_mut().insert(name.to_owned(), doc.clone());
        Ok(doc)
    }

    fn find_plugin_document(&self, name: &str) -> Result<PluginDocument> {
        let key = crate::documents::plugin_key(name);
        let mut pin = self.top.tree.clone();
        let mut prefix = String::new();
        let missing = || {
            Error::new(
                Class::NotFound,
                format!("plugin {:?} is not in registry {:?}; check the name", name, self.root.registry),
            )
        };
        loop {
            let data = self.fetch_pinned(&pin, &format!("tree node {:?}", prefix))?;
            match Node::parse(&data, &prefix)? {
                Node::Branch(children) => {
                    let digit = key.as_bytes()[prefix.len()] as char;
                    pin = children.get(&digit).cloned().ok_or_else(missing)?;
                    prefix.push(digit);
                }
                Node::Leaf(plugins) => {
                    let doc_pin = plugins.get(name).ok_or_else(missing)?;
                    let data = self.fetch_pinned(doc_pin, &format!("plugin document of {}", name))?;
                    return PluginDocument::parse(&data, name);
                }
            }
        }
    }

    /// The highest release matching `req`: yanked only when pinned exactly, host-compatible.
    pub fn resolve<'d>(
        &self,
        doc: &'d PluginDocument,
        req: &Requirement,
        host_version: Option<&Version>,
    ) -> Result<&'d Release> {
        choose_release(doc, req, host_version)
    }

    /// FORMAT 2 section 6 step 6: fetch and verify one release (nothing is written).
    /// `doc` is the plugin document `release` comes from (a module swapped with another
    /// version's is reported as mix-and-match).
    pub fn download(
        &self,
        doc: &PluginDocument,
        release: &Release,
        allow: &BTreeSet<String>,
    ) -> Result<VerifiedRelease> {
        self.download_from(doc, release, allow, None)
    }

    /// The files of `release` as installed in `dir`, when the lockfile pins exactly the bytes
    /// the plugin document pins and they are intact (then nothing is downloaded again; the
    /// bytes go through the same checks as downloaded ones).
    fn installed_copy(&self, release: &Release, dir: &Path, lock: &Lockfile) -> Option<InstalledCopy> {
        let e = lock.plugins.get(&release.name)?;
        let same = e.version == release.version
            && e.manifest_sha256 == release.manifest.sha256
            && e.manifest_size == release.manifest.size
            && e.wasm_sha256 == release.wasm.sha256
            && e.wasm_size == release.wasm.size;
        if !same {
            return None;
        }
        let read = |rel: &str, size: u64, sha: &str| {
            fsx::read_below(dir, rel, size).ok()?.filter(|d| d.len() as u64 == size && names::sha256_hex(d) == sha)
        };
        let manifest = read(&e.manifest, e.manifest_size, &e.manifest_sha256)?;
        let wasm = read(&e.wasm, e.wasm_size, &e.wasm_sha256)?;
        let mut signatures = Vec::new();
        for rel in &e.signatures {
            let name = rel.rsplit('/').next()?.to_owned();
            signatures.push((name, fsx::read_below(dir, rel, SIG_CAP).ok()??));
        }
        Some((manifest, signatures, wasm))
    }

    fn download_from(
        &self,
        doc: &PluginDocument,
        release: &Release,
        allow: &BTreeSet<String>,
        installed: Option<(&Path, &Lockfile)>,
    ) -> Result<VerifiedRelease> {
        let local = installed.and_then(|(dir, lock)| self.installed_copy(release, dir, lock));
        let (local_wasm, local_files) = match local {
            Some((m, sigs, w)) => (Some(w), Some((m, sigs))),
            None => (None, None),
        };
        let label = format!("{} {}", release.name, release.version);
        let mix = |what: String| {
            Error::new(
                Class::MixAndMatch,
                format!(
                    "mix-and-match attack: {}; do not install from this registry until its owners rebuild it",
                    what
                ),
            )
        };
        let (manifest, local_signatures) = match local_files {
            Some((m, sigs)) => (m, Some(sigs)),
            None => (
                self.fetcher.get(&release.manifest.path, release.manifest.size)?.ok_or_else(|| {
                    Error::new(Class::Network, format!("{} is missing from the registry", release.manifest.path))
                })?,
                None,
            ),
        };
        if manifest.len() as u64 != release.manifest.size || names::sha256_hex(&manifest) != release.manifest.sha256 {
            return Err(Error::new(
                Class::DigestMismatch,
                format!(
                    "tampered manifest: {} does not match the size and sha256 in the signed plugin document",
                    release.manifest.path
                ),
            ));
        }
        let mut signatures = Vec::new();
        if let Some(sigs) = local_signatures {
            signatures = sigs;
        } else {
            let mut sig_names = vec!["plugin.toml.minisig".to_owned()];
            let ids: BTreeSet<&String> = release.signers.iter().collect();
            sig_names.extend(ids.iter().map(|id| format!("plugin.toml.{}.minisig", id)));
            let dir = format!("plugins/{}/{}/", release.name, release.version);
            for name in sig_names {
                if let Some(s) = self.fetcher.get(&format!("{}{}", dir, name), SIG_CAP)? {
                    signatures.push((name, s));
                }
            }
        }
        // 1-2: the signed manifest's facts (readable TOML), naming the resolved plugin and version
        let facts = ManifestFacts::parse(&manifest).map_err(|e| {
            Error::new(Class::Malformed, format!("the signed manifest of {} is unreadable: {}", label, e))
        })?;
        let (m_name, m_version) = (&facts.name, &facts.version);
        if *m_name != release.name || *m_version != release.version {
            return Err(Error::new(
                Class::WrongSoftware,
                format!(
                    "wrong software attack: the registry entry for {} points at the signed manifest of {} {}; do not install from this registry until its owners rebuild it",
                    label, m_name, m_version
                ),
            ));
        }
        // 3: maintainer signatures (docs/trust.md 5.7)
        let sig_bytes: Vec<Vec<u8>> = signatures.iter().map(|(_, b)| b.clone()).collect();
        let published = names::parse_time(&release.published_at);
        let signers = root::verify_release_signatures(
            &self.root,
            &release.name,
            &manifest,
            &sig_bytes,
            self.verifier.now,
            published,
        )
        .map_err(|e| Error::from_trust(Class::MaintainerSignature, &format!("maintainer signature of {}", label), e))?;
        // 4: index-only fields are not trusted; the signed manifest decides
        entry_agrees(release, &facts)?;
        // Installed, such a module would be taken for the manifest's own signature (and the
        // lockfile would name one file as both): ci check refuses the name, a forged index serves it.
        if names::is_reserved_name(&facts.artifact_file) {
            return Err(Error::new(
                Class::Malformed,
                format!(
                    "the signed manifest of {} names its module {:?}, a name reserved for the release's metadata (plugin.toml, yank.toml and their signatures); do not install this release",
                    label, facts.artifact_file
                ),
            ));
        }
        // the whole signed manifest against schemas/plugin.schema.json, before any permission is
        // asked for (decision 11, step 4)
        crate::manifest::check_strict(&manifest).map_err(|e| {
            Error::new(Class::Malformed, format!("the signed manifest of {} cannot be read: {}", label, e))
        })?;
        // 5: the host grants every permission the signed manifest declares
        let missing: Vec<&str> = facts.permissions.iter().filter(|p| !allow.contains(*p)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::new(
                Class::PermissionRequired,
                format!("{} needs permission(s) {} that were not granted; allow them (--allow {}) if the host should grant them", label, missing.join(", "), missing.join(",")),
            ));
        }
        // 6: the module, by its pin
        let wasm = match local_wasm {
            Some(w) => w,
            None => self.fetcher.get(&release.wasm.path, release.wasm.size)?.ok_or_else(|| {
                Error::new(Class::Network, format!("{} is missing from the registry", release.wasm.path))
            })?,
        };
        let digest = names::sha256_hex(&wasm);
        if digest != facts.artifact_sha256 || wasm.len() as u64 != facts.artifact_size {
            if let Some(other) = doc.versions.iter().find(|(v, r)| **v != release.version && r.wasm.sha256 == digest) {
                return Err(mix(format!(
                    "the module served for {} is the signed module of {} {}",
                    label, release.name, other.0
                )));
            }
            return Err(Error::new(
                Class::DigestMismatch,
                format!("tampered module: {} ({} bytes, sha256 {}) is not the module the signed manifest pins; nothing was installed", release.wasm.path, wasm.len(), digest),
            ));
        }
        // the module's kind against the signed abi: a component only for abi "component"
        if crate::wasm::is_component(&wasm) != (facts.abi.as_deref() == Some("component")) {
            return Err(mix(format!(
                "the signed manifest of {} says abi {:?}, but the module is {}",
                label,
                facts.abi.as_deref().unwrap_or(""),
                if crate::wasm::is_component(&wasm) { "a component" } else { "a core module" }
            )));
        }
        // 7: gated host modules need their permission declared
        let imports = crate::wasm::imports(&wasm)
            .map_err(|e| Error::new(Class::Malformed, format!("the module of {} cannot be read: {}", label, e)))?;
        for (module, name) in imports.unwrap_or_default() {
            if let Some(perm) = crate::wasm::gated_permission(&module, &name) {
                if !facts.permissions.contains(perm) {
                    return Err(Error::new(
                        Class::UndeclaredImport,
                        format!("the module of {} imports {}.{}, which needs permission {:?} that its signed manifest does not declare; do not install it", label, module, name, perm),
                    ));
                }
            }
        }
        Ok(VerifiedRelease { release: release.clone(), facts, manifest, signatures, signers, wasm })
    }

    /// The dependency graph of `req` over verified plugin documents (conformance/README.md,
    /// decision 16): the requested plugin gets the highest release its requirement allows; each
    /// dependency gets, among the releases meeting every range the chosen releases declare on it
    /// (a range never newly selects a yanked release: the installed version stays eligible, yanked
    /// or not; the host range must admit the host version), the installed version when there is
    /// one, else the highest. A new range that a choice does not meet makes
    /// that plugin chosen again over all its ranges, until nothing changes. Each round decides
    /// one unmet plugin, the one with the fewest releases left to choose from (ties by name), as
    /// the Python client's resolver prefers the most constrained plugin. A dependency with no
    /// release left (or one the registry does not list) sends the search back to the latest choice
    /// that had other releases to try, next best first (decision 16.3: backtracking, as the Python
    /// client's resolver does); with none left it is `dependency-conflict`, named after the first
    /// conflict met. Returns the choice (name -> document, version) and the breadth-first order
    /// from the requested plugin.
    fn resolve_graph(
        &self,
        req: &Requirement,
        host: Option<&Version>,
        lock: &Lockfile,
    ) -> Result<(GraphChoice, Vec<String>)> {
        let top_doc = self.plugin_document(&req.name)?;
        let top = self.resolve(&top_doc, req, host)?.version.clone();
        let mut choice: BTreeMap<String, (PluginDocument, String)> = BTreeMap::new();
        choice.insert(req.name.clone(), (top_doc, top.clone()));
        // A yanked release meets an edge that pins it exactly, or when it is the installed version
        // (installed, it stays: a yank keeps ranges from choosing it anew, as Cargo keeps a yanked
        // version its lockfile names).
        let meets = |r: &Release, edges: &[(String, Requirement)], installed: bool| {
            let v = Version::parse(&r.version).expect("checked version");
            edges
                .iter()
                .all(|(_, e)| e.range.matches(&v) && (r.yanked.is_none() || installed || e.range.exact().is_some()))
        };
        let installed_version =
            |name: &str| lock.plugins.get(name).filter(|e| e.registry == self.verifier.url).map(|e| e.version.clone());
        let conflict = |name: &str, edges: &[(String, Requirement)], why: String| {
            let needs: Vec<String> = edges.iter().map(|(p, e)| format!("{} needs {} {}", p, name, e.spec)).collect();
            Error::new(
                Class::DependencyConflict,
                format!(
                    "no set of releases satisfies every requirement: {}; {}; relax a range, or install versions whose dependency ranges agree",
                    needs.join("; "),
                    why
                ),
            )
        };
        // Each choice of a release counts one round (the requested plugin's included), as a round
        // of the Python client's resolver (resolvelib) pins one plugin: past the bound, it gives up.
        let mut pins = 1usize;
        // Parsed once: every round walks the whole graph again.
        let mut parsed: BTreeMap<(String, String), Requirement> = BTreeMap::new();
        fn edge(
            parsed: &mut BTreeMap<(String, String), Requirement>,
            dep: &str,
            range: &str,
        ) -> std::result::Result<Requirement, ReqError> {
            let key = (dep.to_owned(), range.to_owned());
            if let Some(p) = parsed.get(&key) {
                return Ok(p.clone());
            }
            let p = Requirement::parse(&format!("{}@{}", dep, range))?;
            parsed.insert(key, p.clone());
            Ok(p)
        }
        // The choices the search may revisit (latest last), and the first conflict met.
        let mut tried: Vec<Decision> = Vec::new();
        let mut first: Option<Error> = None;
        'search: loop {
            let mut reqs: BTreeMap<String, Vec<(String, Requirement)>> = BTreeMap::new();
            let mut order = vec![req.name.clone()];
            let mut seen: BTreeSet<String> = BTreeSet::new();
            seen.insert(req.name.clone());
            let mut i = 0;
            while i < order.len() {
                let (doc, version) = &choice[&order[i]];
                let r = &doc.versions[version];
                for (dep, range) in &r.dependencies {
                    let dep_req = edge(&mut parsed, dep, range).map_err(|e| {
                        Error::new(
                            Class::Malformed,
                            format!("{} depends on {}@{}: {}", r.name, dep, range, e.message()),
                        )
                    })?;
                    reqs.entry(dep.clone()).or_default().push((format!("{} {}", r.name, r.version), dep_req));
                    if choice.contains_key(dep) && seen.insert(dep.clone()) {
                        order.push(dep.clone());
                    }
                }
                i += 1;
            }
            // Installed plugins outside the graph keep their requirements (decision 16.7), on the
            // requested plugin and on every plugin the graph already requires: a plan never leaves
            // an installed plugin's dependency unmet.
            for (name, e) in &lock.plugins {
                if choice.contains_key(name) || e.registry != self.verifier.url {
                    continue;
                }
                for (dep, range) in &e.dependencies {
                    if !reqs.contains_key(dep) && dep != &req.name {
                        continue;
                    }
                    let dep_req = edge(&mut parsed, dep, range).map_err(|err| {
                        Error::new(
                            Class::Lockfile,
                            format!(
                                "the lockfile records dependency {}@{} of {}, which is no range: {}; remove {} and install it again",
                                dep,
                                range,
                                name,
                                err.message(),
                                name
                            ),
                        )
                    })?;
                    reqs.entry(dep.clone()).or_default().push((format!("{} {} (installed)", name, e.version), dep_req));
                }
            }
            // The unmet plugins: those the graph requires that have no release chosen, or one their
            // ranges no longer allow (chosen again over all of them). One is decided per round, the
            // one with the fewest candidate releases (ties by name), as the Python client's
            // resolver prefers the most constrained plugin: a plugin with one release left is
            // settled before the wide ranges, and a conflict is met before choices are stacked
            // over it.
            let mut next: Option<Unmet> = None;
            for (dep, edges) in &reqs {
                if let Some((doc, version)) = choice.get(dep) {
                    // The requested plugin's exact pin may keep a yanked release, as its pick below
                    // does (decision 16.1); judged otherwise here, it was chosen again without end.
                    let exact = dep == &req.name && req.range.exact().is_some();
                    if meets(
                        &doc.versions[version],
                        edges,
                        exact || installed_version(dep).as_deref() == Some(version.as_str()),
                    ) {
                        continue;
                    }
                }
                let installed = installed_version(dep);
                let unmet = if dep == &req.name {
                    // Installed plugins depend on it: the releases the request allows that also
                    // meet their ranges, the highest first.
                    let exact = req.range.exact().is_some();
                    let doc = choice[dep].0.clone();
                    let mut picks: Vec<(Version, String)> = Vec::new();
                    for (text, r) in &doc.versions {
                        let v = match Version::parse(text) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        let kept = installed.as_deref() == Some(text.as_str());
                        if !req.range.matches(&v)
                            || (r.yanked.is_some() && !exact && !kept)
                            || !Range::host_compatible(r.host.as_deref(), host)
                            || !meets(r, edges, kept || exact)
                        {
                            continue;
                        }
                        picks.push((v, text.clone()));
                    }
                    picks.sort_by(|a, b| b.0.cmp(&a.0));
                    // Only the highest: the request never backtracks (decision 16.1), so it counts
                    // as one candidate, as the Python client's resolver offers it and Go counts it.
                    let picks = picks.into_iter().take(1).map(|(_, text)| text).collect();
                    Unmet { name: dep.clone(), doc: Some(doc), picks, requested: true }
                } else {
                    match self.plugin_document(dep) {
                        Ok(doc) => {
                            // The releases meeting every edge, best first: the installed version,
                            // then the others from the highest.
                            let mut picks: Vec<(bool, Version, String)> = Vec::new();
                            for (text, r) in &doc.versions {
                                let v = match Version::parse(text) {
                                    Ok(v) => v,
                                    Err(_) => continue,
                                };
                                let is_installed = installed.as_deref() == Some(text.as_str());
                                if (r.yanked.is_some() && !is_installed)
                                    || !meets(r, edges, is_installed)
                                    || !Range::host_compatible(r.host.as_deref(), host)
                                {
                                    continue;
                                }
                                picks.push((is_installed, v, text.clone()));
                            }
                            picks.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
                            let picks = picks.into_iter().map(|(_, _, text)| text).collect();
                            Unmet { name: dep.clone(), doc: Some(doc), picks, requested: false }
                        }
                        // Not listed: no candidate, decided (as a conflict) first.
                        Err(e) if e.class == Class::NotFound => {
                            Unmet { name: dep.clone(), doc: None, picks: Vec::new(), requested: false }
                        }
                        Err(e) => return Err(e),
                    }
                };
                let fewer = next.as_ref().map_or(true, |n| unmet.picks.len() < n.picks.len());
                if fewer {
                    let none_left = unmet.picks.is_empty();
                    next = Some(unmet);
                    if none_left {
                        break; // nothing has fewer, and later names lose the tie
                    }
                }
            }
            let settled = next.is_none();
            if let Some(unmet) = next {
                if pins + 1 >= MAX_RESOLUTION_ROUNDS {
                    return Err(Error::new(
                        Class::DependencyConflict,
                        format!(
                            "dependency resolution of {} gave up after {} rounds; pin the plugins you need exactly (name@1.2.3) to narrow the search",
                            req.name, MAX_RESOLUTION_ROUNDS
                        ),
                    ));
                }
                pins += 1;
                let dep = &unmet.name;
                let edges = &reqs[dep];
                let mut picks = unmet.picks.into_iter();
                let (doc, pick) = match (unmet.doc, picks.next()) {
                    (Some(doc), Some(pick)) => (doc, pick),
                    (doc, _) => {
                        let why = if unmet.requested {
                            "no release the request allows meets them".to_string()
                        } else if doc.is_none() {
                            format!("the registry does not list {}", dep)
                        } else {
                            format!("no release of {} meets them all", dep)
                        };
                        let err = conflict(dep, edges, why);
                        backtrack(err, &mut tried, &mut choice, &mut first)?;
                        continue 'search;
                    }
                };
                if unmet.requested {
                    // chosen again in place: the request decides it, nothing to revisit
                    if let Some(chosen) = choice.get_mut(dep) {
                        chosen.1 = pick;
                    }
                } else {
                    let rest: Vec<String> = picks.collect();
                    if !rest.is_empty() {
                        tried.push(Decision { before: choice.clone(), name: dep.clone(), rest, doc: doc.clone() });
                    }
                    choice.insert(dep.clone(), (doc, pick));
                }
            }
            choice.retain(|name, _| name == &req.name || reqs.contains_key(name));
            if settled {
                if let Some(cycle) = find_cycle(&req.name, &choice) {
                    return Err(Error::new(
                        Class::DependencyCycle,
                        format!(
                            "dependency cycle: {}; plugins are loaded in dependency order, so a cycle cannot be installed: ask the maintainers to break it",
                            cycle.join(" -> ")
                        ),
                    ));
                }
                return Ok((choice, order));
            }
        }
    }

    /// Resolve `spec` and its dependencies, verify everything, install atomically under the
    /// directory lock and commit the lockfile (the commit point: one change line appended and
    /// fsynced, or a new base renamed over it; nothing when no entry changed). Returns the requested
    /// plugin's lockfile entry first, then its dependencies. The trust state the session verified
    /// (the root its walk reached, the registry version) is saved first (conformance decision 3):
    /// an install that then fails keeps it, so a revocation in that root holds for
    /// `verify_installed` and `load_plugin`; `commit` after success also keeps the documents.
    pub fn install(&self, spec: &str, dir: &Path, opts: &InstallOptions) -> Result<Vec<Entry>> {
        check_plugin_dir(dir)?;
        self.new_state.save_merged(&self.verifier.state_dir)?;
        let req = Requirement::parse(spec).map_err(|e| match e {
            ReqError::Name(m) | ReqError::Range(m) => Error::new(
                Class::BadRequirement,
                format!("{}; use NAME, NAME@1.2.3, NAME@^1.2, NAME@~1.2.0 or NAME@'>=1.0.0 <2.0.0'", m),
            ),
        })?;
        let host_version = match &opts.host_version {
            None => None,
            Some(h) => Some(Version::parse(h).ok().filter(|_| names::is_version(h)).ok_or_else(|| {
                Error::new(Class::BadRequirement, format!("host version {:?} is not a strict semver version", h))
            })?),
        };
        match self.install_with(&req, host_version.as_ref(), dir, opts, None)? {
            Some(entries) => Ok(entries),
            None => {
                // Another installer committed while this one resolved: resolve again, this time
                // under the lock from the start (its plan may have changed what this one needs).
                std::fs::create_dir_all(dir).map_err(|e| env_error(dir, e))?;
                let held = fsx::DirLock::acquire_until(dir, Instant::now() + self.verifier.timeout)?;
                Ok(self.install_with(&req, host_version.as_ref(), dir, opts, Some(held))?.unwrap_or_default())
            }
        }
    }

    /// One resolution, verification and commit of `install`. Without `held` the graph is
    /// resolved and verified before the lock is taken (nothing, not even the folder, is created
    /// before the whole graph verified); `None` when the lockfile changed meanwhile (nothing
    /// written). With `held` (the lock taken first) it always commits.
    fn install_with(
        &self,
        req: &Requirement,
        host_version: Option<&Version>,
        dir: &Path,
        opts: &InstallOptions,
        held: Option<fsx::DirLock>,
    ) -> Result<Option<Vec<Entry>>> {
        // The installed plugins the resolution may keep (read again under the lock to commit).
        let earlier = if dir.is_dir() { read_lockfile_bytes(dir)? } else { None };
        after_lockfile_read();
        let nothing = Lockfile::default();
        let installed = earlier.as_ref().map_or(&nothing, |(_, f)| &f.lockfile);
        let (choice, order) = self.resolve_graph(req, host_version, installed)?;
        // A version is one set of bytes: an installed version the registry now pins with other
        // bytes is refused before any manifest is fetched (never swapped in silently).
        for name in &order {
            let (doc, version) = &choice[name];
            if let Some(e) = installed.plugins.get(name) {
                refuse_republished(e, &doc.versions[version], &self.verifier.url)?;
                let named = if *name == req.name { Some(req) } else { None };
                self.refuse_rollback(dir, e, doc, version, named, host_version)?;
            }
        }
        // Every release of the graph is fetched and verified before anything is written.
        let mut plan: Vec<VerifiedRelease> = Vec::new();
        for name in &order {
            let (doc, version) = &choice[name];
            let release = &doc.versions[version];
            let verified = match self.download_from(doc, release, &opts.allow, Some((dir, installed))) {
                Ok(v) => v,
                // The installed copy no longer passes (its signer revoked, the registry re-signed
                // the release with a current key): the registry's copy decides, as in Python and Go.
                Err(_) if self.installed_copy(release, dir, installed).is_some() => {
                    self.download_from(doc, release, &opts.allow, None)?
                }
                Err(e) => return Err(e),
            };
            plan.push(verified);
        }
        let restartable = held.is_none();
        let _lock = match held {
            Some(lock) => lock,
            None => {
                std::fs::create_dir_all(dir).map_err(|e| env_error(dir, e))?;
                fsx::DirLock::acquire_until(dir, Instant::now() + self.verifier.timeout)?
            }
        };
        // Read again under the lock: a plan made on another lockfile is not committed.
        let data = fsx::read_below(dir, LOCKFILE, MAX_LOCKFILE_BYTES)?;
        if restartable && data.as_deref() != earlier.as_ref().map(|(bytes, _)| bytes.as_slice()) {
            return Ok(None);
        }
        let current = match (data, earlier) {
            (None, _) => None,
            (Some(data), Some((bytes, parsed))) => Some(parsed.reparse(&bytes, &data)?),
            (Some(data), None) => Some(LockfileFile::parse(&data)?),
        };
        let mut lock = current.as_ref().map(|f| f.lockfile.clone()).unwrap_or_default();
        fsx::refuse_symlinks(dir)?;
        fsx::remove_part_files(dir)?; // what an install killed mid-way left (we hold the lock)
        let mut entries = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        for (i, v) in plan.iter().enumerate() {
            let r = &v.release;
            let base = format!("{}/{}/", r.name, r.version);
            fsx::safe_join(dir, &format!("{}{}", base, "plugin.toml"), false, false)?;
            let mut sig_paths = Vec::new();
            for (name, bytes) in &v.signatures {
                fsx::write_atomic(dir, &format!("{}{}", base, name), bytes)?;
                sig_paths.push(format!("{}{}", base, name));
            }
            fsx::write_atomic(dir, &format!("{}{}", base, v.facts.artifact_file), &v.wasm)?;
            fsx::write_atomic(dir, &format!("{}plugin.toml", base), &v.manifest)?;
            sig_paths.sort();
            let previous = lock.plugins.get(&r.name).cloned();
            if let Some(prev) = &previous {
                if prev.version != r.version {
                    stale.push(format!("{}/{}", prev.name, prev.version));
                }
            }
            // The plugin asked for records what was typed (promoting a former dependency); a
            // dependency keeps what the user once asked for, or is marked dependency-only when new.
            let requested = if i == 0 {
                req.spec.clone()
            } else {
                previous.as_ref().map_or_else(|| DEPENDENCY_ONLY.to_owned(), |p| p.requested.clone())
            };
            let entry = Entry {
                name: r.name.clone(),
                version: r.version.clone(),
                registry: self.verifier.url.clone(),
                requested,
                required_by: Vec::new(),
                dependencies: v.facts.dependencies.clone(),
                abi: r.abi.clone(),
                manifest: format!("{}plugin.toml", base),
                manifest_sha256: names::sha256_hex(&v.manifest),
                manifest_size: v.manifest.len() as u64,
                wasm: format!("{}{}", base, v.facts.artifact_file),
                wasm_sha256: names::sha256_hex(&v.wasm),
                wasm_size: v.wasm.len() as u64,
                signatures: sig_paths,
                signers: v.signers.iter().cloned().collect(),
                permissions: v.facts.permissions.iter().cloned().collect(),
                published_at: r.published_at.clone(),
            };
            lock.plugins.insert(r.name.clone(), entry);
        }
        recompute_required_by(&mut lock);
        write_lockfile(dir, current.as_ref(), &lock)?;
        // After the commit point: the previous versions' files the lockfile listed.
        for rel in stale {
            let _ = fsx::remove_tree_below(dir, &rel);
        }
        for v in &plan {
            entries.push(lock.plugins[&v.release.name].clone());
        }
        Ok(Some(entries))
    }
}

/// An unmet plugin of the dependency search: its document (`None`: the registry does not list
/// it), the releases it may take, best first, and whether it is the requested plugin.
struct Unmet {
    name: String,
    doc: Option<PluginDocument>,
    picks: Vec<String>,
    requested: bool,
}

/// A choice the dependency search may revisit: the choices before it, the plugin it chose and
/// the releases left to try, best first.
struct Decision {
    before: GraphChoice,
    name: String,
    rest: Vec<String>,
    doc: PluginDocument,
}

/// The search's answer to a conflict: the latest choice with releases left takes the next one,
/// the choices made after it undone (`Ok`: the search goes on). Any other error, or a conflict
/// with nothing left to try, is returned (the first conflict met, which names the ranges that
/// the best choices could not meet).
fn backtrack(err: Error, tried: &mut Vec<Decision>, choice: &mut GraphChoice, first: &mut Option<Error>) -> Result<()> {
    if err.class != Class::DependencyConflict {
        return Err(err);
    }
    let first = first.get_or_insert(err);
    while let Some(d) = tried.last_mut() {
        if d.rest.is_empty() {
            tried.pop();
            continue;
        }
        let next = d.rest.remove(0);
        *choice = d.before.clone();
        choice.insert(d.name.clone(), (d.doc.clone(), next));
        return Ok(());
    }
    Err(first.clone())
}

/// Dependency resolution's bound, the Python client's (resolvelib's `max_rounds`,
/// registry_tool/resolve.py): one round per release chosen, plus the round that finds nothing
/// left to choose. A graph needing more is `dependency-conflict` ("gave up after 2000 rounds").
pub const MAX_RESOLUTION_ROUNDS: usize = 2000;

/// The release `r` of a plan has the name and version of the entry `e` installed from this
/// registry, but the registry pins other bytes (module or manifest) for it: `republished`. A
/// published version is immutable (the build refuses to change one): other bytes under an
/// installed version mean a registry rebuilt without its history, or a maintainer key and the
/// index key in other hands.
fn refuse_republished(e: &Entry, r: &Release, registry: &str) -> Result<()> {
    if e.registry != registry
        || e.version != r.version
        || (e.wasm_sha256 == r.wasm.sha256 && e.manifest_sha256 == r.manifest.sha256)
    {
        return Ok(());
    }
    let short = |d: &str| d.chars().take(16).collect::<String>();
    Err(Error::new(
        Class::Republished,
        format!(
            "{} {} is installed with module sha256 {}\u{2026} and manifest sha256 {}\u{2026}, but the registry now publishes \
             other bytes under the same version (module {}\u{2026}, manifest {}\u{2026}): a republished release; ask the \
             registry's owners why; to take the new bytes anyway, remove {} from the plugin directory and install it again",
            r.name,
            r.version,
            short(&e.wasm_sha256),
            short(&e.manifest_sha256),
            short(&r.wasm.sha256),
            short(&r.manifest.sha256),
            r.name
        ),
    ))
}

impl<'v> Session<'v> {
    /// The plan moves the plugin of entry `e` (installed from this registry) down to `version`
    /// for what only the index says (conformance decision 18). A build never drops a release
    /// whose signatures still count, and a yank or an entry's fields are the index key's word
    /// alone: while the installed copy's stored signatures verify under the session's root, it
    /// is not moved down because the plugin document no longer lists it, nor, for the requested
    /// plugin (`named`), while it still meets its range and the host version (a yank). The
    /// user's own requirement moves it (an exact pin, a range that leaves it out, the host
    /// version), and so does a withdrawn release (its signer revoked) or a damaged copy.
    fn refuse_rollback(
        &self,
        dir: &Path,
        e: &Entry,
        doc: &PluginDocument,
        version: &str,
        named: Option<&Requirement>,
        host_version: Option<&Version>,
    ) -> Result<()> {
        if e.registry != self.verifier.url || named.is_some_and(|r| r.is_exact()) {
            return Ok(());
        }
        let (chosen, installed) = match (Version::parse(version), Version::parse(&e.version)) {
            (Ok(c), Ok(i)) => (c, i),
            _ => return Ok(()),
        };
        if chosen >= installed {
            return Ok(());
        }
        let listed = doc.versions.get(&e.version);
        if let (Some(entry), None) = (listed, named) {
            // A dependency: moved down by the graph's requirements, or by an entry of the installed
            // version that disagrees with the manifest its maintainer signed (other dependencies, a
            // host range), which only the index key can have written.
            let Ok(stored) = verify_entry(dir, Some(&self.root), e) else {
                return Ok(());
            };
            refuse_republished(e, entry, &self.verifier.url)?;
            return entry_agrees(entry, &stored.facts);
        }
        if listed.is_some() && !named.is_some_and(|req| req.range.matches(&installed)) {
            return Ok(());
        }
        let Ok(stored) = verify_entry(dir, Some(&self.root), e) else {
            return Ok(()); // withdrawn or damaged: another release may take its place
        };
        // The host range its maintainer signed, not the entry's (the index's word).
        if listed.is_some() && !Range::host_compatible(stored.facts.host.as_deref(), host_version) {
            return Ok(());
        }
        let said = if listed.is_some() {
            "the registry lists it (its range and the host still allow it) but passes it over: the plugin document yanks it or makes it unresolvable"
        } else {
            "the registry no longer lists it"
        };
        Err(Error::new(
            Class::Rollback,
            format!(
                "{name} {installed} is installed and its signatures still count, but {said}: moving it down to \
                 {version} would be a rollback (installed releases are never moved down for what the \
                 registry's documents say alone: a stolen index key could say it); ask the registry's owners \
                 why; to go down anyway, install the version exactly ({name}@{version})",
                name = e.name,
                installed = e.version,
            ),
        ))
    }
}

/// The highest release of `doc` matching `req`: yanked only when pinned exactly, host-compatible
/// (`Session::resolve`).
pub fn choose_release<'d>(
    doc: &'d PluginDocument,
    req: &Requirement,
    host_version: Option<&Version>,
) -> Result<&'d Release> {
    let exact = req.range.exact().is_some();
    let mut best: Option<(Version, &Release)> = None;
    let mut skipped = Vec::new();
    for (text, release) in &doc.versions {
        let v = match Version::parse(text) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if !req.range.matches(&v) {
            continue;
        }
        if release.yanked.is_some() && !exact {
            skipped.push(format!("{} (yanked)", text));
            continue;
        }
        if !Range::host_compatible(release.host.as_deref(), host_version) {
            skipped.push(format!("{} (needs host {})", text, release.host.as_deref().unwrap_or("")));
            continue;
        }
        if best.as_ref().map_or(true, |(b, _)| &v > b) {
            best = Some((v, release));
        }
    }
    best.map(|(_, r)| r).ok_or_else(|| {
        // Only what a range could choose for this host (as the Python client says it).
        let available: Vec<&str> = doc
            .versions
            .iter()
            .filter(|(_, r)| r.yanked.is_none() && Range::host_compatible(r.host.as_deref(), host_version))
            .map(|(v, _)| v.as_str())
            .collect();
        let offer = if !available.is_empty() {
            format!("available: {}", available.join(", "))
        } else if let Some(h) = host_version {
            format!("no release that is not yanked supports host {}", h)
        } else {
            "every release is yanked".to_owned()
        };
        Error::new(
            Class::NoMatchingVersion,
            format!(
                "no release of {} matches {}{}{}; {}",
                req.name,
                if req.spec.is_empty() { "any version" } else { &req.spec },
                host_version.map(|h| format!(" for host {}", h)).unwrap_or_default(),
                if skipped.is_empty() { String::new() } else { format!(" (skipped {})", skipped.join(", ")) },
                offer
            ),
        )
    })
}

/// Step 4 of decision 11: a mix-and-match error where the plugin document's entry `release`
/// says other than its signed manifest's `facts`. Index-only fields are not trusted.
fn entry_agrees(release: &Release, facts: &ManifestFacts) -> Result<()> {
    let label = format!("{} {}", release.name, release.version);
    let mix = |what: String| {
        Error::new(
            Class::MixAndMatch,
            format!("mix-and-match attack: {}; do not install from this registry until its owners rebuild it", what),
        )
    };
    let manifest_perms: Vec<String> = facts.permissions.iter().cloned().collect();
    let differs = |field: &str, entry: String, signed: String| {
        mix(format!("the registry entry of {} says {} {}, its signed manifest {}", label, field, entry, signed))
    };
    if facts.abi.as_deref() != Some(release.abi.as_str()) {
        return Err(differs("abi", format!("{:?}", release.abi), format!("{:?}", facts.abi)));
    }
    if facts.host != release.host {
        return Err(differs("host", format!("{:?}", release.host), format!("{:?}", facts.host)));
    }
    if !facts.exports_declared || facts.exports != release.exports {
        return Err(differs("exports", format!("{:?}", release.exports), format!("{:?}", facts.exports)));
    }
    if manifest_perms != release.permissions {
        return Err(differs("permissions", format!("{:?}", release.permissions), format!("{:?}", manifest_perms)));
    }
    if facts.dependencies != release.dependencies {
        return Err(differs(
            "dependencies",
            format!("{:?}", release.dependencies),
            format!("{:?}", facts.dependencies),
        ));
    }
    let (fuel, memory, wall) = release.limits;
    for (field, declared, entry) in [
        ("limits.fuel", facts.fuel, fuel),
        ("limits.memory", facts.memory, memory),
        ("limits.wall_time_ms", facts.wall_time_ms, wall),
    ] {
        if let Some(d) = declared {
            if d != entry {
                return Err(differs(field, entry.to_string(), d.to_string()));
            }
        }
    }
    if facts.artifact_file != release.wasm.file_name()
        || facts.artifact_sha256 != release.wasm.sha256
        || facts.artifact_size != release.wasm.size
    {
        return Err(mix(format!(
            "the signed manifest of {} pins {} ({} bytes, sha256 {}), the registry entry names {} ({} bytes, sha256 {})",
            label, facts.artifact_file, facts.artifact_size, facts.artifact_sha256, release.wasm.path, release.wasm.size, release.wasm.sha256
        )));
    }
    Ok(())
}

/// A dependency cycle among the chosen releases reachable from `start` (names, first repeated).
fn find_cycle(start: &str, choice: &BTreeMap<String, (PluginDocument, String)>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        choice: &BTreeMap<String, (PluginDocument, String)>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        stack.push(n.to_owned());
        let (doc, version) = &choice[n];
        for dep in doc.versions[version].dependencies.keys() {
            if !choice.contains_key(dep) || done.contains(dep) {
                continue;
            }
            if let Some(i) = stack.iter().position(|x| x == dep) {
                let mut cycle = stack[i..].to_vec();
                cycle.push(dep.clone());
                return Some(cycle);
            }
            if let Some(c) = visit(dep, choice, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    visit(start, choice, &mut Vec::new(), &mut BTreeSet::new())
}

fn recompute_required_by(lock: &mut Lockfile) {
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, e) in &lock.plugins {
        for dep in e.dependencies.keys() {
            by.entry(dep.clone()).or_default().insert(name.clone());
        }
    }
    for (name, e) in lock.plugins.iter_mut() {
        e.required_by = by.remove(name).map(|s| s.into_iter().collect()).unwrap_or_default();
    }
}

/// The lockfile of `dir` (its folded state), `None` when there is none.
pub fn read_lockfile(dir: &Path) -> Result<Option<Lockfile>> {
    Ok(read_lockfile_file(dir)?.map(|f| f.lockfile))
}

/// The lockfile of `dir` with what a writer needs (version, change lines, committed length).
pub fn read_lockfile_file(dir: &Path) -> Result<Option<LockfileFile>> {
    Ok(read_lockfile_bytes(dir)?.map(|(_, f)| f))
}

fn read_lockfile_bytes(dir: &Path) -> Result<Option<(Vec<u8>, LockfileFile)>> {
    match fsx::read_below(dir, LOCKFILE, MAX_LOCKFILE_BYTES)? {
        None => Ok(None),
        Some(data) => {
            let parsed = LockfileFile::parse(&data)?;
            Ok(Some((data, parsed)))
        }
    }
}

/// Commit `next` over `current` (read under the same writers' lock): nothing when unchanged,
/// else one change line appended and fsynced, or a new base replacing the file atomically. A
/// lockfile with other hard links always gets a new base: an append would write into every other
/// name of it (say a file outside the plugin directory, linked in); the rename leaves them as they
/// were and the lockfile with one link.
fn write_lockfile(dir: &Path, current: Option<&LockfileFile>, next: &Lockfile) -> Result<()> {
    match plan_commit(current, next) {
        Commit::Nothing => Ok(()),
        Commit::Append { line, committed_len } => {
            if fsx::append_committed(dir, LOCKFILE, committed_len, &line)? {
                Ok(())
            } else {
                fsx::write_atomic(dir, LOCKFILE, &next.base_line()).map(|_| ())
            }
        }
        Commit::Base(base) => fsx::write_atomic(dir, LOCKFILE, &base).map(|_| ()),
    }
}

fn tampered(name: &str, what: String) -> Error {
    Error::new(
        Class::InstalledTampered,
        format!("installed plugin {} was modified after installation: {}; reinstall it", name, what),
    )
}

/// An installed plugin re-verified at load time: the bytes to hand to the engine.
#[derive(Clone, Debug)]
pub struct LoadedPlugin {
    pub entry: Entry,
    /// the signed manifest's facts (declared limits, permissions, exports)
    pub facts: ManifestFacts,
    pub wasm: Vec<u8>,
}

/// The first of abi, permissions (as a set) and dependencies (name -> range, the required ones)
/// in which a lockfile entry differs from its signed manifest. An absent `[plugin] abi` differs
/// from any entry's (Python compares None with a string).
fn lock_facts_differ(e: &Entry, facts: &ManifestFacts) -> Option<&'static str> {
    if facts.abi.as_deref() != Some(e.abi.as_str()) {
        return Some("abi");
    }
    if e.permissions.iter().cloned().collect::<BTreeSet<String>>() != facts.permissions {
        return Some("permissions");
    }
    if e.dependencies != facts.dependencies {
        return Some("dependencies");
    }
    None
}

fn verify_entry(dir: &Path, root: Option<&Root>, e: &Entry) -> Result<LoadedPlugin> {
    let name = &e.name;
    let read = |rel: &str, size: u64, sha: &str, what: &str| -> Result<Vec<u8>> {
        let data =
            fsx::read_below(dir, rel, size)?.ok_or_else(|| tampered(name, format!("{} {} is missing", what, rel)))?;
        if data.len() as u64 != size || names::sha256_hex(&data) != sha {
            return Err(tampered(
                name,
                format!("{} {} does not match the sha256 and size the lockfile pins", what, rel),
            ));
        }
        Ok(data)
    };
    let manifest = read(&e.manifest, e.manifest_size, &e.manifest_sha256, "manifest")?;
    let wasm = read(&e.wasm, e.wasm_size, &e.wasm_sha256, "module")?;
    let facts = ManifestFacts::parse(&manifest).map_err(|m| tampered(name, m))?;
    let wasm_file = e.wasm.rsplit('/').next().unwrap_or("");
    if facts.name != *name || facts.version != e.version {
        return Err(tampered(name, format!("its manifest names {} {}", facts.name, facts.version)));
    }
    if facts.artifact_sha256 != e.wasm_sha256 || facts.artifact_size != e.wasm_size || facts.artifact_file != wasm_file
    {
        return Err(tampered(name, "its manifest pins another module".to_string()));
    }
    // Hosts read abi, permissions and dependencies from the lockfile, which nobody signs: they
    // must be the signed manifest's (conformance/README.md, decision 15).
    if let Some(field) = lock_facts_differ(e, &facts) {
        return Err(tampered(name, format!("the lockfile's {} differ from its signed plugin.toml", field)));
    }
    let mut sigs = Vec::new();
    for rel in &e.signatures {
        let data = fsx::read_below(dir, rel, SIG_CAP)?
            .ok_or_else(|| tampered(name, format!("signature {} is missing", rel)))?;
        sigs.push(data);
    }
    if let Some(root) = root {
        // At load time the root's expiry is not the question (freshness belongs to sessions):
        // the stored signatures and the delegation are re-checked under the trusted root.
        let published = names::parse_time(&e.published_at);
        // Still installed-tampered (never weakened offline), but a pinned root older than the one
        // that delegated the signer (pinned, never refreshed and committed; the plugin installed by
        // the Python client or a newer session) fails the same way: say so, and how to tell.
        root::verify_release_signatures(root, name, &manifest, &sigs, root.expires - 1, published).map_err(|err| {
            Error {
                class: Class::InstalledTampered,
                message: format!(
                    "the stored maintainer signatures of installed plugin {} {} do not verify against the pinned root \
                     (version {}): {} ({}); either the pinned root is older than the root that delegated this signer, \
                     or the installed plugin was modified. If the pinned root may be out of date (pinned and never \
                     refreshed, the plugin installed by another client), run Verifier::refresh and Session::commit \
                     first and load again; if it still fails, reinstall it and find out who changed it",
                    name,
                    e.version,
                    root.version,
                    err.message,
                    err.code.as_str()
                ),
                trust: Some(err.code),
            }
        })?;
    }
    Ok(LoadedPlugin { entry: e.clone(), facts, wasm })
}

/// An empty plugin directory path is refused up front: the operating system would read it as the
/// process's working directory (an install would write and commit there).
fn check_plugin_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::new(
            Class::Network,
            "the plugin directory path is empty; pass the directory that holds (or will hold) the plugins and \
             registry-tool.lock.json, e.g. /var/lib/myhost/plugins",
        ));
    }
    Ok(())
}

/// The pinned root of `state_dir` for the load-time checks. A state directory that is given but
/// holds no readable pinned root (a mistyped path, a damaged root.json or state.json, another
/// client's state directory) is refused (`not-pinned`), never a silent fall back to digests only:
/// a plugin rewritten together with its lockfile would then pass. Only `None` is digests only.
fn trusted_root(state_dir: Option<&Path>) -> Result<Option<Root>> {
    let state_dir = match state_dir {
        Some(s) => s,
        None => return Ok(None),
    };
    let fix = "check the state directory path, or pin the registry's root there first (Verifier::pin, \
               registry-verifier pin); pass no state directory (None) only to check digests alone";
    match TrustState::load(state_dir) {
        Ok(Some(t)) => Ok(Some(t.root)),
        Ok(None) => Err(Error::new(
            Class::NotPinned,
            format!(
                "cannot check the installed plugins' maintainer signatures: no root is pinned in the state \
                 directory {}; {}",
                state_dir.display(),
                fix
            ),
        )),
        Err(e) => Err(Error::new(
            Class::NotPinned,
            format!(
                "cannot check the installed plugins' maintainer signatures: the trust state in {} cannot be \
                 read ({}); {}",
                state_dir.display(),
                e.message,
                fix
            ),
        )),
    }
}

/// Offline verification of an installed directory (FORMAT 2 section 8): the lockfile first,
/// then no link anywhere below the directory, then every file re-hashed against the lockfile,
/// the stored manifest naming the plugin and pinning the wasm, the entry's abi, permissions and
/// dependencies being that manifest's (hosts read them from the lockfile), and, with
/// `Some(state_dir)`, the stored maintainer signatures re-verified against its pinned root. A
/// state directory without a readable pinned root is `not-pinned`; `None` checks digests only,
/// no signatures. Returns the plugin names.
pub fn verify_installed(dir: &Path, state_dir: Option<&Path>) -> Result<Vec<String>> {
    check_plugin_dir(dir)?;
    let root = trusted_root(state_dir)?;
    once_more_if_committed(dir, || verify_installed_with(dir, root.as_ref()))
}

fn verify_installed_with(dir: &Path, root: Option<&Root>) -> Result<Vec<String>> {
    let lock = match read_lockfile(dir)? {
        None => return Ok(Vec::new()),
        Some(l) => l,
    };
    after_lockfile_read();
    fsx::refuse_symlinks(dir)?;
    for e in lock.plugins.values() {
        // Each entry's registry URL was checked when the lockfile was read (decision 15).
        verify_entry(dir, root, e)?;
    }
    Ok(lock.plugins.keys().cloned().collect())
}

/// The lockfile's identity now (inode, size, modification time): a commit replaces or appends to it.
fn lockfile_print(dir: &Path) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir.join(LOCKFILE)).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Another process may commit an install while a host reads (no reader takes the lock): the old
/// release folder goes once the lockfile names the new one. A failed check whose lockfile changed
/// meanwhile runs once more, whole, on the new lockfile; a stable directory keeps its verdict (as
/// the Go and Python verifiers do).
fn once_more_if_committed<T>(dir: &Path, check: impl Fn() -> Result<T>) -> Result<T> {
    let before = lockfile_print(dir);
    match check() {
        Err(_) if lockfile_print(dir) != before => check(),
        done => done,
    }
}

type Hook = Box<dyn FnOnce() + Send>;

/// Tests only: run once between a reader's (or an installer's first) lockfile read and what
/// follows it (a writer committing there); see tests/load_during_upgrade.rs.
#[doc(hidden)]
pub static AFTER_LOCKFILE_READ: std::sync::Mutex<Option<Hook>> = std::sync::Mutex::new(None);

fn after_lockfile_read() {
    let hook = AFTER_LOCKFILE_READ.lock().ok().and_then(|mut h| h.take());
    if let Some(hook) = hook {
        hook();
    }
}

/// Load one installed plugin for execution: its entry re-verified (as `verify_installed`: a
/// `Some(state_dir)` without a readable pinned root is `not-pinned`, `None` checks digests only)
/// and the module's bytes, read once, returned. Hand `wasm` to the engine, never the path.
pub fn load_plugin(dir: &Path, state_dir: Option<&Path>, name: &str) -> Result<LoadedPlugin> {
    check_plugin_dir(dir)?;
    let root = trusted_root(state_dir)?;
    once_more_if_committed(dir, || load_plugin_with(dir, root.as_ref(), name))
}

fn load_plugin_with(dir: &Path, root: Option<&Root>, name: &str) -> Result<LoadedPlugin> {
    let lock = read_lockfile(dir)?.unwrap_or_default();
    after_lockfile_read();
    let e = lock.plugins.get(name).ok_or_else(|| {
        Error::new(
            Class::NotFound,
            format!("plugin {:?} is not installed in {}; install it first", name, dir.display()),
        )
    })?;
    fsx::refuse_symlinks(dir)?;
    verify_entry(dir, root, e)
}

/// The longest download time limit a `Verifier` keeps (`with_timeout`).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(u32::MAX as u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_matching_version_offers_only_what_a_range_could_choose_for_the_host() {
        // semver-lab of the conformance sites: 1.3.0 is yanked, 1.4.0 needs host >=0.9.0.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conformance/sites/base/meta/c9/c94b341a66b15ecf8e2fd2f8df5c81cfd88b0afb2697c87ea39f803565de0fc3.json"
        );
        let doc = PluginDocument::parse(&std::fs::read(path).unwrap(), "semver-lab").unwrap();
        let req = Requirement::parse("semver-lab@>=1.3.0").unwrap();
        let host = Version::parse("0.5.0").unwrap();
        let err = choose_release(&doc, &req, Some(&host)).err().expect("nothing matches");
        assert!(err.message.contains("skipped 1.3.0 (yanked), 1.4.0 (needs host >=0.9.0)"), "{}", err.message);
        let offered: Vec<&str> = err.message.split("available: ").nth(1).expect("an offer").split(", ").collect();
        assert!(
            offered.contains(&"1.2.5") && !offered.contains(&"1.3.0") && !offered.contains(&"1.4.0"),
            "{:?}",
            offered
        );
    }

    #[test]
    fn a_timeout_meaning_no_limit_never_overflows_the_deadline() {
        // Duration::MAX panicked: "overflow when adding duration to instant".
        let v = Verifier::new("mem://site/", Path::new("/nonexistent"), Arc::new(MemSite(BTreeMap::new())))
            .with_timeout(Duration::MAX);
        let _ = v.fetcher();
    }

    /// An in-memory registry: `mem://site/<path>` is `files[path]`, anything else is 404.
    struct MemSite(BTreeMap<String, Vec<u8>>);

    impl Transport for MemSite {
        fn get(&self, url: &str, _deadline: Instant) -> std::result::Result<crate::Response, crate::TransportError> {
            Ok(match url.strip_prefix("mem://site/").and_then(|p| self.0.get(p)) {
                Some(b) => crate::Response::Body(Box::new(std::io::Cursor::new(b.clone()))),
                None => crate::Response::NotFound,
            })
        }
    }

    /// A minisign key from a fixed seed: (signing key, key number, key id, public key line).
    fn test_key(label: &str) -> (ed25519_dalek::SigningKey, [u8; 8], String, String) {
        use base64::Engine;
        use sha2::Digest;
        let seed: [u8; 32] = sha2::Sha256::digest(format!("client walk {}", label).as_bytes()).into();
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&sha2::Sha256::digest(seed)[..8]);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut blob = b"Ed".to_vec();
        blob.extend_from_slice(&keynum);
        blob.extend_from_slice(sk.verifying_key().as_bytes());
        let line = base64::engine::general_purpose::STANDARD.encode(blob);
        (sk, keynum, crate::minisign::key_id(&keynum), line)
    }

    fn minisign(sk: &ed25519_dalek::SigningKey, keynum: &[u8; 8], data: &[u8], comment: &str) -> Vec<u8> {
        use base64::Engine;
        use blake2::Digest;
        use ed25519_dalek::Signer;
        let sig = sk.sign(&blake2::Blake2b512::digest(data)).to_bytes();
        let mut blob = b"ED".to_vec();
        blob.extend_from_slice(keynum);
        blob.extend_from_slice(&sig);
        let mut signed = sig.to_vec();
        signed.extend_from_slice(comment.as_bytes());
        let global = sk.sign(&signed).to_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        format!("untrusted comment: t\n{}\ntrusted comment: {}\n{}\n", b64.encode(blob), comment, b64.encode(global))
            .into_bytes()
    }

    /// One session walks at most `max_steps` new root versions; a chain still going on after them
    /// is root-chain, never ended at the last walked root (conformance decision 2). Bound 2 here.
    #[test]
    fn the_root_walk_refuses_a_chain_going_on_past_its_bound() {
        assert_eq!(MAX_ROOT_STEPS, 1024);
        let (root_sk, root_num, root_id, root_line) = test_key("root");
        let (_, _, index_id, index_line) = test_key("index");
        let root_doc = |v: u64| {
            format!(
                concat!(
                    "{{\"_type\":\"registry-root\",\"expires\":\"2027-11-27T00:00:00Z\",\"keys\":{{",
                    "\"{ri}\":{{\"public_key\":\"{rl}\"}},\"{ii}\":{{\"public_key\":\"{il}\"}}}},",
                    "\"maintainers\":{{}},\"plugin_thresholds\":{{}},\"registry\":\"walk\",\"revoked\":[],",
                    "\"roles\":{{\"index\":{{\"keyids\":[\"{ii}\"],\"threshold\":1}},",
                    "\"root\":{{\"keyids\":[\"{ri}\"],\"threshold\":1}}}},\"spec_version\":1,\"version\":{v}}}\n"
                ),
                ri = root_id,
                rl = root_line,
                ii = index_id,
                il = index_line,
                v = v
            )
            .into_bytes()
        };
        let mut files = BTreeMap::new();
        let publish = |files: &mut BTreeMap<String, Vec<u8>>, v: u64| {
            let raw = root_doc(v);
            let comment = format!("registry-root\tregistry:walk\tversion:{}", v);
            files.insert(
                format!("root/{}.root.json.{}.minisig", v, root_id),
                minisign(&root_sk, &root_num, &raw, &comment),
            );
            files.insert(format!("root/{}.root.json", v), raw);
        };
        let trusted = Root::parse(&root_doc(1)).unwrap();
        let now = names::parse_time("2026-11-28T12:00:00Z").unwrap();
        let walk = |files: &BTreeMap<String, Vec<u8>>, max_steps: usize| {
            let site: Arc<dyn Transport> = Arc::new(MemSite(files.clone()));
            walk_roots(
                &Fetcher::new(site, "mem://site/", Instant::now() + Duration::from_secs(10)),
                &trusted,
                now,
                max_steps,
            )
        };
        publish(&mut files, 2);
        publish(&mut files, 3);
        let (root, _) = walk(&files, 2).expect("a chain of exactly the bound");
        assert_eq!(root.version, 3);
        publish(&mut files, 4);
        let err = walk(&files, 2).expect_err("a chain going on past the bound");
        assert_eq!(err.class, Class::RootChain, "{}", err);
        assert!(err.message.contains("root/4.root.json"), "{}", err);
        assert_eq!(walk(&files, 3).expect("bound 3").0.version, 4);
    }

    #[test]
    fn required_by_lists_the_installed_plugins_that_depend_on_each() {
        let mut lock = Lockfile::default();
        let entry = |name: &str, deps: &[&str]| Entry {
            name: name.into(),
            version: "1.0.0".into(),
            registry: "u".into(),
            requested: String::new(),
            required_by: vec!["stale".into()],
            dependencies: deps.iter().map(|d| (d.to_string(), "^1".to_string())).collect(),
            abi: "core".into(),
            manifest: format!("{}/1.0.0/plugin.toml", name),
            manifest_sha256: "a".repeat(64),
            manifest_size: 1,
            wasm: format!("{}/1.0.0/x.wasm", name),
            wasm_sha256: "b".repeat(64),
            wasm_size: 1,
            signatures: vec![],
            signers: vec![],
            permissions: vec![],
            published_at: "2026-01-01T00:00:00Z".into(),
        };
        lock.plugins.insert("app".into(), entry("app", &["lib", "util"]));
        lock.plugins.insert("zed".into(), entry("zed", &["lib"]));
        lock.plugins.insert("lib".into(), entry("lib", &[]));
        lock.plugins.insert("util".into(), entry("util", &[]));
        recompute_required_by(&mut lock);
        assert_eq!(lock.plugins["lib"].required_by, vec!["app".to_string(), "zed".to_string()]);
        assert_eq!(lock.plugins["util"].required_by, vec!["app".to_string()]);
        assert!(lock.plugins["app"].required_by.is_empty());
    }

    fn lock_entry(name: &str) -> Entry {
        let d = format!("{}/1.0.0/", name);
        Entry {
            name: name.into(),
            version: "1.0.0".into(),
            registry: "https://plugins.example.org/".into(),
            requested: String::new(),
            required_by: vec![],
            dependencies: BTreeMap::new(),
            abi: "core".into(),
            manifest: format!("{}plugin.toml", d),
            manifest_sha256: "a".repeat(64),
            manifest_size: 313,
            wasm: format!("{}{}.wasm", d, name),
            wasm_sha256: "b".repeat(64),
            wasm_size: 38,
            signatures: vec![format!("{}plugin.toml.minisig", d)],
            signers: vec!["C9D35B059575BB3A".into()],
            permissions: vec![],
            published_at: "2026-11-21T12:00:00Z".into(),
        }
    }

    /// A lockfile with other hard links is never appended to: the append would write into every
    /// other name of the file (here one outside the plugin directory, linked in as the lockfile).
    /// The commit writes a new base instead (temporary file, rename): the other name keeps its
    /// bytes and the lockfile is left with one link.
    #[test]
    fn a_lockfile_with_other_hard_links_gets_a_new_file_not_an_append() {
        use std::os::unix::fs::MetadataExt;
        let tmp = std::env::temp_dir().join(format!("rv-client-hardlink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (dir, elsewhere) = (tmp.join("plugins"), tmp.join("elsewhere"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        let state =
            |names: &[&str]| Lockfile { plugins: names.iter().map(|n| (n.to_string(), lock_entry(n))).collect() };
        let (two, three) = (state(&["alpha", "beta"]), state(&["alpha", "beta", "gamma"]));
        let mut content = two.base_line();
        content.extend(two.change_line(&three).unwrap());
        let outside = elsewhere.join("lock.json");
        std::fs::write(&outside, &content).unwrap();
        std::fs::hard_link(&outside, dir.join(LOCKFILE)).unwrap();
        let current = read_lockfile_file(&dir).unwrap().unwrap();
        assert_eq!((current.version, current.change_lines), (3, 1));
        assert_eq!(current.lockfile, three);
        // beta removed: a commit that would append one change line
        let next = state(&["alpha", "gamma"]);
        assert!(matches!(plan_commit(Some(&current), &next), Commit::Append { .. }));
        write_lockfile(&dir, Some(&current), &next).unwrap();
        assert!(std::fs::read(&outside).unwrap() == content, "the file outside the plugin directory was written");
        assert_eq!(std::fs::metadata(dir.join(LOCKFILE)).unwrap().nlink(), 1);
        let after = read_lockfile_file(&dir).unwrap().unwrap();
        assert_eq!((after.version, after.change_lines), (3, 0));
        assert_eq!(after.lockfile, next);
        // the next commit appends again (the lockfile has one link now)
        let last = state(&["alpha", "delta", "gamma"]);
        write_lockfile(&dir, Some(&after), &last).unwrap();
        let again = read_lockfile_file(&dir).unwrap().unwrap();
        assert_eq!((again.change_lines, &again.lockfile), (1, &last));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
