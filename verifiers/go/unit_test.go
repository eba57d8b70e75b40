package verifier

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

func TestStrictJSONRefusals(t *testing.T) {
	bad := map[string]string{
		"duplicate member":     `{"a": 1, "a": 2}`,
		"nested duplicate":     `{"x": {"b": true, "b": false}}`,
		"byte order mark":      "\ufeff{}",
		"invalid UTF-8":        "{\"a\": \"\xff\"}",
		"lone high surrogate":  `{"a": "\ud800"}`,
		"lone low surrogate":   `{"a": "\udc00x"}`,
		"high then non-low":    `{"a": "\ud800\u0041"}`,
		"NaN":                  `{"a": NaN}`,
		"Infinity":             `{"a": Infinity}`,
		"trailing data":        `{} {}`,
		"integer beyond 2^53":  `{"a": 9007199254740993}`,
		"negative beyond 2^53": `[-9007199254740993]`,
		"trailing comma":       `{"a": 1,}`,
		"deep nesting":         strings.Repeat("[", 100) + strings.Repeat("]", 100),
		"single quotes":        `{'a': 1}`,
	}
	for name, text := range bad {
		if _, err := ParseStrictJSON([]byte(text)); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		}
	}
	for _, ok := range []string{`{"a": "\ud83d\ude00", "b": [1, 2.5, -0, 9007199254740992]}`, `"x"`, `{"a":{"b":{}}}`} {
		if _, err := ParseStrictJSON([]byte(ok)); err != nil {
			t.Errorf("refused %q: %v", ok, err)
		}
	}
}

