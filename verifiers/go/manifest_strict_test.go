package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// The embedded schema is the repository's.
func TestPluginSchemaCopyIsCurrent(t *testing.T) {
	repo, err := os.ReadFile("../../schemas/plugin.schema.json")
	if err != nil {
		t.Skip("not in a registry-tool checkout")
	}
	if !bytes.Equal(repo, pluginSchemaJSON) {
		t.Fatal("verifiers/go/plugin.schema.json differs from schemas/plugin.schema.json: copy it")
	}
}

const strictBase = `[plugin]
name = "deep"
version = "1.0.0"
description = "d"
authors = ["a"]
license = "MIT"
abi = "core"

[artifact]
file = "deep.wasm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1

[exports]
functions = ["run"]

[limits]
memory = "16MiB"
`

// The verdicts of the Python client's parse_manifest on a few manifests (conformance decision 11,
// step 4); the conformance cases manifest-strict-* hold the rest.
func TestManifestStrictFollowsPython(t *testing.T) {
	for _, c := range []struct {
		edit func(string) string
		ok   bool
	}{
		{func(s string) string { return s }, true},
		{func(s string) string { return strings.Replace(s, `"16MiB"`, `"16 MiB"`, 1) }, true},
		{func(s string) string { return strings.Replace(s, `"16MiB"`, `"16MiB\n"`, 1) }, false},
		{func(s string) string { return strings.Replace(s, "size = 1\n", "size = 1.0\n", 1) }, true},
		{func(s string) string { return strings.Replace(s, `"16MiB"`, `"16mib"`, 1) }, false},
		{func(s string) string { return strings.Replace(s, `"16MiB"`, `"16MiB\n\n"`, 1) }, false},
		{func(s string) string { return strings.Replace(s, `"16MiB"`, "\"16\u00a0MiB\"", 1) }, false},
		{func(s string) string { return s + "fuel = 0\n" }, false},
		{func(s string) string { return s + "\n[x]\n" }, false},
		{func(s string) string {
			return strings.Replace(s, `abi = "core"`, `abi = "core"`+"\npermissions = { a = true }", 1)
		}, false},
		{func(s string) string { return s + "\n[permissions]\n\"Any Name\" = false\n" }, true},
		{func(s string) string { return s + "\n[[tests]]\nexpect_keys = { a = 0 }\n" }, false},
		{func(s string) string { return s + "\n[[tests]]\nexpect_keys = { a = false }\n" }, true},
	} {
		text := c.edit(strictBase)
		if err := CheckManifestStrict([]byte(text)); (err == nil) != c.ok {
			t.Errorf("%q: accepted %v, want %v (%v)", text[strings.Index(text, "[limits]"):], err == nil, c.ok, err)
		}
	}
}

func TestPythonConversions(t *testing.T) {
	for f, want := range map[float64]string{1.5: "1.5", 100: "100.0", 1e16: "1e+16", 1e-5: "1e-05", 0.0001: "0.0001", -2.5e-7: "-2.5e-07", 123.456: "123.456"} {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("repr(%v) = %q, want %q", f, got, want)
		}
	}
	for s, want := range map[string]int64{" 1_100 ": 1100, "+5": 5, "-0": 0} {
		if got, ok := pyInt(s); !ok || got != want {
			t.Errorf("int(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"1__0", "_1", "x", ""} {
		if _, ok := pyInt(s); ok {
			t.Errorf("int(%q) accepted", s)
		}
	}
	for _, u := range []string{"ftp://h/", "http:///", "http://h:99999/", "plugins/", "", "http://[::1/", "http://h:+1/",
		"http://h\uFF0Fx/", "http://a\u2100b/", "http://u\uFF20@h/", "file://h\u2047/", "http://[::1]\uFF1A/",
		"http://[::1%1%2]/", "http://[fe80::1%%]/", "http://[fe80::1%]/", "http://[v1.]/", "http://[V1.a]/",
		"http://u:p@h/", "http://@h/", "https://token@h:8443/x/", "file://u@/x/"} {
		if lockedRegistryProblem(u) == "" {
			t.Errorf("registry %q accepted", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080/", "HTTPS://H/", "file:///x/", " http://h/ ", "http://[::1]/",
		"http://\u00e9/", "http://h/\uFF0F", "http://[fe80::1%a b]/", "http://[fe80::1%\u00e9]/", "http://[v1.a b]/",
		"http://[v1.\u00e9]/", "http://[vF.:]/", "http://h/a@b/", "file:///home/a@b/site/"} {
		if why := lockedRegistryProblem(u); why != "" {
			t.Errorf("registry %q refused: %s", u, why)
		}
	}
}

// conformance/url-vectors.json holds the Python client's answers: how normalise_url spells an
// accepted registry URL and how a refused one is shown.
func TestRegistryURLVectors(t *testing.T) {
	raw, err := os.ReadFile("../../conformance/url-vectors.json")
	if err != nil {
		t.Skip("not in a registry-tool checkout")
	}
	var v struct{ Canonical, Redacted [][2]string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Canonical {
		if got := canonicalRegistryURL(c[0]); got != c[1] {
			t.Errorf("canonicalRegistryURL(%q) = %q, Python spells it %q", c[0], got, c[1])
		}
	}
	for _, c := range v.Redacted {
		if got := redactedURL(c[0]); got != c[1] {
			t.Errorf("redactedURL(%q) = %q, Python shows %q", c[0], got, c[1])
		}
	}
	// No piece of a password in any message: "https://ci:sec/ret@host/" has the port "sec".
	for u, piece := range map[string]string{"http://u:secret@127.0.0.1:1/": "secret", "https://ci:ab/secret=@host/": "secret",
		"HTTP://U:SECRET@H/": "SECRET", "https://ci:sec/ret@host/": "sec", "http://[u:secret@::1]/": "secret"} {
		_, err := normaliseURL(u)
		var e *Error
		if !errors.As(err, &e) || e.Class != ClassNetwork || strings.Contains(e.Error(), piece) {
			t.Errorf("a registry URL with credentials %q: %v", u, err)
		}
		if why := lockedRegistryProblem(u); why == "" || strings.Contains(why, piece) {
			t.Errorf("lockedRegistryProblem(%q) = %q", u, why)
		}
	}
}
