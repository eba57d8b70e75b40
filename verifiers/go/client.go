package verifier

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Options configures a Session.
type Options struct {
	// Fetcher is the host's transport; nil uses NewHTTPFetcher().
	Fetcher Fetcher
	// Deadline bounds all transfers of one operation (default 10 minutes).
	Deadline time.Duration
	// FileDeadline bounds each file (default: Deadline).
	FileDeadline time.Duration
	// Now is the verification time (default time.Now()).
	Now time.Time
}

// Session is one refreshed view of a registry: a verified root and top document. The trust state
// is saved only by Commit (Install calls it before fetching a release), never lowering a state
// another process stored.
type Session struct {
	commit  sync.Mutex // Install and Commit may run in several goroutines of one Session
	state   *State
	url     string
	now     time.Time
	xfer    *transfers
	ctx     context.Context
	Root    *Root
	Top     *TopDocument
	highest int64
	cache   string
}

func normaliseURL(u string) (*url.URL, error) {
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return nil, &Error{Class: ClassNetwork, What: fmt.Sprintf("%q is not an http(s) registry URL", redactedURL(u)), Fix: "pass the registry's base URL, e.g. https://example.org/plugins/"}
	}
	if p.User != nil { // every install records the URL: the lockfile would hold the credentials
		return nil, &Error{Class: ClassNetwork, What: fmt.Sprintf("the registry URL %q %s", redactedURL(u), userinfoProblem),
			Fix: "pass the URL without user:password@; give credentials to the HTTP client (Options.Fetcher)"}
	}
	return p, nil
}

// Refresh opens a session: walks the root chain from the trusted root, then fetches and checks the
// top document (signatures, format, registry name, root version, expiry, rollback).
func Refresh(ctx context.Context, stateDir, registryURL string, opt Options) (*Session, error) {
	st, err := LoadState(stateDir)
	if err != nil {
		return nil, err
	}
	registryURL = canonicalRegistryURL(registryURL)
	base, err := normaliseURL(registryURL)
	if err != nil {
		return nil, err
	}
	if opt.Fetcher == nil {
		opt.Fetcher = NewHTTPFetcher()
	}
	if opt.Deadline <= 0 {
		opt.Deadline = 10 * time.Minute
	}
	if opt.FileDeadline <= 0 || opt.FileDeadline > opt.Deadline {
		opt.FileDeadline = opt.Deadline
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now().UTC()
	}
	s := &Session{state: st, url: registryURL, now: opt.Now, ctx: ctx, highest: st.HighestVersion,
		cache: filepath.Join(stateDir, "cache"),
		xfer:  &transfers{fetcher: opt.Fetcher, base: base, overall: time.Now().Add(opt.Deadline), perFile: opt.FileDeadline}}
	if err := s.walkRoot(maxRootSteps); err != nil {
		return nil, err
	}
	if err := s.fetchTop(); err != nil {
		return nil, err
	}
	return s, nil
}

// Downloads is the number of files this session requested.
func (s *Session) Downloads() int { return int(s.xfer.downloads.Load()) }

// removesIndexKey reports whether the root step prev -> next removed a key from the index role: a
// raw public key of prev's index role that next's does not hold (raw keys compare, so a key listed
// under two key ids is one key). Only such a step resets the highest registry version seen
// (fast-forward recovery, as the Python client's walk_root): after a step that only adds keys or
// changes the threshold, every document the old keys signed still verifies, so an older one is
// still a rollback.
func removesIndexKey(prev, next *Root) bool {
	keys := map[string]bool{}
	for _, k := range next.Roles["index"].Keys {
		keys[string(k.Key)] = true
	}
	for _, k := range prev.Roles["index"].Keys {
		if !keys[string(k.Key)] {
			return true
		}
	}
	return false
}

func (s *Session) sigs(names []string) ([][]byte, error) {
	var out [][]byte
	for _, n := range names {
		b, err := s.xfer.get(s.ctx, n, MaxSignature, true)
		if err != nil {
			return nil, err
		}
		if b != nil {
			out = append(out, b)
		}
	}
	return out, nil
}

