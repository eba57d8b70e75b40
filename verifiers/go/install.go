package verifier

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

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
	parents   []string
}

// Install resolves spec, verifies the release and its dependencies and installs them into dir
// atomically: files first (temporary file, fsync, rename), then the lockfile (the commit point),
// then the previous versions' files. The trust state is saved after success.
func (s *Session) Install(spec, dir string, opt InstallOptions) ([]Installed, error) {
	root, err := openRoot(dir, true)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	unlock, err := root.lock()
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
		e.Requested = p.requested
		if old, ok := lf.Plugins[name]; ok {
			if e.Requested == "" {
				e.Requested = old.Requested
			}
			p.parents = append(p.parents, old.RequiredBy...)
		}
		e.RequiredBy = sortedUnique(p.parents)
		lf.Plugins[name] = e
	}
	if err := root.writeFile(LockfileName, lf.Marshal()); err != nil {
		return nil, err
	}
	for name, old := range previous {
		if old.Version != lf.Plugins[name].Version {
			removeRelease(root, name, old)
		}
	}
	if err := s.Commit(); err != nil {
		return nil, err
	}
	var out []Installed
	for _, name := range order {
		vr := plan[name].vr
		out = append(out, Installed{Name: name, Version: vr.Release.Version, WasmSHA256: vr.Release.Wasm.SHA256,
			ManifestSHA256: vr.Release.Manifest.SHA256, Permissions: vr.Manifest.Permissions, Limits: vr.Release.Limits})
	}
	return out, nil
}

// plan resolves spec and, breadth first, the dependencies its signed manifests declare. An
// installed dependency that already satisfies a range is kept.
func (s *Session) plan(spec string, opt InstallOptions, lf *Lockfile, root *dirFD) (map[string]*plannedRelease, []string, error) {
	req, err := ParseRequirement(spec)
	if err != nil {
		return nil, nil, err
	}
	plan := map[string]*plannedRelease{}
	var order []string
	type want struct {
		name   string
		rng    *Range
		spec   string
		parent string
	}
	queue := []want{{name: req.Name, rng: req.Range, spec: spec}}
	var host = opt.HostVersion
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		if p, ok := plan[w.name]; ok {
			if w.rng != nil && !w.rng.Match(p.vr.Release.SemVer) {
				return nil, nil, &Error{Class: ClassNoMatchingVersion,
					What: fmt.Sprintf("dependency conflict: %s needs %s@%s, but %s is selected", w.parent, w.name, w.rng, p.vr.Release.Version),
					Fix:  "install versions whose dependency ranges agree"}
			}
			p.parents = append(p.parents, w.parent)
			continue
		}
		if old, ok := lf.Plugins[w.name]; ok && w.parent != "" && old.Registry == s.url {
			if v, ok := ParseVersion(old.Version); ok && (w.rng == nil || w.rng.Match(v)) {
				if !contains(old.RequiredBy, w.parent) {
					old.RequiredBy = sortedUnique(append(old.RequiredBy, w.parent))
				}
				continue
			}
		}
		var r *Release
		var pd *PluginDocument
		if w.parent == "" {
			r, pd, err = s.Resolve(w.spec, host)
		} else {
			dspec := w.name
			if w.rng != nil {
				dspec += "@" + w.rng.String()
			}
			r, pd, err = s.Resolve(dspec, host)
		}
		if err != nil {
			return nil, nil, err
		}
		var vr *VerifiedRelease
		if local := installedFiles(root, lf.Plugins[w.name], r, s.url); local != nil {
			// The same pins are installed: verified again, not downloaded again. If the installed
			// copy no longer passes (e.g. the registry re-signed it), the registry's copy decides.
			vr, _ = s.verifyRelease(r, pd, opt.Allow, local)
		}
		if vr == nil {
			if vr, err = s.Download(r, pd, opt.Allow); err != nil {
				return nil, nil, err
			}
		}
		p := &plannedRelease{vr: vr}
		if w.parent == "" {
			p.requested = strings.TrimPrefix(w.spec, w.name+"@")
			if !strings.Contains(w.spec, "@") {
				p.requested = ""
			}
		} else {
			p.parents = []string{w.parent}
		}
		plan[w.name] = p
		order = append(order, w.name)
		for _, dep := range sortedKeys(vr.Manifest.Dependencies) {
			rng, err := ParseRange(vr.Manifest.Dependencies[dep])
			if err != nil {
				return nil, nil, &Error{Class: ClassMalformed, Where: r.Manifest.Path,
					What: fmt.Sprintf("dependency %s of %s %s has a bad range: %s", dep, r.Name, r.Version, AsError(err).What), Fix: "report it to the plugin's maintainers"}
			}
			queue = append(queue, want{name: dep, rng: rng, parent: w.name})
		}
	}
	return plan, order, nil
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

