package verifier

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// The documents of registry format 2 (the lead's contract, sections 2-4) and their strict readers.

var (
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileNameRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
	permissionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	hexDigitRE   = regexp.MustCompile(`^[0-9a-f]$`)
)

// FormatVersion is the registry format this verifier reads.
const FormatVersion = 2

// maxMetaBytes is the largest size a pin may name, so a forged pin cannot ask for any download.
const maxMetaBytes = 64 * 1024 * 1024

// maxTreeDepth bounds the plugin tree walk (a key has 64 hex digits).
const maxTreeDepth = 64

// Pin names a metadata document by digest and size.
type Pin struct {
	SHA256 string
	Size   int64
}

// URL is the only place a pinned document is fetched from: meta/<hh>/<sha256>.json.
func (p Pin) URL() string { return "meta/" + p.SHA256[:2] + "/" + p.SHA256 + ".json" }

func (d *doc) pin(v any, path string) Pin {
	m := d.object(v, path, []string{"sha256", "size"}, nil)
	p := Pin{SHA256: d.match(m["sha256"], sha256RE, path+".sha256"), Size: d.integer(m["size"], path+".size", 1)}
	if p.Size > maxMetaBytes {
		d.fail(path+".size", "%d is above the %d byte ceiling of a metadata document", p.Size, maxMetaBytes)
	}
	return p
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TopDocument is registry.json.
type TopDocument struct {
	Version     int64
	GeneratedAt time.Time
	ExpiresAt   time.Time
	RootVersion int64
	Name        string
	BaseURL     string
	HostName    string
	HostRange   string
	Tree        Pin
	Catalog     Pin
}

func (d *doc) time(v any, path string) time.Time {
	s := d.match(v, timeRE, path)
	if d.err != nil {
		return time.Time{}
	}
	t, ok := ParseTime(s)
	if !ok {
		d.fail(path, "%q is not a valid time", s)
	}
	return t
}

// formatVersionFirst refuses a document of another format version before anything else is read
// (it decides how to read the rest): unsupported-format, naming the version got. The version is
// read as a JSON integer first (conformance decisions 6-7): 2.0, 2e0 or "2" are malformed.
func formatVersionFirst(v any, where string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	fv, ok := m["format_version"]
	if !ok {
		return nil
	}
	d := &doc{class: ClassMalformed, where: where}
	n := d.integer(fv, "format_version", math.MinInt64)
	if d.err != nil {
		return d.err
	}
	if n == FormatVersion {
		return nil
	}
	raw, _ := json.Marshal(fv)
	return &Error{Class: ClassUnsupportedFormat, Where: where,
		What: fmt.Sprintf("%s has format_version %s; this verifier reads format_version %d only", where, raw, FormatVersion),
		Fix:  "upgrade the verifier, or use a registry that publishes format 2"}
}

// ParseTopDocument reads registry.json (after its signatures were checked).
func ParseTopDocument(data []byte) (*TopDocument, error) {
	v, err := parseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "registry.json: " + err.Error(), Where: "registry.json",
			Fix: "the signed registry.json is not valid JSON; report it to the registry owners"}
	}
	if err := formatVersionFirst(v, "registry.json"); err != nil {
		return nil, err
	}
	d := &doc{class: ClassMalformed, where: "registry.json"}
	top := d.object(v, "", []string{"format_version", "version", "generated_at", "expires_at", "root_version",
		"registry", "tree", "catalog", "counts"}, nil)
	t := &TopDocument{}
	t.Version = d.integer(top["version"], "version", 1)
	t.GeneratedAt = d.time(top["generated_at"], "generated_at")
	t.ExpiresAt = d.time(top["expires_at"], "expires_at")
	t.RootVersion = d.integer(top["root_version"], "root_version", 1)
	reg := d.object(top["registry"], "registry", []string{"name", "description", "base_url", "host"}, nil)
	// the string limits of the Python client and the Rust verifier
	t.Name = d.strMax(reg["name"], "registry.name", 128)
	d.strMax(reg["description"], "registry.description", 4096)
	t.BaseURL = d.strMax(reg["base_url"], "registry.base_url", 2048)
	host := d.object(reg["host"], "registry.host", []string{"name", "versions"}, nil)
	t.HostName = d.strMax(host["name"], "registry.host.name", 128)
	t.HostRange = d.strMax(host["versions"], "registry.host.versions", 256)
	t.Tree = d.pin(top["tree"], "tree")
	t.Catalog = d.pin(top["catalog"], "catalog")
	counts := d.object(top["counts"], "counts", []string{"plugins", "releases"}, nil)
	d.integer(counts["plugins"], "counts.plugins", 0)
	d.integer(counts["releases"], "counts.releases", 0)
	if d.err == nil && !t.ExpiresAt.After(t.GeneratedAt) {
		d.fail("expires_at", "must be after generated_at")
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// node is a tree node: a branch (children) or a leaf (plugins).
type node struct {
	children map[string]Pin
	plugins  map[string]Pin
}

func mixAndMatch(where, format string, args ...any) *Error {
	return &Error{Class: ClassMixAndMatch, Where: where, What: "mix-and-match attack: " + fmt.Sprintf(format, args...),
		Fix: "the server mixes documents of different registries or versions; use another mirror and report it"}
}

func parseNode(data []byte, prefix, where string) (*node, error) {
	v, err := parseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "tree node: " + err.Error(), Where: where, Fix: "report it to the registry owners"}
	}
	if err := formatVersionFirst(v, where); err != nil {
		return nil, err
	}
	d := &doc{class: ClassMalformed, where: where}
	raw, _ := v.(map[string]any)
	_, branch := raw["children"]
	body := "plugins"
	if branch {
		body = "children"
	}
	m := d.object(v, "", []string{"_type", "format_version", "prefix", body}, nil)
	if s := d.str(m["_type"], "_type"); d.err == nil && s != "registry-node" {
		d.fail("_type", "must be \"registry-node\", got %q", s)
	}
	got := d.strMax(m["prefix"], "prefix", maxTreeDepth)
	if d.err != nil {
		return nil, d.err
	}
	if got != prefix {
		return nil, mixAndMatch(where, "tree node has prefix %q where the tree walk expects %q", got, prefix)
	}
	n := &node{}
	if branch {
		if len(prefix) >= maxTreeDepth {
			d.fail("children", "the tree is at most %d levels deep", maxTreeDepth)
		}
		n.children = map[string]Pin{}
		c := d.anyObject(m["children"], "children")
		for _, k := range sortedKeys(c) {
			if !hexDigitRE.MatchString(k) {
				d.fail("children", "child %q is not one lower-case hex digit", k)
			}
			n.children[k] = d.pin(c[k], "children."+k)
		}
		if d.err != nil {
			return nil, d.err
		}
		return n, nil
	}
	n.plugins = map[string]Pin{}
	p := d.anyObject(m["plugins"], "plugins")
	for _, name := range sortedKeys(p) {
		if d.err != nil {
			return nil, d.err
		}
		if !pluginNameRE.MatchString(name) {
			return nil, mixAndMatch(where, "tree leaf %q lists %q, which is not a plugin name", prefix, name)
		}
		if k := sha256Hex([]byte(name)); k[:len(prefix)] != prefix {
			return nil, mixAndMatch(where, "tree leaf %q lists plugin %q, whose key %s is outside the prefix", prefix, name, k)
		}
		n.plugins[name] = d.pin(p[name], "plugins."+name)
	}
	if d.err != nil {
		return nil, d.err
	}
	return n, nil
}

