package verifier

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sys/unix"
)

// InstallOptions are the host's choices for one install.
type InstallOptions struct {
	HostVersion string   // skip releases whose host range excludes it ("" = any)
	Allow       []string // permissions the host grants
}

// Installed is one plugin an install wrote (the requested one first, then dependencies).
type Installed struct {
	Name, Version  string
	WasmSHA256     string
	ManifestSHA256 string
	Permissions    []string
	Limits         map[string]int64
}

type plannedRelease struct {
	vr        *VerifiedRelease
	requested string
}

// Install resolves spec with its dependency graph (conformance/README.md, decision 16), verifies
// every release of the graph and installs them into dir atomically: nothing is written unless
// every release verified; then files (temporary file, fsync, rename), the lockfile (the commit
// point) and the removal of replaced versions' files. The trust state the session verified (the
// root its walk reached, the registry version) is saved first (decision 3): an install that then
// fails keeps it, so a revocation in that root holds for VerifyInstalled and LoadInstalled.
// The requested plugin comes first in the result, then its dependencies.
func (s *Session) Install(spec, dir string, opt InstallOptions) ([]Installed, error) {
	if err := s.Commit(); err != nil {
		return nil, err
	}
	root, err := openRoot(dir, true)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	unlock, err := root.lock(s.ctx, s.xfer.overall)
	if err != nil {
		return nil, err
	}
	defer unlock()
	lf, err := readLockfile(root)
	if err != nil {
		return nil, err
	}
	if lf == nil {
		lf = &Lockfile{Plugins: map[string]*LockEntry{}}
	}
	// A link anywhere below the directory is refused before anything is fetched or written.
	if err := root.findLinksAndClean(); err != nil {
		return nil, err
	}
	plan, order, err := s.plan(spec, opt, lf, root)
	if err != nil {
		return nil, err
	}
	before := maps.Clone(lf.Plugins)
	previous := map[string]*LockEntry{}
	for _, name := range order {
		p := plan[name]
		if old, ok := lf.Plugins[name]; ok {
			previous[name] = old
		}
		if err := writeRelease(root, p.vr); err != nil {
			return nil, err
		}
		e := lockEntry(s.url, p.vr)
		// The plugin asked for records what was typed (promoting a former dependency); a
		// dependency keeps what the user once asked for, or is marked dependency-only when new.
		e.Requested = p.requested
		if name != order[0] {
			e.Requested = DependencyOnly
			if old, ok := lf.Plugins[name]; ok {
				e.Requested = old.Requested
			}
		}
		lf.Plugins[name] = e
	}
	recomputeRequiredBy(lf)
	if err := lf.commit(root, before); err != nil {
		return nil, err
	}
	for name, old := range previous {
		if old.Version != lf.Plugins[name].Version {
			removeRelease(root, name, old)
		}
	}
	var out []Installed
	for _, name := range order {
		vr := plan[name].vr
		out = append(out, Installed{Name: name, Version: vr.Release.Version, WasmSHA256: vr.Release.Wasm.SHA256,
			ManifestSHA256: vr.Release.Manifest.SHA256, Permissions: vr.Manifest.Permissions, Limits: vr.Release.Limits})
	}
	return out, nil
}

// recomputeRequiredBy sets each entry's required_by to the installed plugins whose recorded
// dependencies name it. An entry whose required_by changes is replaced by a changed copy, never
// changed in place, so the state read before stays intact for the commit's diff.
func recomputeRequiredBy(lf *Lockfile) {
	by := map[string][]string{}
	for name, e := range lf.Plugins {
		for dep := range e.Dependencies {
			by[dep] = append(by[dep], name)
		}
	}
	for name, e := range lf.Plugins {
		if rb := sortedUnique(by[name]); !slices.Equal(rb, e.RequiredBy) {
			c := *e
			c.RequiredBy = rb
			lf.Plugins[name] = &c
		}
	}
}

// MaxResolutionRounds bounds dependency resolution as the Python client bounds it (resolvelib's
// max_rounds, registry_tool/resolve.py): one round per release chosen, plus the round that finds
// nothing left to choose. A graph needing more is dependency-conflict ("gave up after 2000 rounds").
const MaxResolutionRounds = 2000

type edge struct {
	parent string
	rng    *Range
}

type chosenRelease struct {
	r  *Release
	pd *PluginDocument
}