func chainError(err error) error {
	if e := AsError(err); e.Code == "root-expired" {
		return withClass(err, ClassRootExpired)
	}
	return withClass(err, ClassRootChain)
}

// maxRootSteps is how many new root versions one session walks (conformance decision 2): a chain
// that still goes on after them is root-chain, never ended at the root the walk stopped at (an
// expired root there would block every refresh, a key rotated further on would go unseen).
const maxRootSteps = 1024

// walkRoot is docs/trust.md 5.5: root N+1, N+2, ... until a 404, each checked before the next, at
// most limit new versions (maxRootSteps; tests pass a smaller bound).
func (s *Session) walkRoot(limit int64) error {
	cur := s.state.Root
	for steps := int64(0); ; steps++ {
		next := cur.Version + 1
		name := fmt.Sprintf("root/%d.root.json", next)
		raw, err := s.xfer.get(s.ctx, name, MaxRootFile, true)
		if err != nil {
			return err
		}
		if raw == nil {
			break
		}
		if steps == limit {
			return &Error{Class: ClassRootChain, Code: "root-version", Where: name,
				What: fmt.Sprintf("more than %d new root versions after version %d", limit, s.state.Root.Version),
				Fix:  "pin a recent root version (PinRoot with a current root file)"}
		}
		// Signatures by N's root keys first: a candidate no key of N signed is refused unparsed.
		sigs, err := s.sigs(rootSignatureNames(next, cur))
		if err != nil {
			return err
		}
		if cand, perr := parseRoot(raw, name); perr == nil {
			extra := []string{}
			have := map[string]bool{}
			for _, n := range rootSignatureNames(next, cur) {
				have[n] = true
			}
			for _, n := range rootSignatureNames(next, cand) {
				if !have[n] {
					extra = append(extra, n)
				}
			}
			// Fetched only after N's keys vouched for the candidate (VerifyRootStep re-checks all).
			t := tallySignatures(raw, sigs, rootRoleOf(cur))
			if len(t.counted) > 0 {
				more, err := s.sigs(extra)
				if err != nil {
					return err
				}
				sigs = append(sigs, more...)
			}
		}
		nr, err := VerifyRootStep(cur, raw, sigs)
		if err != nil {
			e := AsError(chainError(err))
			e.Where = name
			return e
		}
		if removesIndexKey(cur, nr) {
			s.highest = 0 // fast-forward recovery after a step that removed an index key
		}
		cur = nr
	}
	if err := checkExpiry(cur, s.now); err != nil {
		return chainError(err)
	}
	s.Root = cur
	return nil
}

func (s *Session) fetchTop() error {
	raw, err := s.xfer.get(s.ctx, "registry.json", MaxTopDocument, false)
	if err != nil {
		return err
	}
	names := []string{"registry.json.minisig"}
	for _, k := range s.Root.Roles["index"].Keys {
		names = append(names, "registry.json."+k.KeyID()+".minisig")
	}
	sigs, err := s.sigs(names)
	if err != nil {
		return err
	}
	if err := VerifyThreshold(s.Root.role("index"), raw, sigs, "registry.json"); err != nil {
		e := *AsError(err)
		e.Class = ClassBadSignature
		e.What = "tampered registry.json or signature, or signed by a key that is not an index key: " + e.What
		e.Where = "registry.json"
		return &e
	}
	top, err := ParseTopDocument(raw)
	if err != nil {
		return err
	}
	if top.Name != s.Root.Registry {
		return &Error{Class: ClassWrongRegistry, Where: "registry.json",
			What: fmt.Sprintf("registry.json is for registry '%s', the trusted root for '%s'", top.Name, s.Root.Registry),
			Fix:  "the URL serves another registry; check --url"}
	}
	if top.RootVersion > s.Root.Version {
		return &Error{Class: ClassMalformed, Where: "registry.json",
			What: fmt.Sprintf("registry.json was built under root version %d, but the newest root published is %d", top.RootVersion, s.Root.Version),
			Fix:  "the registry is inconsistent (root version missing); report it to the registry owners"}
	}
	if !s.now.Before(top.ExpiresAt) {
		return &Error{Class: ClassFreeze, Where: "registry.json",
			What: fmt.Sprintf("freeze attack or stale mirror: registry.json expired at %s", top.ExpiresAt.Format(TimeLayout)),
			Fix:  "use an up-to-date mirror; the registry owners must re-sign registry.json (registry-tool resign)"}
	}
	if top.Version < s.highest {
		return &Error{Class: ClassRollback, Where: "registry.json",
			What: fmt.Sprintf("rollback attack: registry version %d is lower than the highest seen %d", top.Version, s.highest),
			Fix:  "the server or a mirror serves an old registry.json; use another mirror"}
	}
	s.Top = top
	s.highest = top.Version
	return nil
}

