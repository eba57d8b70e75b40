package verifier

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// A format-2 site built in memory by the tests (keys derived from fixed seeds, like the vectors),
// served on 127.0.0.1 with per-path faults.

type testKey struct {
	sk     ed25519.PrivateKey
	keynum [8]byte
}

func newTestKey(label string) testKey {
	seed := sha256.Sum256([]byte("go-verifier test " + label))
	kn := sha256.Sum256(seed[:])
	var k testKey
	k.sk = ed25519.NewKeyFromSeed(seed[:])
	copy(k.keynum[:], kn[:8])
	return k
}

func (k testKey) pub() PublicKey {
	return PublicKey{KeyNum: k.keynum, Key: k.sk.Public().(ed25519.PublicKey)}
}

func (k testKey) id() string { return k.pub().KeyID() }

func (k testKey) line() string {
	return base64.StdEncoding.EncodeToString(append(append([]byte("Ed"), k.keynum[:]...), k.pub().Key...))
}

func (k testKey) sign(data []byte, comment string) []byte {
	h := blake2b.Sum512(data)
	sig := ed25519.Sign(k.sk, h[:])
	global := ed25519.Sign(k.sk, append(append([]byte(nil), sig...), comment...))
	blob := append(append([]byte("ED"), k.keynum[:]...), sig...)
	return []byte("untrusted comment: test\n" + base64.StdEncoding.EncodeToString(blob) + "\ntrusted comment: " + comment + "\n" +
		base64.StdEncoding.EncodeToString(global) + "\n")
}

func canonical(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

type testRelease struct {
	name, version string
	permissions   []string
	host          *string
	yanked        bool
	deps          map[string]string
	wasm          []byte
	publishedAt   string
	signer        *testKey // default: alice
}

type testSite struct {
	t                   *testing.T
	rootA, index, alice testKey
	mallory             testKey
	registry            string
	version             int64
	expires             string
	rootExpires         string
	files               map[string][]byte
	releases            []*testRelease
	leafMax             int
	mu                  sync.Mutex
	faults              map[string]string
	server              *httptest.Server
	requests            []string
	rootDoc             []byte
}

func newTestSite(t *testing.T) *testSite {
	s := &testSite{t: t, rootA: newTestKey("root-a"), index: newTestKey("index"), alice: newTestKey("alice"),
		mallory: newTestKey("mallory"), registry: "test-plugins", version: 5, expires: "2026-12-04T12:00:00Z",
		rootExpires: "2027-11-27T00:00:00Z", leafMax: 64, faults: map[string]string{}}
	s.server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.server.Close)
	s.add(&testRelease{name: "validate_email", version: "1.0.0"})
	s.add(&testRelease{name: "validate_email", version: "1.1.0", permissions: []string{"keys"}})
	s.add(&testRelease{name: "validate_email", version: "2.0.0", yanked: true})
	s.build()
	return s
}

func (s *testSite) url() string { return s.server.URL + "/" }

func (s *testSite) add(r *testRelease) {
	if r.wasm == nil {
		// A valid empty module with a custom section naming the release (distinct bytes per release).
		body := append([]byte{7}, "release"...)
		body = append(body, r.name+" "+r.version...)
		r.wasm = append([]byte("\x00asm\x01\x00\x00\x00\x00"), byte(len(body)))
		r.wasm = append(r.wasm, body...)
	}
	if r.publishedAt == "" {
		r.publishedAt = "2026-11-21T12:00:00Z"
	}
	s.releases = append(s.releases, r)
}

func (s *testSite) rootJSON() []byte {
	return canonical(map[string]any{
		"_type": "registry-root", "spec_version": 1, "registry": s.registry, "version": 1, "expires": s.rootExpires,
		"keys": map[string]any{
			s.rootA.id(): map[string]any{"public_key": s.rootA.line()},
			s.index.id(): map[string]any{"public_key": s.index.line()},
			s.alice.id(): map[string]any{"public_key": s.alice.line()},
		},
		"roles": map[string]any{
			"root":  map[string]any{"keyids": []string{s.rootA.id()}, "threshold": 1},
			"index": map[string]any{"keyids": []string{s.index.id()}, "threshold": 1},
		},
		"maintainers":       map[string]any{"alice": map[string]any{"keyids": []string{s.alice.id()}, "plugins": []string{"*"}}},
		"plugin_thresholds": map[string]any{},
		"revoked":           []any{},
	})
}

func (s *testSite) manifest(r *testRelease) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "[plugin]\nname = %q\nversion = %q\ndescription = \"test\"\nauthors = [\"t\"]\nlicense = \"MIT\"\nabi = \"core\"\n", r.name, r.version)
	if r.host != nil {
		fmt.Fprintf(&b, "\n[compatibility]\nhost = %q\n", *r.host)
	}
	fmt.Fprintf(&b, "\n[artifact]\nfile = \"%s.wasm\"\nsha256 = %q\nsize = %d\n", r.name, sha256Hex(r.wasm), len(r.wasm))
	fmt.Fprintf(&b, "\n[exports]\nfunctions = [%q]\n", r.name)
	if len(r.permissions) > 0 {
		b.WriteString("\n[permissions]\n")
		for _, p := range r.permissions {
			fmt.Fprintf(&b, "%s = true\n", p)
		}
	}
	if len(r.deps) > 0 {
		b.WriteString("\n[dependencies]\n")
		for _, k := range sortedKeys(r.deps) {
			fmt.Fprintf(&b, "%s = %q\n", k, r.deps[k])
		}
	}
	return []byte(b.String())
}