// plan resolves spec and its dependency graph over verified plugin documents, then fetches and
// verifies every release of the graph (nothing is written here).
//
// The requested plugin gets the highest release its requirement allows. Each dependency gets,
// among the releases that meet every range the chosen releases declare on it (a range never newly
// selects a yanked release: the installed version stays eligible, yanked or not; the host range
// must admit the host version), the installed version when there is one, else the highest. A new requirement on a chosen plugin that its choice does
// not meet makes it chosen again over all its requirements, until nothing changes. Each round
// chooses one plugin whose requirements are unmet, as a round of resolvelib pins one: the one
// with the fewest candidate releases (alphabetical among equals), so the most constrained plugins
// are settled before the search branches on the others. A dependency
// with no release left (or one the registry does not list) sends the search back to the latest
// choice that had other releases to try, next best first (decision 16.3: backtracking, as the
// Python client's resolver does); with none left it is dependency-conflict, named after the
// first conflict met. A cycle among the chosen releases is dependency-cycle.
func (s *Session) plan(spec string, opt InstallOptions, lf *Lockfile, root *dirFD) (map[string]*plannedRelease, []string, error) {
	req, err := ParseRequirement(spec)
	if err != nil {
		return nil, nil, err
	}
	var host *semver.Version
	if opt.HostVersion != "" {
		h, ok := ParseVersion(opt.HostVersion)
		if !ok {
			return nil, nil, &Error{Class: ClassBadRequirement, What: fmt.Sprintf("host version %q is not a semver version", opt.HostVersion), Fix: "pass the host's version, e.g. 0.3.1"}
		}
		host = h
	}
	top, topDoc, err := s.Resolve(spec, opt.HostVersion)
	if err != nil {
		return nil, nil, err
	}
	choice := map[string]chosenRelease{req.Name: {top, topDoc}}
	var order []string
	settled := false
	// Each choice of a release counts one round (the requested plugin's included), as a round of
	// the Python client's resolver (resolvelib) pins one plugin: past the bound, resolution gives up.
	pins := 1
	ranges := map[string]*Range{}  // parsed once: every round walks the whole graph again
	var tried []decision           // the choices the search may revisit, latest last
	var first error                // the first conflict met: what a failed search reports
	docs := map[string]docResult{} // plugin documents fetched once per plan, not once per round
	// backtrack answers a conflict: the latest choice with releases left takes the next one, the
	// choices made after it undone; nil when the search goes on, else the error to return.
	backtrack := func(err error) error {
		if e := AsError(err); e == nil || e.Class != ClassDependencyConflict {
			return err
		}
		if first == nil {
			first = err
		}
		for len(tried) > 0 {
			d := &tried[len(tried)-1]
			if len(d.rest) == 0 {
				tried = tried[:len(tried)-1]
				continue
			}
			choice = maps.Clone(d.before)
			choice[d.name] = chosenRelease{d.rest[0], d.pd}
			d.rest = d.rest[1:]
			return nil
		}
		return first
	}
search:
	for !settled {
		// The requirements the current choices declare, breadth first from the requested plugin.
		reqs := map[string][]edge{}
		order = []string{req.Name}
		seen := map[string]bool{req.Name: true}
		for i := 0; i < len(order); i++ {
			c := choice[order[i]]
			for _, dep := range sortedKeys(c.r.Dependencies) {
				rng, err := parsedRange(ranges, c.r.Dependencies[dep])
				if err != nil {
					return nil, nil, &Error{Class: ClassMalformed, Where: c.r.Manifest.Path,
						What: fmt.Sprintf("dependency %s of %s %s has a bad range: %s", dep, c.r.Name, c.r.Version, AsError(err).What), Fix: "report it to the plugin's maintainers"}
				}
				reqs[dep] = append(reqs[dep], edge{c.r.Name + " " + c.r.Version, rng})
				if _, ok := choice[dep]; ok && !seen[dep] {
					seen[dep] = true
					order = append(order, dep)
				}
			}
		}
		if err := s.addInstalledEdges(reqs, req.Name, choice, lf, ranges); err != nil {
			return nil, nil, err
		}
		settled = true
		// The plugins whose requirements the current choices leave unmet, alphabetical.
		var unmet []string
		for _, dep := range sortedKeys(reqs) {
			// The requested plugin's exact pin may keep a yanked release, as pickRequested chose
			// it (decision 16.1); judged otherwise here, it was chosen again without end.
			exact := dep == req.Name && req.Range != nil && req.Range.Exact()
			if c, ok := choice[dep]; ok && meetsAll(c.r, reqs[dep], exact || isInstalled(lf, dep, c.r, s.url)) {
				continue
			}
			unmet = append(unmet, dep)
		}
		if len(unmet) > 0 {
			if pins+1 >= MaxResolutionRounds {
				return nil, nil, &Error{Class: ClassDependencyConflict, Where: spec,
					What: fmt.Sprintf("dependency resolution gave up after %d rounds", MaxResolutionRounds),
					Fix:  "pin the plugins you need exactly (name@1.2.3) to narrow the search"}
			}
			pins++
			settled = false
			// One plugin is chosen per round, as a round of resolvelib pins one: the one with
			// the fewest candidate releases (the first alphabetically among equals). One with
			// none is a conflict at once.
			var (
				best      string
				bestPicks []*Release
				bestDoc   *PluginDocument
			)
			for _, dep := range unmet {
				var picks []*Release
				var pd *PluginDocument
				if dep == req.Name {
					// Installed plugins depend on it: the highest release the request allows that
					// also meets their ranges (never a lower one, decision 16.1).
					again := pickRequested(topDoc, req.Range, host, reqs[dep], lf, s.url)
					if again == nil {
						if err := backtrack(conflict(dep, reqs[dep], "no release the request allows meets them")); err != nil {
							return nil, nil, err
						}
						continue search
					}
					picks, pd = []*Release{again}, topDoc
				} else {
					var err error
					if picks, pd, err = s.dependencyCandidates(dep, reqs[dep], host, lf, docs); err != nil {
						if err := backtrack(err); err != nil {
							return nil, nil, err
						}
						continue search
					}
				}
				if bestPicks == nil || len(picks) < len(bestPicks) {
					best, bestPicks, bestDoc = dep, picks, pd
				}
			}
			if len(bestPicks) > 1 {
				tried = append(tried, decision{maps.Clone(choice), best, bestPicks[1:], bestDoc})
			}
			choice[best] = chosenRelease{bestPicks[0], bestDoc}
		}
		for name := range choice {
			if _, ok := reqs[name]; !ok && name != req.Name {
				delete(choice, name) // no longer needed by anything chosen
			}
		}
	}
	if cycle := findCycle(req.Name, choice); cycle != nil {
		return nil, nil, &Error{Class: ClassDependencyCycle, What: "dependency cycle: " + strings.Join(cycle, " -> "),
			Fix: "plugins are loaded in dependency order, so a cycle cannot be installed; ask the maintainers to break it"}
	}
	// A version is one set of bytes: an installed version the registry now pins with other bytes
	// is refused before any manifest is fetched (never swapped in silently).
	for _, name := range order {
		if err := refuseRepublished(lf.Plugins[name], choice[name].r, s.url); err != nil {
			return nil, nil, err
		}
		var named *Range // the requested plugin's move down is judged by its range
		if name == req.Name {
			named = anyVersion
			if req.Range != nil {
				named = req.Range
			}
		}
		if err := s.refuseRollback(root, lf.Plugins[name], choice[name], named, host); err != nil {
			return nil, nil, err
		}
	}
	plan := map[string]*plannedRelease{}
	for _, name := range order {
		c := choice[name]
		var vr *VerifiedRelease
		if local := installedFiles(root, lf.Plugins[name], c.r, s.url); local != nil {
			// The same pins are installed: verified again, not downloaded again. If the installed
			// copy no longer passes (e.g. the registry re-signed it), the registry's copy decides.
			vr, _ = s.verifyRelease(c.r, c.pd, opt.Allow, local)
		}
		if vr == nil {
			if vr, err = s.Download(c.r, c.pd, opt.Allow); err != nil {
				return nil, nil, err
			}
		}
		p := &plannedRelease{vr: vr}
		if name == req.Name && strings.Contains(spec, "@") {
			p.requested = strings.TrimPrefix(spec, req.Name+"@")
		}
		plan[name] = p
	}
	return plan, order, nil
}

