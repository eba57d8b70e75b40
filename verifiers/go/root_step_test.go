package verifier

import (
	"encoding/json"
	"testing"
)

// The key id and revocation rules of a root chain step (docs/trust.md 5.1 rule 7 and 5.5 step 4,
// conformance/README.md decision 2), on roots built here and signed by their one root key.

type stepKeys struct {
	root, index, alice, bob, carol, mallory testKey
}

func newStepKeys() stepKeys {
	return stepKeys{root: newTestKey("step root"), index: newTestKey("step index"), alice: newTestKey("step alice"),
		bob: newTestKey("step bob"), carol: newTestKey("step carol"), mallory: newTestKey("step mallory")}
}

// impostorOf is another Ed25519 key under k's key number: the same key id, another public key.
func impostorOf(k testKey, label string) testKey {
	imp := newTestKey("step impostor " + label)
	imp.keynum = k.keynum
	return imp
}

func keyEntry(k testKey) map[string]any { return map[string]any{"public_key": k.line()} }

func revocation(k testKey, version int, at string, keep bool, plugins ...string) map[string]any {
	if plugins == nil {
		plugins = []string{}
	}
	return map[string]any{"keyid": k.id(), "public_key": k.line(), "revoked_in_version": version, "revoked_at": at,
		"keep_prior_releases": keep, "plugins": plugins}
}

// stepBase is root 1: alice maintains hello-* and exact, bob bob_plugin; carol was revoked
// (keeping prior releases of carol_plugin and carol-*).
func stepBase(ks stepKeys) map[string]any {
	return map[string]any{
		"_type": "registry-root", "spec_version": 1, "registry": "step-registry", "version": 1,
		"expires": "2030-01-01T00:00:00Z",
		"keys": map[string]any{ks.root.id(): keyEntry(ks.root), ks.index.id(): keyEntry(ks.index),
			ks.alice.id(): keyEntry(ks.alice), ks.bob.id(): keyEntry(ks.bob)},
		"roles": map[string]any{
			"root":  map[string]any{"keyids": []string{ks.root.id()}, "threshold": 1},
			"index": map[string]any{"keyids": []string{ks.index.id()}, "threshold": 1},
		},
		"maintainers": map[string]any{
			"alice": map[string]any{"keyids": []string{ks.alice.id()}, "plugins": []string{"hello-*", "exact"}},
			"bob":   map[string]any{"keyids": []string{ks.bob.id()}, "plugins": []string{"bob_plugin"}},
		},
		"plugin_thresholds": map[string]any{},
		"revoked":           []any{revocation(ks.carol, 1, "2026-01-01T00:00:00Z", true, "carol_plugin", "carol-*")},
	}
}