// Commit saves the trust state (new root, highest version) the session verified; Install calls it
// before it fetches a release, a host that used Refresh alone calls it itself.
func (s *Session) Commit() error {
	s.commit.Lock()
	defer s.commit.Unlock()
	s.state.Root = s.Root
	s.state.HighestVersion = s.highest
	s.state.URL = s.url
	return s.state.saveMerged()
}

// fetchPinned downloads a metadata document by pin (cache first, re-hashed before use).
func (s *Session) fetchPinned(p Pin) ([]byte, error) {
	cached := filepath.Join(s.cache, p.SHA256)
	if b, err := os.ReadFile(cached); err == nil && int64(len(b)) == p.Size && sha256Hex(b) == p.SHA256 {
		return b, nil
	}
	b, err := s.xfer.get(s.ctx, p.URL(), p.Size, false)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(b); got != p.SHA256 || int64(len(b)) != p.Size {
		return nil, &Error{Class: ClassDigestMismatch, Where: p.URL(),
			What: fmt.Sprintf("%s has sha256 %s and %d bytes, the signed pin says %s and %d", p.URL(), got, len(b), p.SHA256, p.Size),
			Fix:  "the server serves tampered metadata; use another mirror and report it"}
	}
	if os.MkdirAll(s.cache, 0o700) == nil {
		_ = writeFileAtomic(s.cache, p.SHA256, b)
	}
	return b, nil
}

// PluginDocument walks the tree (format 2 section 3) to name's document.
func (s *Session) PluginDocument(name string) (*PluginDocument, error) {
	if !pluginNameRE.MatchString(name) {
		return nil, &Error{Class: ClassBadRequirement, What: fmt.Sprintf("%q is not a plugin name", name), Fix: "plugin names match ^[a-z][a-z0-9_-]{1,63}$"}
	}
	key := sha256Hex([]byte(name))
	pin, prefix := s.Top.Tree, ""
	for depth := 0; ; depth++ {
		if depth > maxTreeDepth {
			return nil, mixAndMatch(pin.URL(), "the plugin tree is deeper than %d levels", maxTreeDepth)
		}
		b, err := s.fetchPinned(pin)
		if err != nil {
			return nil, err
		}
		n, err := parseNode(b, prefix, pin.URL())
		if err != nil {
			return nil, err
		}
		if n.plugins != nil {
			p, ok := n.plugins[name]
			if !ok {
				return nil, notFound(name)
			}
			b, err := s.fetchPinned(p)
			if err != nil {
				return nil, err
			}
			return parsePluginDocument(b, name, p.URL())
		}
		if len(prefix) >= len(key) {
			return nil, mixAndMatch(pin.URL(), "the plugin tree is deeper than a key")
		}
		c := key[len(prefix) : len(prefix)+1]
		child, ok := n.children[c]
		if !ok {
			return nil, notFound(name)
		}
		pin, prefix = child, prefix+c
	}
}