// refuseRepublished: the release r of the plan has the name and version of the lockfile entry e
// installed from this registry, but the registry pins other bytes (module or manifest) for it.
// A published version is immutable (the build refuses to change one): other bytes under an
// installed version mean a registry rebuilt without its history, or a maintainer key and the
// index key in other hands.
func refuseRepublished(e *LockEntry, r *Release, registry string) error {
	if e == nil || e.Registry != registry || e.Version != r.Version ||
		(e.WasmSHA256 == r.Wasm.SHA256 && e.ManifestSHA256 == r.Manifest.SHA256) {
		return nil
	}
	return &Error{Class: ClassRepublished, Where: r.Name + " " + r.Version,
		What: fmt.Sprintf("%s %s is installed with module sha256 %s… and manifest sha256 %s…, but the registry now publishes "+
			"other bytes under the same version (module %s…, manifest %s…): a republished release",
			r.Name, r.Version, short(e.WasmSHA256), short(e.ManifestSHA256), short(r.Wasm.SHA256), short(r.Manifest.SHA256)),
		Fix: "ask the registry's owners why; to take the new bytes anyway, remove " + r.Name + " from the plugin directory and install it again"}
}

// refuseRollback: the plan moves the plugin of lockfile entry e (installed from this registry)
// down to c.r for what only the index says (conformance decision 18). A build never drops a
// release whose signatures still count, and a yank or an entry's fields are the index key's word
// alone: while the installed copy's stored signatures verify under the session's root, it is not
// moved down because the plugin document no longer lists it, nor, for the requested plugin
// (named: its range), while it still meets the range and the host version (a yank). The user's
// own requirement moves it: an exact pin, a range that leaves it out, the host version. A
// withdrawn release (its signer revoked) or a damaged copy moves too.
func (s *Session) refuseRollback(root *dirFD, e *LockEntry, c chosenRelease, named *Range, host *semver.Version) error {
	if e == nil || e.Registry != s.url || c.pd == nil || (named != nil && named.Exact()) {
		return nil
	}
	installed, ok1 := ParseVersion(e.Version)
	chosen, ok2 := ParseVersion(c.r.Version)
	if !ok1 || !ok2 || !chosen.LessThan(installed) {
		return nil
	}
	listed, isListed := c.pd.Releases[e.Version]
	if isListed && named == nil {
		// A dependency: moved down by the graph's requirements, or by an entry of the installed
		// version that disagrees with the manifest its maintainer signed (other dependencies, a
		// host range), which only the index key can have written.
		stored, err := verifyEntry(root, c.r.Name, e, s.Root, s.now)
		if err != nil {
			return nil
		}
		if err := refuseRepublished(e, listed, s.url); err != nil {
			return err
		}
		return entryAgrees(listed, stored.Manifest)
	}
	if isListed && !named.Match(installed) {
		return nil
	}
	stored, err := verifyEntry(root, c.r.Name, e, s.Root, s.now)
	if err != nil {
		return nil // withdrawn or damaged: another release may take its place
	}
	// The host range its maintainer signed, not the entry's (the index's word).
	if isListed && host != nil && stored.Manifest.Host != nil {
		if hr, err := ParseRange(*stored.Manifest.Host); err != nil || !hr.Match(host) {
			return nil
		}
	}
	said := "the registry no longer lists it"
	if isListed {
		said = "the registry lists it (its range and the host still allow it) but passes it over: the plugin document yanks it or makes it unresolvable"
	}
	return &Error{Class: ClassRollback, Code: "dropped-release", Where: c.r.Name + " " + e.Version,
		What: fmt.Sprintf("%s %s is installed and its signatures still count, but %s: moving it down to %s "+
			"would be a rollback (installed releases are never moved down for what the registry's documents say alone: a stolen index key could say it)",
			c.r.Name, e.Version, said, c.r.Version),
		Fix: fmt.Sprintf("ask the registry's owners why; to go down anyway, install the version exactly (%s@%s)",
			c.r.Name, c.r.Version)}
}