// FileRef is a release file named by the plugin document.
type FileRef struct {
	Path   string
	SHA256 string
	Size   int64
}

// Release is one version's entry in a plugin document (index-signed, so not trusted for anything
// the maintainer-signed manifest decides).
type Release struct {
	Name         string
	Version      string
	SemVer       *semver.Version
	ABI          string
	Host         *string
	Exports      []string
	Permissions  []string
	Limits       map[string]int64
	Dependencies map[string]string
	Manifest     FileRef
	Wasm         FileRef
	Signers      []string
	PublishedAt  time.Time
	Yanked       bool
	YankReason   string
}

// PluginDocument is every version of one plugin.
type PluginDocument struct {
	Name     string
	Releases map[string]*Release
}

func (d *doc) optString(v any, path string) *string {
	if v == nil {
		return nil
	}
	s := d.strMax(v, path, maxDocString)
	return &s
}

func (d *doc) optInteger(v any, path string) {
	if v != nil {
		d.integer(v, path, 0)
	}
}

// fileRef reads a release file reference; its path must be plugins/<name>/<version>/plugin.toml
// (manifest) or plugins/<name>/<version>/<file name> (module), else path-traversal.
func (d *doc) fileRef(v any, path, name, version string, manifest bool) FileRef {
	m := d.object(v, path, []string{"path", "sha256", "size"}, nil)
	ref := FileRef{Path: d.strMax(m["path"], path+".path", 512)}
	if d.err != nil {
		return ref
	}
	prefix := "plugins/" + name + "/" + version + "/"
	file := ""
	if strings.HasPrefix(ref.Path, prefix) {
		file = ref.Path[len(prefix):]
	}
	if (manifest && file != "plugin.toml") || !fileNameRE.MatchString(file) || file == "." || file == ".." {
		want := "<file name>"
		if manifest {
			want = "plugin.toml"
		}
		d.err = pathTraversal(d.where, "%s.path %q is not %s%s", path, ref.Path, prefix, want)
		return ref
	}
	ref.SHA256 = d.match(m["sha256"], sha256RE, path+".sha256")
	ref.Size = d.integer(m["size"], path+".size", 1)
	return ref
}

var releaseFields = []string{"description", "license", "abi", "host", "exports", "permissions", "limits", "dependencies",
	"manifest", "wasm", "signers", "published_at", "yanked", "smoke", "authors", "keywords", "homepage", "repository"}