func (s *testSite) pinOf(b []byte) map[string]any {
	p := map[string]any{"sha256": sha256Hex(b), "size": len(b)}
	s.files["meta/"+sha256Hex(b)[:2]+"/"+sha256Hex(b)+".json"] = b
	return p
}

// build writes every file of the site from the releases.
func (s *testSite) build() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = map[string][]byte{}
	root := s.rootJSON()
	s.rootDoc = root
	s.files["root/1.root.json"] = root
	s.files["root/1.root.json."+s.rootA.id()+".minisig"] = s.rootA.sign(root, "registry-root\tregistry:"+s.registry+"\tversion:1")
	docs := map[string]map[string]any{}
	for _, r := range s.releases {
		dir := "plugins/" + r.name + "/" + r.version + "/"
		man := s.manifest(r)
		signer := s.alice
		if r.signer != nil {
			signer = *r.signer
		}
		s.files[dir+"plugin.toml"] = man
		s.files[dir+"plugin.toml.minisig"] = signer.sign(man, "timestamp:0\tfile:plugin.toml\tplugin:"+r.name+"\tversion:"+r.version)
		s.files[dir+r.name+".wasm"] = r.wasm
		perms := r.permissions
		if perms == nil {
			perms = []string{}
		}
		deps := r.deps
		if deps == nil {
			deps = map[string]string{}
		}
		var yanked any
		if r.yanked {
			yanked = map[string]any{"reason": "broken"}
		}
		var host any
		if r.host != nil {
			host = *r.host
		}
		if docs[r.name] == nil {
			docs[r.name] = map[string]any{}
		}
		docs[r.name][r.version] = map[string]any{
			"description": "test", "license": "MIT", "abi": "core", "host": host, "exports": []string{r.name},
			"permissions": perms, "limits": map[string]any{"fuel": 1000, "memory": 65536, "wall_time_ms": 1000},
			"dependencies": deps,
			"manifest":     map[string]any{"path": dir + "plugin.toml", "sha256": sha256Hex(man), "size": len(man)},
			"wasm":         map[string]any{"path": dir + r.name + ".wasm", "sha256": sha256Hex(r.wasm), "size": len(r.wasm)},
			"signers":      []string{signer.id()}, "published_at": r.publishedAt, "yanked": yanked, "smoke": nil,
			"authors": []string{"t"}, "keywords": []string{}, "homepage": nil, "repository": nil,
		}
	}
	pins := map[string]map[string]any{}
	for name, versions := range docs {
		pins[name] = s.pinOf(canonical(map[string]any{"_type": "registry-plugin", "format_version": 2, "name": name, "versions": versions}))
	}
	tree := s.node("", sortedKeys(pins), pins)
	catalog := s.pinOf(canonical(map[string]any{"_type": "registry-catalog", "format_version": 2, "plugins": map[string]any{}}))
	s.setTop(map[string]any{
		"format_version": 2, "version": s.version, "generated_at": "2026-11-27T12:00:00Z", "expires_at": s.expires,
		"root_version": 1,
		"registry": map[string]any{"name": s.registry, "description": "d", "base_url": s.url(),
			"host": map[string]any{"name": "h", "versions": ">=0.1.0"}},
		"tree": tree, "catalog": catalog, "counts": map[string]any{"plugins": len(docs), "releases": len(s.releases)},
	}, s.index)
}

func (s *testSite) setTop(top map[string]any, signer testKey) {
	b := canonical(top)
	s.files["registry.json"] = b
	s.files["registry.json.minisig"] = signer.sign(b, "timestamp:0\tfile:registry.json\thashed")
}

func (s *testSite) node(prefix string, names []string, pins map[string]map[string]any) map[string]any {
	if len(names) <= s.leafMax {
		plugins := map[string]any{}
		for _, n := range names {
			plugins[n] = pins[n]
		}
		return s.pinOf(canonical(map[string]any{"_type": "registry-node", "format_version": 2, "prefix": prefix, "plugins": plugins}))
	}
	groups := map[string][]string{}
	for _, n := range names {
		d := sha256Hex([]byte(n))[len(prefix) : len(prefix)+1]
		groups[d] = append(groups[d], n)
	}
	children := map[string]any{}
	for d, g := range groups {
		sort.Strings(g)
		children[d] = s.node(prefix+d, g, pins)
	}
	return s.pinOf(canonical(map[string]any{"_type": "registry-node", "format_version": 2, "prefix": prefix, "children": children}))
}

func (s *testSite) set(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

func (s *testSite) get(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

func (s *testSite) fault(path, mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = mode
}

func (s *testSite) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	s.mu.Lock()
	body, ok := s.files[path]
	mode := s.faults[path]
	s.requests = append(s.requests, path)
	s.mu.Unlock()
	switch mode {
	case "404":
		ok = false
	case "500":
		w.WriteHeader(500)
		return
	case "endless":
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 4096)
		for i := 0; i < 1<<14; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	case "slow":
		w.WriteHeader(200)
		for i := 0; i < 600; i++ {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(body)
}

func (s *testSite) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.requests)
	s.requests = nil
	return n
}