// VerifyInstalled re-checks an installed plugin directory offline: lockfile, the bytes of every
// manifest and module (re-hashed), that each stored manifest names its plugin and version and pins
// its module, no symbolic link below the directory, and, when stateDir holds a trusted root, the
// stored maintainer signatures against it.
func VerifyInstalled(dir, stateDir string, now time.Time) (*VerifyReport, error) {
	root, err := openRoot(dir, false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	lf, err := readLockfile(root)
	if err != nil {
		return nil, err
	}
	if lf == nil {
		return &VerifyReport{Plugins: []string{}}, nil // nothing installed
	}
	if err := root.findLinks(); err != nil {
		return nil, err
	}
	var trusted *Root
	if stateDir != "" {
		if st, err := LoadState(stateDir); err == nil {
			trusted = st.Root
		}
	}
	rep := &VerifyReport{}
	for _, name := range sortedKeys(lf.Plugins) {
		if _, err := verifyEntry(root, name, lf.Plugins[name], trusted, now); err != nil {
			return nil, err
		}
		rep.Plugins = append(rep.Plugins, name)
	}
	return rep, nil
}

// InstalledPlugin is an installed plugin's verified bytes, for a host to load.
type InstalledPlugin struct {
	Entry         *LockEntry
	Manifest      *Manifest // the maintainer-signed manifest (permissions, limits, exports)
	ManifestBytes []byte
	Wasm          []byte
}

// LoadInstalled re-verifies one installed plugin exactly as VerifyInstalled does (bytes re-hashed
// against the lockfile, no links, signatures against the trusted root of stateDir when given)
// and returns the bytes it checked, so what a host runs is what was verified.
func LoadInstalled(dir, stateDir, name string, now time.Time) (*InstalledPlugin, error) {
	root, err := openRoot(dir, false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	lf, err := readLockfile(root)
	if err != nil {
		return nil, err
	}
	if err := root.findLinks(); err != nil {
		return nil, err
	}
	if lf == nil || lf.Plugins[name] == nil {
		return nil, &Error{Class: ClassNotFound, Where: dir, What: fmt.Sprintf("plugin '%s' is not installed in %s", name, dir),
			Fix: "install it first"}
	}
	var trusted *Root
	if stateDir != "" {
		st, err := LoadState(stateDir)
		if err != nil {
			return nil, err
		}
		trusted = st.Root
	}
	return verifyEntry(root, name, lf.Plugins[name], trusted, now)
}

func tampered(path, format string, args ...any) *Error {
	return &Error{Class: ClassInstalledTampered, Where: path, What: "installed plugin was modified: " + fmt.Sprintf(format, args...),
		Fix: "reinstall the plugin (registry-tool client install --locked) and find out who changed it"}
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
	man, err := ParseManifest(mb)
	if err != nil {
		return nil, tampered(e.Manifest, "the stored manifest cannot be read: %s", AsError(err).What)
	}
	if man.Name != name || man.Version != e.Version || man.ArtifactSHA256 != e.WasmSHA256 || man.ArtifactSize != e.WasmSize {
		return nil, tampered(e.Manifest, "the stored manifest does not name %s %s or does not pin its module", name, e.Version)
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
		return nil, tampered(e.Manifest, "its stored signatures no longer verify against the trusted root: %s", AsError(err).What)
	}
	return plugin, nil
}