func notFound(name string) *Error {
	return &Error{Class: ClassNotFound, What: fmt.Sprintf("plugin '%s' does not exist in this registry", name),
		Fix: "check the name (registry-tool client search lists the plugins)"}
}

// Resolve picks the release a requirement selects: the highest version the range matches that is
// not yanked (an exact pin may select a yanked one) and whose host range admits hostVersion.
func (s *Session) Resolve(spec, hostVersion string) (*Release, *PluginDocument, error) {
	req, err := ParseRequirement(spec)
	if err != nil {
		return nil, nil, err
	}
	var host *semver.Version
	if hostVersion != "" {
		h, ok := ParseVersion(hostVersion)
		if !ok {
			return nil, nil, &Error{Class: ClassBadRequirement, What: fmt.Sprintf("host version %q is not a semver version", hostVersion), Fix: "pass the host's version, e.g. 0.3.1"}
		}
		host = h
	}
	pd, err := s.PluginDocument(req.Name)
	if err != nil {
		return nil, nil, err
	}
	r, err := pickRelease(pd, req.Range, host)
	return r, pd, err
}

func pickRelease(pd *PluginDocument, rng *Range, host *semver.Version) (*Release, error) {
	if rng == nil {
		rng = anyVersion // a bare name means "*": never a prerelease
	}
	for _, r := range pd.sortedVersions() {
		if !rng.Match(r.SemVer) {
			continue
		}
		if r.Yanked && !rng.Exact() {
			continue
		}
		if host != nil && r.Host != nil {
			// An unparseable host range is not a promise of compatibility.
			if hr, err := ParseRange(*r.Host); err != nil || !hr.Match(host) {
				continue
			}
		}
		return r, nil
	}
	what := "no release matching " + rng.String()
	if host != nil {
		what += " for host version " + host.String()
	}
	// Say why the matching releases were passed over, and offer only what a range could choose.
	var yanked, hostless, available []string
	for _, r := range pd.sortedVersions() {
		hostOK := host == nil || r.Host == nil
		if !hostOK {
			hr, err := ParseRange(*r.Host)
			hostOK = err == nil && hr.Match(host)
		}
		switch {
		case rng.Match(r.SemVer) && r.Yanked && !rng.Exact():
			yanked = append(yanked, r.Version)
		case rng.Match(r.SemVer) && !hostOK:
			hostless = append(hostless, r.Version)
		}
		if !r.Yanked && hostOK {
			available = append(available, r.Version)
		}
	}
	if len(yanked) > 0 {
		what += fmt.Sprintf("; yanked (chosen only by an exact pin): %s", strings.Join(yanked, ", "))
	}
	if len(hostless) > 0 {
		what += fmt.Sprintf("; for another host version: %s", strings.Join(hostless, ", "))
	}
	if len(available) > 0 {
		what += "; available: " + strings.Join(available, ", ")
	} else if host != nil {
		what += "; no release that is not yanked supports host version " + host.String()
	}
	return nil, &Error{Class: ClassNoMatchingVersion, What: fmt.Sprintf("plugin '%s' has %s", pd.Name, what),
		Fix: "relax the requirement, or pin an exact version"}
}

// VerifiedRelease is a release whose manifest, signatures and module were verified.
type VerifiedRelease struct {
	Release    *Release
	Manifest   *Manifest
	ManifestB  []byte
	Signatures map[string][]byte // file name -> signature text, as served
	Signers    []string
	Wasm       []byte
}