func short(digest string) string {
	if len(digest) > 16 {
		return digest[:16]
	}
	return digest
}

// meetsAll: r matches every edge; a yanked r only where the edge pins it exactly or r is the
// installed version (installed, it stays: a yank keeps ranges from choosing it anew, as Cargo
// keeps a yanked version its lockfile names).
func meetsAll(r *Release, edges []edge, installed bool) bool {
	for _, e := range edges {
		if !e.rng.Match(r.SemVer) || (r.Yanked && !installed && !e.rng.Exact()) {
			return false
		}
	}
	return true
}

// addInstalledEdges adds to reqs the recorded ranges of the plugins installed from this registry
// outside the graph (decision 16.7), on the requested plugin and on every plugin the graph already
// requires: a plan never leaves an installed plugin's dependency unmet.
func (s *Session) addInstalledEdges(reqs map[string][]edge, requested string, choice map[string]chosenRelease, lf *Lockfile, ranges map[string]*Range) error {
	for _, name := range sortedKeys(lf.Plugins) {
		e := lf.Plugins[name]
		if _, in := choice[name]; in || e.Registry != s.url {
			continue
		}
		for _, dep := range sortedKeys(e.Dependencies) {
			if _, required := reqs[dep]; !required && dep != requested {
				continue
			}
			rng, err := parsedRange(ranges, e.Dependencies[dep])
			if err != nil {
				return &Error{Class: ClassLockfile, Where: name,
					What: fmt.Sprintf("the lockfile records dependency %s %q of %s, which is no range: %s", dep, e.Dependencies[dep], name, AsError(err).What),
					Fix:  "remove " + name + " and install it again"}
			}
			reqs[dep] = append(reqs[dep], edge{name + " " + e.Version + " (installed)", rng})
		}
	}
	return nil
}