func copyDoc(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(canonical(doc), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(v any) map[string]any { return v.(map[string]any) }

// stepCode is the trust code of the step from doc to doc edited as version 2 ("" when accepted).
func stepCode(t *testing.T, ks stepKeys, doc map[string]any, edit func(map[string]any)) string {
	t.Helper()
	prev, err := ParseRoot(canonical(doc), "")
	if err != nil {
		t.Fatalf("root 1: %v", err)
	}
	next := copyDoc(t, doc)
	next["version"] = 2
	edit(next)
	raw := canonical(next)
	// Signed by the root key and by another key under its key id (which counts where a step binds
	// the id to that key), so a step that rebinds the root key id meets both thresholds.
	comment := "registry-root\tregistry:step-registry\tversion:2"
	sigs := [][]byte{ks.root.sign(raw, comment), impostorOf(ks.root, "root").sign(raw, comment)}
	if _, err := VerifyRootStep(prev, raw, sigs); err != nil {
		return AsError(err).Code
	}
	return ""
}

// revokeAlice removes alice from keys and maintainers and revokes her in version 2.
func revokeAlice(ks stepKeys, at string, plugins ...string) func(map[string]any) {
	return func(d map[string]any) {
		delete(obj(d["keys"]), ks.alice.id())
		delete(obj(d["maintainers"]), "alice")
		d["revoked"] = append(d["revoked"].([]any), revocation(ks.alice, 2, at, true, plugins...))
	}
}

func carolEntry(d map[string]any) map[string]any { return obj(d["revoked"].([]any)[0]) }

func TestRootStepKeyIDsAndRevocations(t *testing.T) {
	ks := newStepKeys()
	base := stepBase(ks)
	cases := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"unchanged", func(map[string]any) {}, ""},
		// A key id of both versions names the same public key, whatever lists it.
		{"root key id rebound", func(d map[string]any) {
			obj(d["keys"])[ks.root.id()] = keyEntry(impostorOf(ks.root, "root"))
		}, "root-continuity"},
		{"index key id rebound", func(d map[string]any) {
			obj(d["keys"])[ks.index.id()] = keyEntry(impostorOf(ks.index, "index"))
		}, "root-continuity"},
		{"maintainer key id rebound", func(d map[string]any) {
			obj(d["keys"])[ks.alice.id()] = keyEntry(impostorOf(ks.alice, "alice"))
		}, "root-continuity"},
		{"key id of a key rebound by its revocation", func(d map[string]any) {
			delete(obj(d["keys"]), ks.bob.id())
			delete(obj(d["maintainers"]), "bob")
			d["revoked"] = append(d["revoked"].([]any), revocation(impostorOf(ks.bob, "bob"), 2, "2026-02-01T00:00:00Z", false))
		}, "root-continuity"},
		{"revocation swapped for another key under its key id", func(d map[string]any) {
			d["revoked"] = []any{revocation(impostorOf(ks.carol, "carol"), 1, "2026-01-01T00:00:00Z", true, "carol_plugin", "carol-*")}
		}, "root-continuity"},
		{"new key under a new key id", func(d map[string]any) {
			obj(d["keys"])[ks.mallory.id()] = keyEntry(ks.mallory)
			m := obj(obj(d["maintainers"])["bob"])
			m["keyids"] = []any{ks.bob.id(), ks.mallory.id()}
		}, ""},
		// Within one root a key id names one public key (5.1 rule 7).
		{"revoked key id of a kept key", func(d map[string]any) {
			d["revoked"] = append(d["revoked"].([]any), revocation(impostorOf(ks.alice, "alice"), 2, "2026-02-01T00:00:00Z", false))
		}, "root-format"},
		{"revoked key id twice", func(d map[string]any) {
			d["revoked"] = append(d["revoked"].([]any), revocation(ks.mallory, 2, "2026-02-01T00:00:00Z", false),
				revocation(impostorOf(ks.mallory, "mallory"), 2, "2026-02-01T00:00:00Z", false))
		}, "root-format"},
		// An existing revocation is fixed but for its reason and keep_prior_releases true -> false.
		{"revocation widened", func(d map[string]any) {
			carolEntry(d)["plugins"] = []any{"carol_plugin", "carol-*", "exact"}
		}, "root-continuity"},
		{"revocation narrowed", func(d map[string]any) { carolEntry(d)["plugins"] = []any{"carol_plugin"} }, "root-continuity"},
		{"revocation backdated", func(d map[string]any) { carolEntry(d)["revoked_at"] = "2025-12-31T23:59:59Z" }, "root-continuity"},
		{"revocation under another key id", func(d map[string]any) {
			other := ks.carol
			other.keynum = [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
			d["revoked"] = []any{revocation(other, 1, "2026-01-01T00:00:00Z", true, "carol_plugin", "carol-*")}
		}, "root-continuity"},
		{"revocation dropped", func(d map[string]any) { d["revoked"] = []any{} }, "root-continuity"},
		{"revocation plugins reordered", func(d map[string]any) {
			carolEntry(d)["plugins"] = []any{"carol-*", "carol_plugin"}
		}, ""},
		{"revocation reason and keep_prior_releases true to false", func(d map[string]any) {
			carolEntry(d)["reason"] = "leaked earlier"
			carolEntry(d)["keep_prior_releases"] = false
		}, ""},
		// A new revocation: dated by the version's expiry, within the key's delegation.
		{"new revocation within the delegation", revokeAlice(ks, "2026-02-01T00:00:00Z", "hello-*", "exact"), ""},
		{"new revocation of a name under a prefix", revokeAlice(ks, "2026-02-01T00:00:00Z", "hello-world"), ""},
		{"new revocation of a narrower prefix", revokeAlice(ks, "2026-02-01T00:00:00Z", "hello-w*"), ""},
		{"new revocation for no plugin", revokeAlice(ks, "2026-02-01T00:00:00Z"), ""},
		{"new revocation at the expiry", revokeAlice(ks, "2030-01-01T00:00:00Z", "exact"), ""},
		{"new revocation after the expiry", revokeAlice(ks, "2030-01-01T00:00:01Z", "exact"), "root-continuity"},
		{"new revocation of a wider prefix", revokeAlice(ks, "2026-02-01T00:00:00Z", "hello*"), "root-continuity"},
		{"new revocation of every plugin", revokeAlice(ks, "2026-02-01T00:00:00Z", "*"), "root-continuity"},
		{"new revocation of a prefix of an exact name", revokeAlice(ks, "2026-02-01T00:00:00Z", "exact*"), "root-continuity"},
		{"new revocation of another maintainer's plugin", revokeAlice(ks, "2026-02-01T00:00:00Z", "exact", "bob_plugin"), "root-continuity"},
		{"new revocation of a key that was no maintainer", func(d map[string]any) {
			d["revoked"] = append(d["revoked"].([]any), revocation(ks.mallory, 2, "2026-02-01T00:00:00Z", true, "exact"))
		}, "root-continuity"},
		{"new revocation of a key that was no maintainer, for no plugin", func(d map[string]any) {
			d["revoked"] = append(d["revoked"].([]any), revocation(ks.mallory, 2, "2026-02-01T00:00:00Z", true))
		}, ""},
	}
	for _, c := range cases {
		if got := stepCode(t, ks, base, c.edit); got != c.want {
			t.Errorf("%s: code %q, want %q", c.name, got, c.want)
		}
	}
}

// A key delegated by two maintainers may be revoked for the patterns of both.
func TestNewRevocationMayNameEveryMaintainerHoldingTheKey(t *testing.T) {
	ks := newStepKeys()
	base := stepBase(ks)
	obj(base["maintainers"])["alice-too"] = map[string]any{"keyids": []string{ks.alice.id()}, "plugins": []string{"other"}}
	if got := stepCode(t, ks, base, func(d map[string]any) {
		delete(obj(d["maintainers"]), "alice-too")
		revokeAlice(ks, "2026-02-01T00:00:00Z", "exact", "other")(d)
	}); got != "" {
		t.Errorf("code %q, want accepted", got)
	}
}

func TestPatternWithin(t *testing.T) {
	for _, c := range []struct {
		inner, outer string
		want         bool
	}{
		{"exact", "exact", true}, {"exact", "exac", false}, {"exact*", "exact", false},
		{"hello-*", "hello*", true}, {"hello*", "hello-*", false}, {"hello-x", "hello-*", true},
		{"hello", "hello*", true}, {"*", "*", true}, {"a*", "*", true}, {"*", "a*", false},
	} {
		if got := patternWithin(c.inner, c.outer); got != c.want {
			t.Errorf("patternWithin(%q, %q) = %v", c.inner, c.outer, got)
		}
	}
}