func sameStrings(a, b []string) bool {
	x := append([]string(nil), a...)
	y := append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// Download fetches and verifies a release (format 2 section 6, step 6; conformance decision 11
// fixes the order of the checks): nothing is written. allow is the set of permissions the host
// grants; a release declaring others is refused before its module is fetched.
func (s *Session) Download(r *Release, pd *PluginDocument, allow []string) (*VerifiedRelease, error) {
	return s.verifyRelease(r, pd, allow, remoteRelease{s})
}

// releaseFiles is where a release's files come from: the registry, or (for a release already
// installed with the same pins) the plugin directory. Either way every check below runs on them.
type releaseFiles interface {
	// get returns the file at the site path rel (at most max bytes; optional: nil when absent).
	get(rel string, max int64, optional bool) ([]byte, error)
}

type remoteRelease struct{ s *Session }

func (r remoteRelease) get(rel string, max int64, optional bool) ([]byte, error) {
	return r.s.xfer.get(r.s.ctx, rel, max, optional)
}

// installedRelease serves the files of an installed release by their site paths.
type installedRelease map[string][]byte

func (f installedRelease) get(rel string, _ int64, optional bool) ([]byte, error) {
	if b, ok := f[rel]; ok {
		return b, nil
	}
	if optional {
		return nil, nil
	}
	return nil, &Error{Class: ClassNetwork, What: rel + " is not installed", Fix: "install it again"}
}

func (s *Session) verifyRelease(r *Release, pd *PluginDocument, allow []string, files releaseFiles) (*VerifiedRelease, error) {
	mb, err := files.get(r.Manifest.Path, r.Manifest.Size, false)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(mb); got != r.Manifest.SHA256 || int64(len(mb)) != r.Manifest.Size {
		return nil, &Error{Class: ClassDigestMismatch, Where: r.Manifest.Path,
			What: fmt.Sprintf("tampered manifest: %s has sha256 %s, the registry pins %s", r.Manifest.Path, got, r.Manifest.SHA256),
			Fix:  "the server serves a modified plugin.toml; use another mirror and report it"}
	}
	man, err := parseManifest(mb)
	if err != nil {
		e := *AsError(err)
		if e.Class == "" {
			e.Class = ClassMalformed
		}
		e.Where = r.Manifest.Path
		return nil, &e
	}
	if man.Name != r.Name || man.Version != r.Version {
		return nil, &Error{Class: ClassWrongSoftware, Where: r.Manifest.Path,
			What: fmt.Sprintf("wrong software attack: the entry for %s %s serves the manifest of %s %s", r.Name, r.Version, man.Name, man.Version),
			Fix:  "the registry points a plugin at another plugin's files; report it to the registry owners"}
	}
	names := []string{r.Manifest.Path + ".minisig"}
	for _, id := range r.Signers {
		names = append(names, r.Manifest.Path+"."+id+".minisig")
	}
	sigFiles := map[string][]byte{}
	var sigs [][]byte
	for _, n := range names {
		b, err := files.get(n, MaxSignature, true)
		if err != nil {
			return nil, err
		}
		if b != nil {
			sigFiles[n[strings.LastIndex(n, "/")+1:]] = b
			sigs = append(sigs, b)
		}
	}
	pub := r.PublishedAt
	signers, err := VerifyReleaseSignatures(s.Root, r.Name, mb, sigs, s.now, &pub)
	if err != nil {
		e := *AsError(err)
		e.Class = ClassMaintainerSignature
		e.What = fmt.Sprintf("maintainer signature of %s %s: %s", r.Name, r.Version, e.What)
		e.Where = r.Manifest.Path
		return nil, &e
	}
	if err := entryAgrees(r, man); err != nil {
		return nil, err
	}
	// Installed, such a module would be taken for the manifest's own signature (and the lockfile
	// would name one file as both): ci check refuses the name, only a forged index serves it.
	if isReservedName(man.ArtifactFile) {
		return nil, &Error{Class: ClassMalformed, Where: r.Manifest.Path,
			What: fmt.Sprintf("the signed manifest of %s %s names its module %q, a name reserved for the release's metadata (plugin.toml, yank.toml and their signatures)", r.Name, r.Version, man.ArtifactFile),
			Fix:  "do not install this release; ask its maintainers to rename the module"}
	}
	// The whole signed manifest against schemas/plugin.schema.json, once the entry agrees with it
	// (decision 11, step 4): before any permission is asked for.
	if err := CheckManifestStrict(mb); err != nil {
		e := *AsError(err)
		e.Where = r.Manifest.Path
		return nil, &e
	}
	vr := &VerifiedRelease{Release: r, Manifest: man, ManifestB: mb, Signatures: sigFiles, Signers: signers}
	if err := checkPermissions(vr, allow); err != nil {
		return nil, err
	}
	wb, err := files.get(r.Wasm.Path, r.Wasm.Size, false)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(wb); got != r.Wasm.SHA256 || int64(len(wb)) != r.Wasm.Size {
		// The module of another version of the plugin: a swapped release (decision 11.6).
		for _, other := range pd.sortedVersions() {
			if other != r && other.Wasm.SHA256 == got {
				return nil, mixAndMatch(r.Wasm.Path, "the module served for %s %s is the module of %s", r.Name, r.Version, other.Version)
			}
		}
		return nil, &Error{Class: ClassDigestMismatch, Where: r.Wasm.Path,
			What: fmt.Sprintf("tampered module: %s has sha256 %s, the signed manifest pins %s", r.Wasm.Path, got, r.Wasm.SHA256),
			Fix:  "the server serves a modified module; use another mirror and report it"}
	}
	// The module's kind against the signed abi (decision 11, step 6): a component only for
	// abi "component", a core module for every other abi.
	if isComponent(wb) != (man.ABI == "component") {
		return nil, mixAndMatch(r.Wasm.Path, "the signed manifest of %s %s says abi %q, but the module is %s", r.Name, r.Version, man.ABI,
			map[bool]string{true: "a component", false: "a core module"}[isComponent(wb)])
	}
	if err := checkImports(wb, man.Permissions, r.Wasm.Path); err != nil {
		return nil, err
	}
	vr.Wasm = wb
	return vr, nil
}

// checkPermissions: every permission the signed manifest declares must be allowed by the host.
func checkPermissions(vr *VerifiedRelease, allow []string) error {
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a] = true
	}
	var missing []string
	for _, p := range vr.Manifest.Permissions {
		if !allowed[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return &Error{Class: ClassPermissionRequired,
			What: fmt.Sprintf("%s %s needs permission(s) %s, which were not allowed", vr.Release.Name, vr.Release.Version, strings.Join(missing, ", ")),
			Fix:  "approve them (--allow " + strings.Join(missing, ",") + ") if the host should grant them"}
	}
	return nil
}