// pickRequested: the highest release of the requested plugin that its requirement allows (as
// pickRelease) and that meets edges, or nil.
func pickRequested(pd *PluginDocument, rng *Range, host *semver.Version, edges []edge, lf *Lockfile, registry string) *Release {
	if rng == nil {
		rng = anyVersion
	}
	for _, r := range pd.sortedVersions() {
		if !rng.Match(r.SemVer) {
			continue
		}
		kept := isInstalled(lf, pd.Name, r, registry)
		if r.Yanked && !rng.Exact() && !kept {
			continue
		}
		if host != nil && r.Host != nil {
			if hr, err := ParseRange(*r.Host); err != nil || !hr.Match(host) {
				continue
			}
		}
		if meetsAll(r, edges, kept || rng.Exact()) {
			return r
		}
	}
	return nil
}

// parsedRange: text parsed once per plan (every round walks the whole graph again).
func parsedRange(ranges map[string]*Range, text string) (*Range, error) {
	if rng, ok := ranges[text]; ok {
		return rng, nil
	}
	rng, err := ParseRange(text)
	if err != nil {
		return nil, err
	}
	ranges[text] = rng
	return rng, nil
}

// isInstalled: release r of plugin name is the version the lockfile holds from this registry.
func isInstalled(lf *Lockfile, name string, r *Release, registry string) bool {
	old, ok := lf.Plugins[name]
	return ok && old.Registry == registry && old.Version == r.Version
}

func conflict(name string, edges []edge, why string) *Error {
	var needs []string
	for _, e := range edges {
		needs = append(needs, e.parent+" needs "+name+" "+e.rng.String())
	}
	return &Error{Class: ClassDependencyConflict, What: "no set of releases satisfies every requirement: " + strings.Join(needs, "; ") + "; " + why,
		Fix: "relax a range, or install versions whose dependency ranges agree"}
}

// decision is a choice the dependency search may revisit: the choices before it, the plugin it
// chose and the releases left to try, best first.
type decision struct {
	before map[string]chosenRelease
	name   string
	rest   []*Release
	pd     *PluginDocument
}

// docResult is a plugin document fetched during a plan, or the error fetching it gave.
type docResult struct {
	pd  *PluginDocument
	err error
}

// dependencyCandidates lists the releases of dep meeting every edge, best first: the installed
// version when it does, then the others from the highest. None is dependency-conflict.
func (s *Session) dependencyCandidates(dep string, edges []edge, host *semver.Version, lf *Lockfile, docs map[string]docResult) ([]*Release, *PluginDocument, error) {
	d, ok := docs[dep]
	if !ok {
		d.pd, d.err = s.PluginDocument(dep)
		docs[dep] = d
	}
	pd, err := d.pd, d.err
	if err != nil {
		if AsError(err).Class == ClassNotFound {
			return nil, nil, conflict(dep, edges, "the registry does not list "+dep)
		}
		return nil, nil, err
	}
	var picks []*Release
	for _, r := range pd.sortedVersions() {
		installed := isInstalled(lf, dep, r, s.url)
		if (r.Yanked && !installed) || !meetsAll(r, edges, installed) {
			continue
		}
		if host != nil && r.Host != nil {
			if hr, err := ParseRange(*r.Host); err != nil || !hr.Match(host) {
				continue
			}
		}
		if installed {
			picks = append([]*Release{r}, picks...)
		} else {
			picks = append(picks, r)
		}
	}
	if len(picks) == 0 {
		return nil, nil, conflict(dep, edges, "no release of "+dep+" meets them all")
	}
	return picks, pd, nil
}