func TestIntegersAreWrittenAsIntegers(t *testing.T) {
	for _, text := range []string{`{"n": 2.0}`, `{"n": 2e0}`, `{"n": "2"}`, `{"n": true}`} {
		v, err := ParseStrictJSON([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		d := &doc{class: ClassMalformed}
		d.integer(v.(map[string]any)["n"], "n", 0)
		if d.err == nil {
			t.Errorf("%s read as an integer", text)
		}
	}
}

func TestUnknownAndCaseVariantMembersAreRefused(t *testing.T) {
	// encoding/json's struct decoding matches member names case-insensitively; ours is exact.
	for _, text := range []string{`{"Sha256": "` + strings.Repeat("a", 64) + `", "size": 1}`,
		`{"sha256": "` + strings.Repeat("a", 64) + `", "size": 1, "extra": 0}`} {
		v, _ := ParseStrictJSON([]byte(text))
		d := &doc{class: ClassMalformed}
		d.pin(v, "pin")
		if d.err == nil {
			t.Errorf("accepted %s", text)
		}
	}
}

func TestRangeGrammar(t *testing.T) {
	cases := []struct {
		rng     string
		yes, no []string
	}{
		{"^1.2", []string{"1.2.0", "1.9.9"}, []string{"1.1.9", "2.0.0", "2.0.0-rc.1", "1.5.0-beta"}},
		{"^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.3.0", "0.2.2"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4", "0.0.2"}},
		{"^0", []string{"0.0.0", "0.9.9"}, []string{"1.0.0"}},
		{"~1.2", []string{"1.2.0", "1.2.9"}, []string{"1.3.0"}},
		{"~1.2.3", []string{"1.2.3", "1.2.8"}, []string{"1.3.0", "1.2.2"}},
		{"~1", []string{"1.0.0", "1.9.0"}, []string{"2.0.0"}},
		{"1.2", []string{"1.2.0", "1.2.5"}, []string{"1.3.0"}},
		{"1.x", []string{"1.0.0", "1.5.1"}, []string{"2.0.0"}},
		{"1.2.*", []string{"1.2.7"}, []string{"1.3.0"}},
		{"1.2.3", []string{"1.2.3"}, []string{"1.2.4"}},
		{"=1.2.3", []string{"1.2.3"}, []string{"1.2.4"}},
		{">=1.0.0 <2.0.0", []string{"1.0.0", "1.9.9"}, []string{"2.0.0", "0.9.0"}},
		{">=0.2.0, <1.0.0", []string{"0.2.0"}, []string{"1.0.0"}},
		{">=0.2.0 ,<1.0.0", []string{"0.5.0"}, []string{"1.0.0"}},
		{"<1.1 || >=2", []string{"1.0.9", "2.0.0", "3.1.0"}, []string{"1.1.0", "1.5.0"}},
		{">1", []string{"2.0.0"}, []string{"1.9.9"}},
		{">1.2", []string{"1.3.0"}, []string{"1.2.9"}},
		{"<=1.2", []string{"1.2.9"}, []string{"1.3.0"}},
		{"*", []string{"0.0.1", "9.9.9"}, []string{"1.0.0-alpha"}},
		{">=1.2.3-beta.2 <1.3.0", []string{"1.2.3-beta.2", "1.2.3-rc.1", "1.2.3", "1.2.9"}, []string{"1.2.3-beta.1", "1.2.4-rc.1"}},
		{"1.2.3-rc.1", []string{"1.2.3-rc.1"}, []string{"1.2.3"}},
	}
	for _, c := range cases {
		r, err := ParseRange(c.rng)
		if err != nil {
			t.Errorf("%q: %v", c.rng, err)
			continue
		}
		for _, v := range c.yes {
			if sv, _ := ParseVersion(v); !r.Match(sv) {
				t.Errorf("%q should match %s", c.rng, v)
			}
		}
		for _, v := range c.no {
			if sv, _ := ParseVersion(v); r.Match(sv) {
				t.Errorf("%q should not match %s", c.rng, v)
			}
		}
	}
	for _, bad := range []string{"", " 1.0", "1.0 ", "1.0.0 - 2.0.0", "!=1.0.0", "x", ">= 1.0", "1.x.3", "1.2.x-beta",
		"^1.2.3+build", "01.2.3", "1.0 ||", "|| 1.0", "1.0,", ",1.0", "1.0 ,, 2.0", "v1.2.3", "~>1.2", "1.2.3.4", strings.Repeat("1", 300)} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("accepted range %q", bad)
		} else if AsError(err).Class != ClassBadRequirement {
			t.Errorf("%q: class %s", bad, AsError(err).Class)
		}
	}
	for _, exact := range []string{"1.2.3", "=1.2.3", "1.2.3-rc.1"} {
		if r, _ := ParseRange(exact); !r.Exact() {
			t.Errorf("%q is an exact pin", exact)
		}
	}
	for _, notExact := range []string{"^1.2.3", "1.2", ">=1.2.3", "1.2.3 || 1.2.4", "1.2.3 1.2.3"} {
		if r, _ := ParseRange(notExact); r.Exact() {
			t.Errorf("%q is not an exact pin", notExact)
		}
	}
	for _, bad := range []string{"Validate_email", "a", "x/../y", "name\n", "name@", ""} {
		if _, err := ParseRequirement(bad); err == nil {
			t.Errorf("accepted requirement %q", bad)
		}
	}
}

func keyLine(pk []byte) string {
	return base64.StdEncoding.EncodeToString(append([]byte("Ed\x01\x02\x03\x04\x05\x06\x07\x08"), pk...))
}

func TestSmallOrderAndNonCanonicalKeysAreRefused(t *testing.T) {
	p := []byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	identity := make([]byte, 32)
	identity[0] = 1
	for name, pk := range map[string][]byte{"identity (y=1)": identity, "y=0": make([]byte, 32), "y=p (non-canonical 0)": p} {
		if _, err := ParsePublicKey([]byte(keyLine(pk))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The forgery the rule prevents: R = identity, S = 0 verifies any message under the identity key.
	forged := append(append([]byte(nil), identity...), make([]byte, 32)...)
	if !ed25519.Verify(ed25519.PublicKey(identity), []byte("any message"), forged) {
		t.Skip("this crypto/ed25519 refuses the forgery itself")
	}
	good := newTestKey("alice")
	if _, err := ParsePublicKey([]byte(keyLine(good.pub().Key))); err != nil {
		t.Fatal(err)
	}
}

func TestSignatureFileFormat(t *testing.T) {
	k := newTestKey("alice")
	data := []byte("data")
	sig := k.sign(data, "timestamp:0")
	if _, err := VerifySignature(k.pub(), data, sig, false); err != nil {
		t.Fatal(err)
	}
	mutations := map[string][]byte{
		"CR line ends":        []byte(strings.ReplaceAll(string(sig), "\n", "\r\n")),
		"blank line":          []byte(strings.Replace(string(sig), "\n", "\n\n", 1)),
		"fifth line":          append(append([]byte(nil), sig...), []byte("extra\n")...),
		"base64 with a space": []byte(strings.Replace(string(sig), "\ntrusted", " \ntrusted", 1)),
		"changed comment":     []byte(strings.Replace(string(sig), "timestamp:0", "timestamp:1", 1)),
	}
	for name, m := range mutations {
		if _, err := VerifySignature(k.pub(), data, m, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := VerifySignature(k.pub(), []byte("other"), sig, false); AsError(err).Code != "bad-signature" {
		t.Errorf("other data: %v", err)
	}
}

// No error is no refusal: AsError(nil) is nil (a host calls it on every result), never a panic.
func TestAsErrorOfNilIsNil(t *testing.T) {
	if e := AsError(nil); e != nil {
		t.Fatalf("AsError(nil) = %v, want nil", e)
	}
}

// Every refusal of an exported call is a *Error with a class (docs/client-go.md): bad input to
// the parsers is malformed (AsError used to label ParseStrictJSON's and ModuleImports' plain
// errors network, and ParseRoot, ParseManifest, ParsePublicKey and ParseSignature returned an
// empty class: a message starting ": ", exit code 1).
func TestExportedParsersRefuseWithAClassedError(t *testing.T) {
	direct := func(name string, err error) *Error {
		t.Helper()
		e, ok := err.(*Error)
		if !ok || e == nil {
			t.Fatalf("%s: %T %v, want a *Error", name, err, err)
		}
		if e.Class == "" || strings.HasPrefix(e.Error(), ":") {
			t.Fatalf("%s: no class: %q", name, e.Error())
		}
		return e
	}
	malformed := func(name string, err error) {
		t.Helper()
		if e := direct(name, err); e.Class != ClassMalformed || e.ExitCode() != 1 {
			t.Fatalf("%s: class %s, want malformed", name, e.Class)
		}
	}
	_, err := ParseStrictJSON([]byte(`{"a":1,"a":2}`))
	malformed("ParseStrictJSON duplicate", err)
	_, err = ParseStrictJSON([]byte(`{"a":1} x`))
	malformed("ParseStrictJSON trailing data", err)
	_, err = ParseStrictJSON([]byte("\xff"))
	malformed("ParseStrictJSON not UTF-8", err)
	_, err = ModuleImports([]byte("notwasm"))
	malformed("ModuleImports", err)
	_, err = ParseRoot([]byte(`{}`), "r")
	malformed("ParseRoot {}", err)
	_, err = ParseRoot([]byte(`xx`), "r")
	malformed("ParseRoot garbage", err)
	_, err = ParseManifest([]byte("x ="))
	malformed("ParseManifest", err)
	_, err = ParsePublicKey([]byte("nope"))
	malformed("ParsePublicKey", err)
	_, err = ParseSignature([]byte("nope"))
	malformed("ParseSignature", err)
	_, err = ParseTopDocument([]byte("{}"))
	direct("ParseTopDocument", err)
	_, err = ParseRange("^^1")
	direct("ParseRange", err)
	_, err = ParseRequirement("Bad Name")
	direct("ParseRequirement", err)
	_, err = ParseLockfile([]byte("garbage\n"), "l")
	direct("ParseLockfile", err)
}