func (d *doc) release(v any, path, name, ver string, sv *semver.Version) *Release {
	e := d.object(v, path, releaseFields, nil)
	r := &Release{Name: name, Version: ver, SemVer: sv, Limits: map[string]int64{}, Dependencies: map[string]string{}}
	lim := d.object(e["limits"], path+".limits", []string{"fuel", "memory", "wall_time_ms"}, nil)
	for _, k := range []string{"fuel", "memory", "wall_time_ms"} {
		r.Limits[k] = d.integer(lim[k], path+".limits."+k, 0)
	}
	deps := d.anyObject(e["dependencies"], path+".dependencies")
	for _, k := range sortedKeys(deps) {
		if !pluginNameRE.MatchString(k) {
			d.fail(path+".dependencies", "names %q, which is not a plugin name", k)
		}
		text := d.strMax(deps[k], path+".dependencies."+k, 256)
		if _, err := ParseRange(text); d.err == nil && err != nil {
			d.fail(path+".dependencies."+k, "%s", AsError(err).What)
		}
		r.Dependencies[k] = text
	}
	if y := e["yanked"]; y != nil {
		ym := d.object(y, path+".yanked", []string{"reason"}, nil)
		r.Yanked = true
		r.YankReason = d.strMax(ym["reason"], path+".yanked.reason", maxDocString)
	}
	if sm := e["smoke"]; sm != nil {
		for i, item := range d.array(sm, path+".smoke") {
			p := fmt.Sprintf("%s.smoke[%d]", path, i)
			f := d.object(item, p, []string{"name", "fuel", "peak_memory"}, nil)
			d.strMax(f["name"], p+".name", maxDocString)
			d.optInteger(f["fuel"], p+".fuel")
			d.optInteger(f["peak_memory"], p+".peak_memory")
		}
	}
	d.strMax(e["description"], path+".description", maxDocString)
	d.strMax(e["license"], path+".license", 256)
	r.ABI = d.strMax(e["abi"], path+".abi", 64)
	r.Host = d.optString(e["host"], path+".host")
	r.Exports = d.docStrings(e["exports"], path+".exports", nil)
	r.Permissions = d.docStrings(e["permissions"], path+".permissions", permissionRE)
	r.Manifest = d.fileRef(e["manifest"], path+".manifest", name, ver, true)
	r.Wasm = d.fileRef(e["wasm"], path+".wasm", name, ver, false)
	r.Signers = d.docStrings(e["signers"], path+".signers", keyIDRE)
	r.PublishedAt = d.time(e["published_at"], path+".published_at")
	d.docStrings(e["authors"], path+".authors", nil)
	d.docStrings(e["keywords"], path+".keywords", nil)
	d.optString(e["homepage"], path+".homepage")
	d.optString(e["repository"], path+".repository")
	return r
}

func parsePluginDocument(data []byte, name, where string) (*PluginDocument, error) {
	v, err := parseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "plugin document: " + err.Error(), Where: where, Fix: "report it to the registry owners"}
	}
	if err := formatVersionFirst(v, where); err != nil {
		return nil, err
	}
	d := &doc{class: ClassMalformed, where: where}
	m := d.object(v, "", []string{"_type", "format_version", "name", "versions"}, nil)
	if s := d.str(m["_type"], "_type"); d.err == nil && s != "registry-plugin" {
		d.fail("_type", "must be \"registry-plugin\", got %q", s)
	}
	got := d.match(m["name"], pluginNameRE, "name")
	if d.err != nil {
		return nil, d.err
	}
	if got != name {
		return nil, &Error{Class: ClassWrongSoftware, Where: where,
			What: fmt.Sprintf("wrong software attack: the tree pins this plugin document for %q, but it describes %q", name, got),
			Fix:  "the server hands out another plugin's document; use another mirror and report it"}
	}
	pd := &PluginDocument{Name: got, Releases: map[string]*Release{}}
	versions := d.anyObject(m["versions"], "versions")
	if d.err == nil && len(versions) == 0 {
		d.fail("versions", "must be a non-empty object")
	}
	for _, ver := range sortedKeys(versions) {
		sv, ok := ParseVersion(ver)
		if !ok {
			d.fail("versions", "key %q is not a strict semver without '+'", ver)
			break
		}
		pd.Releases[ver] = d.release(versions[ver], "versions."+ver, name, ver, sv)
		if d.err != nil {
			break
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return pd, nil
}

func pathTraversal(where, format string, args ...any) *Error {
	return &Error{Class: ClassPathTraversal, Where: where, What: fmt.Sprintf(format, args...),
		Fix: "the registry's metadata points outside the release's directory; report it to the registry owners"}
}

// sortedVersions returns the releases from highest to lowest.
func (p *PluginDocument) sortedVersions() []*Release {
	out := make([]*Release, 0, len(p.Releases))
	for _, r := range p.Releases {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return compareVersions(out[i].SemVer, out[j].SemVer) > 0 })
	return out
}
