package verifier

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
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
	return Pin{SHA256: d.match(m["sha256"], sha256RE, path+".sha256"), Size: d.integer(m["size"], path+".size", 1)}
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

// ParseTopDocument reads registry.json (after its signatures were checked).
func ParseTopDocument(data []byte) (*TopDocument, error) {
	v, err := ParseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "registry.json: " + err.Error(), Where: "registry.json",
			Fix: "the signed registry.json is not valid JSON; report it to the registry owners"}
	}
	// The format version is read first: a newer format is "unsupported", not "malformed".
	if m, ok := v.(map[string]any); ok {
		if fv, ok := m["format_version"]; ok {
			got := fmt.Sprint(fv)
			if got != "2" {
				return nil, &Error{Class: ClassUnsupportedFormat, Where: "registry.json",
					What: fmt.Sprintf("registry.json has format_version %s; this verifier reads format 2", got),
					Fix:  "upgrade the verifier, or use a registry that publishes format 2"}
			}
		}
	}
	d := &doc{class: ClassMalformed, where: "registry.json"}
	top := d.object(v, "", []string{"format_version", "version", "generated_at", "expires_at", "root_version",
		"registry", "tree", "catalog"}, []string{"counts"})
	d.integer(top["format_version"], "format_version", 2)
	t := &TopDocument{}
	t.Version = d.integer(top["version"], "version", 0)
	t.GeneratedAt = d.time(top["generated_at"], "generated_at")
	t.ExpiresAt = d.time(top["expires_at"], "expires_at")
	t.RootVersion = d.integer(top["root_version"], "root_version", 1)
	reg := d.object(top["registry"], "registry", []string{"name"}, []string{"description", "base_url", "host"})
	t.Name = d.str(reg["name"], "registry.name")
	if s, ok := reg["description"]; ok {
		d.str(s, "registry.description")
	}
	if s, ok := reg["base_url"]; ok {
		t.BaseURL = d.str(s, "registry.base_url")
	}
	if h, ok := reg["host"]; ok {
		host := d.object(h, "registry.host", []string{"name", "versions"}, nil)
		t.HostName = d.str(host["name"], "registry.host.name")
		t.HostRange = d.str(host["versions"], "registry.host.versions")
	}
	t.Tree = d.pin(top["tree"], "tree")
	t.Catalog = d.pin(top["catalog"], "catalog")
	if c, ok := top["counts"]; ok {
		counts := d.object(c, "counts", []string{"plugins", "releases"}, nil)
		d.integer(counts["plugins"], "counts.plugins", 0)
		d.integer(counts["releases"], "counts.releases", 0)
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
	v, err := ParseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "tree node: " + err.Error(), Where: where, Fix: "report it to the registry owners"}
	}
	d := &doc{class: ClassMalformed, where: where}
	m := d.object(v, "", []string{"_type", "format_version", "prefix"}, []string{"children", "plugins"})
	if s := d.str(m["_type"], "_type"); d.err == nil && s != "registry-node" {
		d.fail("_type", "must be \"registry-node\", got %q", s)
	}
	if d.integer(m["format_version"], "format_version", 0) != FormatVersion && d.err == nil {
		d.fail("format_version", "must be 2")
	}
	got := d.str(m["prefix"], "prefix")
	_, hasC := m["children"]
	_, hasP := m["plugins"]
	if d.err == nil && hasC == hasP {
		d.fail("", "a node has exactly one of children and plugins")
	}
	n := &node{}
	if hasC {
		n.children = map[string]Pin{}
		c := d.anyObject(m["children"], "children")
		for _, k := range sortedKeys(c) {
			if !hexDigitRE.MatchString(k) {
				d.fail("children", "child %q is not one lower-case hex digit", k)
			}
			n.children[k] = d.pin(c[k], "children."+k)
		}
	} else {
		n.plugins = map[string]Pin{}
		p := d.anyObject(m["plugins"], "plugins")
		for _, k := range sortedKeys(p) {
			n.plugins[k] = d.pin(p[k], "plugins."+k)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if got != prefix {
		return nil, mixAndMatch(where, "tree node has prefix %q where prefix %q belongs", got, prefix)
	}
	for name := range n.plugins {
		if !pluginNameRE.MatchString(name) {
			return nil, mixAndMatch(where, "tree leaf %q lists %q, which is not a plugin name", prefix, name)
		}
		if k := sha256Hex([]byte(name)); k[:len(prefix)] != prefix {
			return nil, mixAndMatch(where, "tree leaf %q lists plugin %q, whose key %s does not start with the prefix", prefix, name, k)
		}
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

func (d *doc) fileRef(v any, path string) FileRef {
	m := d.object(v, path, []string{"path", "sha256", "size"}, nil)
	return FileRef{Path: d.str(m["path"], path+".path"), SHA256: d.match(m["sha256"], sha256RE, path+".sha256"),
		Size: d.integer(m["size"], path+".size", 0)}
}

func (d *doc) optString(v any, path string) *string {
	if v == nil {
		return nil
	}
	s := d.str(v, path)
	return &s
}

var releaseFields = []string{"description", "license", "abi", "host", "exports", "permissions", "limits", "dependencies",
	"manifest", "wasm", "signers", "published_at", "yanked", "smoke", "authors", "keywords", "homepage", "repository"}

func parsePluginDocument(data []byte, name, where string) (*PluginDocument, error) {
	v, err := ParseStrictJSON(data)
	if err != nil {
		return nil, &Error{Class: ClassMalformed, What: "plugin document: " + err.Error(), Where: where, Fix: "report it to the registry owners"}
	}
	d := &doc{class: ClassMalformed, where: where}
	m := d.object(v, "", []string{"_type", "format_version", "name", "versions"}, nil)
	if s := d.str(m["_type"], "_type"); d.err == nil && s != "registry-plugin" {
		d.fail("_type", "must be \"registry-plugin\", got %q", s)
	}
	if d.integer(m["format_version"], "format_version", 0) != FormatVersion && d.err == nil {
		d.fail("format_version", "must be 2")
	}
	got := d.str(m["name"], "name")
	pd := &PluginDocument{Name: got, Releases: map[string]*Release{}}
	versions := d.anyObject(m["versions"], "versions")
	for _, ver := range sortedKeys(versions) {
		path := "versions." + ver
		sv, ok := ParseVersion(ver)
		if !ok {
			d.fail(path, "%q is not a strict semver version", ver)
			break
		}
		e := d.object(versions[ver], path, releaseFields, nil)
		r := &Release{Name: got, Version: ver, SemVer: sv, Limits: map[string]int64{}, Dependencies: map[string]string{}}
		d.str(e["description"], path+".description")
		d.str(e["license"], path+".license")
		r.ABI = d.str(e["abi"], path+".abi")
		r.Host = d.optString(e["host"], path+".host")
		r.Exports = d.strings(e["exports"], path+".exports", nil, false)
		r.Permissions = d.strings(e["permissions"], path+".permissions", permissionRE, true)
		lim := d.anyObject(e["limits"], path+".limits")
		for _, k := range sortedKeys(lim) {
			r.Limits[k] = d.integer(lim[k], path+".limits."+k, 0)
		}
		deps := d.anyObject(e["dependencies"], path+".dependencies")
		for _, k := range sortedKeys(deps) {
			if !pluginNameRE.MatchString(k) {
				d.fail(path+".dependencies", "%q is not a plugin name", k)
			}
			r.Dependencies[k] = d.str(deps[k], path+".dependencies."+k)
		}
		r.Manifest = d.fileRef(e["manifest"], path+".manifest")
		r.Wasm = d.fileRef(e["wasm"], path+".wasm")
		r.Signers = d.strings(e["signers"], path+".signers", keyIDRE, true)
		r.PublishedAt = d.time(e["published_at"], path+".published_at")
		if y := e["yanked"]; y != nil {
			ym := d.object(y, path+".yanked", []string{"reason"}, nil)
			r.Yanked = true
			r.YankReason = d.str(ym["reason"], path+".yanked.reason")
		}
		for i, s := range d.array(e["smoke"], path+".smoke") {
			sm := d.object(s, fmt.Sprintf("%s.smoke[%d]", path, i), []string{"name"}, []string{"fuel", "peak_memory"})
			d.str(sm["name"], path+".smoke.name")
		}
		d.strings(e["authors"], path+".authors", nil, false)
		d.strings(e["keywords"], path+".keywords", nil, false)
		d.optString(e["homepage"], path+".homepage")
		d.optString(e["repository"], path+".repository")
		pd.Releases[ver] = r
	}
	if d.err != nil {
		return nil, d.err
	}
	if got != name {
		return nil, &Error{Class: ClassWrongSoftware, Where: where,
			What: fmt.Sprintf("wrong software attack: the plugin document for %q describes %q", name, got),
			Fix:  "the server hands out another plugin's document; use another mirror and report it"}
	}
	for ver, r := range pd.Releases {
		prefix := "plugins/" + name + "/" + ver + "/"
		if r.Manifest.Path != prefix+"plugin.toml" {
			return nil, pathTraversal(where, "manifest path %q of %s %s is not %splugin.toml", r.Manifest.Path, name, ver, prefix)
		}
		file := r.Wasm.Path[min(len(prefix), len(r.Wasm.Path)):]
		if r.Wasm.Path[:min(len(prefix), len(r.Wasm.Path))] != prefix || !fileNameRE.MatchString(file) || file == "." || file == ".." {
			return nil, pathTraversal(where, "wasm path %q of %s %s is not %s<file name>", r.Wasm.Path, name, ver, prefix)
		}
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
	sort.Slice(out, func(i, j int) bool { return out[i].SemVer.GreaterThan(out[j].SemVer) })
	return out
}