// findCycle returns a dependency cycle among the chosen releases reachable from start, or nil.
func findCycle(start string, choice map[string]chosenRelease) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = grey
		stack = append(stack, n)
		for _, dep := range sortedKeys(choice[n].r.Dependencies) {
			if _, ok := choice[dep]; !ok {
				continue
			}
			switch color[dep] {
			case grey:
				for i, x := range stack {
					if x == dep {
						return append(append([]string(nil), stack[i:]...), dep)
					}
				}
			case white:
				if c := visit(dep); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	return visit(start)
}

// installedFiles returns the installed files of r by their site paths when the lockfile entry
// installed exactly r's pins from this registry and the files still match them; else nil.
func installedFiles(root *dirFD, e *LockEntry, r *Release, registry string) installedRelease {
	if e == nil || e.Registry != registry || e.Version != r.Version || e.ManifestSHA256 != r.Manifest.SHA256 ||
		e.WasmSHA256 != r.Wasm.SHA256 || e.ManifestSize != r.Manifest.Size || e.WasmSize != r.Wasm.Size {
		return nil
	}
	d, err := root.walk(r.Name+"/"+r.Version, false)
	if err != nil {
		return nil
	}
	defer d.Close()
	site := "plugins/" + r.Name + "/" + r.Version + "/"
	out := installedRelease{}
	for _, rel := range append([]string{e.Manifest, e.Wasm}, e.Signatures...) {
		file := rel[strings.LastIndex(rel, "/")+1:]
		max := int64(MaxSignature)
		switch rel {
		case e.Manifest:
			max = e.ManifestSize
		case e.Wasm:
			max = e.WasmSize
		}
		b, err := d.readFile(file, max)
		if err != nil {
			return nil
		}
		out[site+file] = b
	}
	if sha256Hex(out[r.Manifest.Path]) != r.Manifest.SHA256 || sha256Hex(out[r.Wasm.Path]) != r.Wasm.SHA256 {
		return nil
	}
	return out
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func lockEntry(registry string, vr *VerifiedRelease) *LockEntry {
	r := vr.Release
	dir := r.Name + "/" + r.Version + "/"
	wasmFile := r.Wasm.Path[strings.LastIndex(r.Wasm.Path, "/")+1:]
	var sigs []string
	for n := range vr.Signatures {
		sigs = append(sigs, dir+n)
	}
	sort.Strings(sigs)
	deps := map[string]string{}
	for k, v := range vr.Manifest.Dependencies {
		deps[k] = v
	}
	return &LockEntry{Version: r.Version, Registry: registry, Dependencies: deps, ABI: vr.Manifest.ABI,
		Manifest: dir + "plugin.toml", ManifestSHA256: r.Manifest.SHA256, ManifestSize: r.Manifest.Size,
		Wasm: dir + wasmFile, WasmSHA256: r.Wasm.SHA256, WasmSize: r.Wasm.Size, Signatures: sigs,
		Signers: sortedUnique(vr.Signers), Permissions: sortedUnique(vr.Manifest.Permissions), PublishedAt: r.PublishedAt.Format(TimeLayout)}
}

func writeRelease(root *dirFD, vr *VerifiedRelease) error {
	r := vr.Release
	d, err := root.walk(r.Name+"/"+r.Version, true)
	if err != nil {
		return err
	}
	defer d.Close()
	wasmFile := r.Wasm.Path[strings.LastIndex(r.Wasm.Path, "/")+1:]
	if err := d.writeFile(wasmFile, vr.Wasm); err != nil {
		return err
	}
	for _, n := range sortedKeys(vr.Signatures) {
		if err := d.writeFile(n, vr.Signatures[n]); err != nil {
			return err
		}
	}
	return d.writeFile("plugin.toml", vr.ManifestB)
}

func removeRelease(root *dirFD, name string, e *LockEntry) {
	d, err := root.walk(name+"/"+e.Version, false)
	if err != nil {
		return
	}
	for _, rel := range append([]string{e.Manifest, e.Wasm}, e.Signatures...) {
		d.remove(rel[strings.LastIndex(rel, "/")+1:])
	}
	d.Close()
	if nd, err := root.sub(name, false); err == nil {
		_ = unix.Unlinkat(nd.fd, e.Version, unix.AT_REMOVEDIR)
		nd.Close()
	}
}

// VerifyReport lists the installed plugins that verified.
type VerifyReport struct {
	Plugins []string
}

// trustedRoot is the pinned root of stateDir for the load-time checks. A state directory that is
// given but holds no readable pinned root (a mistyped path, a truncated or corrupt state.json,
// another client's state directory) is a refusal, never a silent fall back to digests only: a
// plugin rewritten together with its lockfile would then pass. Only stateDir == "" (nil, nil)
// asks for digests only.
func trustedRoot(stateDir string) (*Root, error) {
	if stateDir == "" {
		return nil, nil
	}
	st, err := LoadState(stateDir)
	if err != nil {
		e := *AsError(err)
		e.Class = ClassNotPinned
		e.What = "cannot check the installed plugins' maintainer signatures: " + e.What
		e.Fix = "check the state directory path, or pin the registry's root there first (registry-verifier pin --root FILE, or verifier.PinRoot); " +
			"pass an empty state directory only to check digests alone"
		return nil, &e
	}
	return st.Root, nil
}

// VerifyInstalled re-checks an installed plugin directory offline: lockfile, the bytes of every
// manifest and module (re-hashed), that each stored manifest names its plugin and version and pins
// its module, that each entry's abi, permissions and dependencies are that manifest's (hosts read
// them from the unsigned lockfile), no symbolic link below the directory, and, when stateDir is
// given, the stored maintainer signatures against its trusted root. A stateDir that holds no
// readable pinned root is refused (not-pinned); stateDir == "" checks digests only, no signatures.
func VerifyInstalled(dir, stateDir string, now time.Time) (*VerifyReport, error) {
	trusted, err := trustedRoot(stateDir)
	if err != nil {
		return nil, err
	}
	if err := checkPluginDir(dir); err != nil {
		return nil, err
	}
	// A plugin directory that does not exist holds nothing installed, as an empty one without a
	// lockfile (decision 15): the Python and Rust verifiers answer the same.
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return &VerifyReport{Plugins: []string{}}, nil
	}
	root, err := openRoot(dir, false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	check := func() (*VerifyReport, []byte, error) {
		lf, raw, err := readLockfileRaw(root)
		if err != nil {
			return nil, raw, err
		}
		if lf == nil {
			return &VerifyReport{Plugins: []string{}}, raw, nil // nothing installed
		}
		afterLockfileRead()
		if err := root.findLinks(); err != nil {
			return nil, raw, err
		}
		rep := &VerifyReport{}
		for _, name := range sortedKeys(lf.Plugins) {
			if _, err := verifyEntry(root, name, lf.Plugins[name], trusted, now); err != nil {
				return nil, raw, err
			}
			rep.Plugins = append(rep.Plugins, name)
		}
		return rep, raw, nil
	}
	rep, raw, err := check()
	if committedDuringCheck(root, raw, err) {
		rep, _, err = check()
	}
	return rep, err
}

// afterLockfileRead is a test hook: a writer committing between the lockfile read and the files.
var afterLockfileRead = func() {}

// committedDuringCheck is true when a check found an installed file missing or different
// (installed-tampered) while the lockfile it read is no longer the directory's: a writer committed
// an upgrade meanwhile and removed the version the check was reading (readers take no lock, so a
// host never waits for a download). The check then runs once more on the new lockfile, in full;
// on a directory whose lockfile did not change the verdict stands.
func committedDuringCheck(root *dirFD, before []byte, err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Class != ClassInstalledTampered {
		return false
	}
	now, readErr := root.readFile(LockfileName, maxLockfile)
	if readErr != nil {
		now = nil
	}
	return !bytes.Equal(now, before)
}

// InstalledPlugin is an installed plugin's verified bytes, for a host to load.
type InstalledPlugin struct {
	Entry         *LockEntry
	Manifest      *Manifest // the maintainer-signed manifest (permissions, limits, exports)
	ManifestBytes []byte
	Wasm          []byte
}

// LoadInstalled re-verifies one installed plugin exactly as VerifyInstalled does (bytes re-hashed
// against the lockfile, no links, signatures against the trusted root of stateDir when given: a
// stateDir without a readable pinned root is not-pinned; "" checks digests only) and returns the
// bytes it checked, so what a host runs is what was verified.
func LoadInstalled(dir, stateDir, name string, now time.Time) (*InstalledPlugin, error) {
	root, err := openRoot(dir, false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	check := func() (*InstalledPlugin, []byte, error) {
		lf, raw, err := readLockfileRaw(root)
		if err != nil {
			return nil, raw, err
		}
		afterLockfileRead()
		if err := root.findLinks(); err != nil {
			return nil, raw, err
		}
		if lf == nil || lf.Plugins[name] == nil {
			return nil, raw, &Error{Class: ClassNotFound, Where: dir, What: fmt.Sprintf("plugin '%s' is not installed in %s", name, dir),
				Fix: "install it first"}
		}
		trusted, err := trustedRoot(stateDir)
		if err != nil {
			return nil, raw, err
		}
		p, err := verifyEntry(root, name, lf.Plugins[name], trusted, now)
		return p, raw, err
	}
	p, raw, err := check()
	if committedDuringCheck(root, raw, err) {
		p, _, err = check()
	}
	return p, err
}

func tampered(path, format string, args ...any) *Error {
	return &Error{Class: ClassInstalledTampered, Where: path, What: "installed plugin was modified: " + fmt.Sprintf(format, args...),
		Fix: "reinstall the plugin (registry-tool client install --locked) and find out who changed it"}
}

// lockFactsDiffer names the first of abi, permissions (as a set) and dependencies (name -> range,
// the required ones) in which the lockfile entry differs from its signed manifest, or "". An
// absent [plugin] abi differs from any entry's (Python compares None with a string).
func lockFactsDiffer(e *LockEntry, man *Manifest) string {
	if !man.abiSet || e.ABI != man.ABI {
		return "abi"
	}
	granted := map[string]bool{}
	for _, p := range man.Permissions {
		granted[p] = true
	}
	listed := map[string]bool{}
	for _, p := range e.Permissions {
		listed[p] = true
	}
	if len(listed) != len(granted) {
		return "permissions"
	}
	for p := range listed {
		if !granted[p] {
			return "permissions"
		}
	}
	if len(e.Dependencies) != len(man.Dependencies) {
		return "dependencies"
	}
	for dep, rng := range e.Dependencies {
		if signed, ok := man.Dependencies[dep]; !ok || signed != rng {
			return "dependencies"
		}
	}
	return ""
}

func verifyEntry(root *dirFD, name string, e *LockEntry, trusted *Root, now time.Time) (*InstalledPlugin, error) {
	d, err := root.walk(name+"/"+e.Version, false)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, tampered(name+"/"+e.Version, "the release directory is missing")
		}
		return nil, err
	}
	defer d.Close()
	read := func(rel string, max int64) ([]byte, error) {
		b, err := d.readFile(rel[strings.LastIndex(rel, "/")+1:], max)
		if errors.Is(err, unix.ENOENT) {
			return nil, tampered(rel, "the file is missing")
		}
		return b, err
	}
	mb, err := read(e.Manifest, e.ManifestSize)
	if err != nil {
		return nil, err
	}
	if int64(len(mb)) != e.ManifestSize || sha256Hex(mb) != e.ManifestSHA256 {
		return nil, tampered(e.Manifest, "its sha256/size differ from the lockfile")
	}
	wb, err := read(e.Wasm, e.WasmSize)
	if err != nil {
		return nil, err
	}
	if int64(len(wb)) != e.WasmSize || sha256Hex(wb) != e.WasmSHA256 {
		return nil, tampered(e.Wasm, "its sha256/size differ from the lockfile")
	}
	man, err := parseManifest(mb)
	if err != nil {
		return nil, tampered(e.Manifest, "the stored manifest cannot be read: %s", AsError(err).What)
	}
	if man.Name != name || man.Version != e.Version || man.ArtifactSHA256 != e.WasmSHA256 || man.ArtifactSize != e.WasmSize {
		return nil, tampered(e.Manifest, "the stored manifest does not name %s %s or does not pin its module", name, e.Version)
	}
	// Hosts read abi, permissions and dependencies from the lockfile, which nobody signs: they
	// must be the signed manifest's (conformance/README.md, decision 15).
	if field := lockFactsDiffer(e, man); field != "" {
		return nil, tampered(LockfileName, "the lockfile's %s of %s differ from its signed plugin.toml", field, name)
	}
	plugin := &InstalledPlugin{Entry: e, Manifest: man, ManifestBytes: mb, Wasm: wb}
	if trusted == nil {
		return plugin, nil
	}
	var sigs [][]byte
	for _, rel := range e.Signatures {
		b, err := read(rel, MaxSignature)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, b)
	}
	pub, _ := ParseTime(e.PublishedAt)
	if _, err := verifyInstalledSignatures(trusted, name, mb, sigs, &pub); err != nil {
		// Still installed-tampered (the verdict is never weakened offline), but a pinned root older
		// than the one that delegated the signer (pinned with PinRoot, never refreshed and
		// committed; the plugin installed by the Python client or a newer session) fails the same
		// way: say so, and how to tell the two apart.
		cause := AsError(err)
		return nil, &Error{Class: ClassInstalledTampered, Code: cause.Code, Where: e.Manifest,
			What: fmt.Sprintf("the stored signatures of %s %s do not verify against the pinned root (version %d): %s; "+
				"either the pinned root is older than the root that delegated this signer, or the installed plugin was modified",
				name, e.Version, trusted.Version, cause.What),
			Fix: "if the pinned root may be out of date (pinned with PinRoot and never refreshed and committed, the plugin installed by another client), " +
				"refresh and commit first (verifier.Refresh, then Session.Commit) and load again; if it still fails, reinstall the plugin " +
				"(registry-tool client install --locked) and find out who changed it"}
	}
	return plugin, nil
}