// entryAgrees: a mix-and-match error where the plugin document's entry r says other than its
// signed manifest man. Index-only fields are not trusted: the signed manifest decides.
func entryAgrees(r *Release, man *Manifest) error {
	mm := func(field string) error {
		return mixAndMatch(r.Manifest.Path, "the registry's %s of %s %s disagrees with the signed manifest", field, r.Name, r.Version)
	}
	switch {
	case !man.abiSet || man.ABI != r.ABI:
		return mm("abi")
	case (man.Host == nil) != (r.Host == nil) || (man.Host != nil && *man.Host != *r.Host):
		return mm("host range")
	case !sameStrings(man.Permissions, r.Permissions):
		return mm("permissions")
	case !man.exportsSet || strings.Join(man.Exports, "\x00") != strings.Join(r.Exports, "\x00") || len(man.Exports) != len(r.Exports):
		return mm("exports")
	case len(man.Dependencies) != len(r.Dependencies):
		return mm("dependencies")
	}
	for k, v := range man.Dependencies {
		if r.Dependencies[k] != v {
			return mm("dependencies")
		}
	}
	for k, v := range man.Limits {
		if got, ok := r.Limits[k]; ok && got != v {
			return mm("limits." + k)
		}
	}
	wasmFile := r.Wasm.Path[strings.LastIndex(r.Wasm.Path, "/")+1:]
	if man.ArtifactFile != wasmFile || man.ArtifactSHA256 != r.Wasm.SHA256 || man.ArtifactSize != r.Wasm.Size {
		return mm("module (file, sha256 or size)")
	}
	return nil
}
