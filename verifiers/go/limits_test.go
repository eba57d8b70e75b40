package verifier

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
)

const nestingManifest = `[plugin]
name = "deep"
version = "1.0.0"

[artifact]
file = "deep.wasm"
sha256 = "` + "0000000000000000000000000000000000000000000000000000000000000000" + `"
size = 1
`

// TestDeepTOMLIsMalformedBeforeParsing: 20,000 nested inline tables took the TOML parser 63 s and
// 16 GB; more than 64 open brackets or 64 dots in one key are refused before it runs.
func TestDeepTOMLIsMalformedBeforeParsing(t *testing.T) {
	deep := func(n int) map[string]string {
		dotted := strings.Repeat("a.", n) + "a"
		return map[string]string{
			"array":        "[x]\ny = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n",
			"inline table": "[x]\ny = " + strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n",
			"table header": "[" + dotted + "]\n",
			"array header": "[[" + dotted + "]]\n",
			"dotted key":   "[x]\n" + dotted + " = 1\n",
		}
	}
	for name, body := range deep(64) {
		if _, err := ParseManifest([]byte(nestingManifest + body)); err != nil {
			t.Errorf("%s, 64 levels: %v", name, err)
		}
	}
	for _, n := range []int{65, 5000} {
		for name, body := range deep(n) {
			start := time.Now()
			_, err := ParseManifest([]byte(nestingManifest + body))
			if err == nil || AsError(err).Class != ClassMalformed {
				t.Errorf("%s, %d levels: got %v, want malformed", name, n, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s, %d levels: took %v", name, n, d)
			}
		}
	}
	// Brackets and dots inside strings and comments, a float or a time per item: not nesting.
	many := strings.Repeat("[{.", 100)
	fine := []string{
		`s = "` + many + `"`, `s = '` + many + `'`, `s = """` + many + "\n" + many + `"""`,
		`s = '''` + many + "\n" + many + `'''`, `s = "\"` + many + `"`, `s = """a\"""` + many + `"""`,
		`s = """""` + many + `"""""`, "# " + many,
		`f = [` + strings.Repeat("1.5, ", 100) + `]`, "t = [" + strings.Repeat("07:32:00.999, ", 100) + "]",
	}
	for _, line := range fine {
		if p := tomlNestingProblem("[x]\n" + line + "\n"); p != "" {
			t.Errorf("%q: %s", line, p)
		}
	}
	for _, text := range []string{
		strings.Repeat("[", 65), strings.Repeat("{", 65), strings.Repeat("]", 10) + strings.Repeat("[", 65),
		`s = "a\\"` + strings.Repeat("[", 65), "# c\n" + strings.Repeat("{", 65),
		"a" + strings.Repeat(".a", 65), "1." + strings.Repeat(".a", 64), "s = '''x''''" + strings.Repeat("[", 65),
	} {
		if tomlNestingProblem(text) == "" {
			t.Errorf("%.40q accepted", text)
		}
	}
	// The count of dots restarts at each line; an unterminated string ends the scan.
	if p := tomlNestingProblem(strings.Repeat(strings.Repeat("a.", 40)+"a = 1\n", 3)); p != "" {
		t.Error(p)
	}
	if p := tomlNestingProblem(`s = "abc` + strings.Repeat("[", 65)); p != "" {
		t.Error(p)
	}
}

// TestTOMLDotsCountPerDottedKey: the dot count restarts at a newline, '=', ',', '{' and '[' (65
// shallow keys on one line are fine), and every dot counts (decision 11 step 1: no dot is free,
// so neither the key [1.1.1...] nor x.0-0.0-0... slips by; a float or a time has one dot).
func TestTOMLDotsCountPerDottedKey(t *testing.T) {
	items := strings.Repeat("{a.b = 0}, ", 64) + "{a.b = 0}"
	keys := make([]string, 65)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d.v = 1", i)
	}
	for _, text := range []string{
		"x = [" + items + "]\n",
		"h = {" + strings.Join(keys, ", ") + "}\n",
		"a" + strings.Repeat(".a", 64),                   // 64 dots
		"[" + strings.Repeat("1.", 64) + "1]\n",          // 64 dots
		"a.1.5" + strings.Repeat(".a", 62),               // 64 dots
		"[x]\n" + strings.Repeat("a.", 64) + "a = 1.5\n", // '=' ends the key
		"v = [" + strings.Repeat("1.5, ", 99) + "1.5]\n",
		"t = 1979-05-27T07:32:00.999Z\n",
	} {
		if p := tomlNestingProblem(text); p != "" {
			t.Errorf("%.60q: %s", text, p)
		}
	}
	for _, text := range []string{
		"a" + strings.Repeat(".a", 65),
		"[" + strings.Repeat("1.", 65) + "1]\n",
		"1" + strings.Repeat(".1", 65),
		"a.1.5" + strings.Repeat(".a", 63),
		"[x]\n" + strings.Repeat("a.", 65) + "a = 1.5\n",
		"[" + strings.Repeat("1.", 19999) + "1]\n",
		"x" + strings.Repeat(".0-0", 19999) + " = 1\n",
	} {
		if tomlNestingProblem(text) == "" {
			t.Errorf("%.60q accepted", text)
		}
	}
	for name, body := range map[string]string{
		"65 inline tables in one array": "[x]\ny = [" + items + "]\n",
		"65 dotted keys in one table":   "[x]\nh = {" + strings.Join(keys, ", ") + "}\n",
	} {
		if _, err := ParseManifest([]byte(nestingManifest + body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	start := time.Now()
	_, err := ParseManifest([]byte(nestingManifest + "[" + strings.Repeat("1.", 19999) + "1]\n"))
	if err == nil || AsError(err).Class != ClassMalformed {
		t.Errorf("[1.1.1...] with 20,000 parts: got %v, want malformed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("[1.1.1...] with 20,000 parts: took %v", d)
	}
}

// TestFormatVersionIsReadAsAnInteger: 2.0, 2e0 and 20e-1 equal 2 as floats but are no JSON
// integers (decisions 6-7): malformed, like any other non-integer; an integer other than 2 is
// unsupported-format.
func TestFormatVersionIsReadAsAnInteger(t *testing.T) {
	node := func(fv string) error {
		_, err := parseNode([]byte(`{"_type":"registry-node","format_version":`+fv+`,"prefix":"","children":{}}`), "", "node")
		return err
	}
	if err := node("2"); err != nil {
		t.Fatal(err)
	}
	for fv, want := range map[string]Class{
		"2.0": ClassMalformed, "2e0": ClassMalformed, "20e-1": ClassMalformed, "2E0": ClassMalformed,
		`"2"`: ClassMalformed, "true": ClassMalformed, "null": ClassMalformed, "1e400": ClassMalformed,
		"18446744073709551618": ClassMalformed, "9007199254740993": ClassMalformed,
		"3": ClassUnsupportedFormat, "1": ClassUnsupportedFormat, "-2": ClassUnsupportedFormat,
	} {
		if err := node(fv); err == nil || AsError(err).Class != want {
			t.Errorf("format_version %s: got %v, want %s", fv, err, want)
		}
	}
	if _, err := ParseStrictJSON([]byte(`[-1e400]`)); err == nil {
		t.Error("-1e400 accepted")
	}
	if _, err := ParseStrictJSON([]byte(`[1e-400, 1.5e308]`)); err != nil {
		t.Error(err)
	}
}

// TestRangesAtTheLargestNumber: the successor of 2^64-1 wrapped to 0, so ">MAX" matched every
// release and "<=MAX" none. Numbers of any size follow Python: above every release number.
func TestRangesAtTheLargestNumber(t *testing.T) {
	const max = "18446744073709551615"
	v := func(s string) *semver.Version {
		sv, ok := ParseVersion(s)
		if !ok {
			t.Fatalf("%s is not a version", s)
		}
		return sv
	}
	versions := []string{"0.0.0", "1.2.3", max + ".0.0", max + ".5.0", max + "." + max + "." + max, "1." + max + ".0",
		"1.2." + max, max + ".0.0-rc.1"}
	for rng, want := range map[string][]string{
		">" + max:                         {},
		">=" + max + ".1":                 {max + ".5.0", max + "." + max + "." + max},
		"<=" + max:                        versions[:7],
		"^" + max:                         {max + ".0.0", max + ".5.0", max + "." + max + "." + max},
		"~" + max + "." + max:             {max + "." + max + "." + max},
		"1." + max:                        {"1." + max + ".0"},
		"<=1.2." + max:                    {"0.0.0", "1.2.3", "1.2." + max},
		"^0.0." + max:                     {},
		">1.2." + max:                     {max + ".0.0", max + ".5.0", max + "." + max + "." + max, "1." + max + ".0"},
		">=99999999999999999999":          {},
		"<99999999999999999999":           versions[:7],
		"1.99999999999999999999.x":        {},
		"<1.99999999999999999999":         {"0.0.0", "1.2.3", "1." + max + ".0", "1.2." + max},
		">=" + max + ".0.0-rc.0 <=" + max: append(versions[2:5:5], max+".0.0-rc.1"),
	} {
		r, err := ParseRange(rng)
		if err != nil {
			t.Fatalf("%s: %v", rng, err)
		}
		var got []string
		for _, s := range versions {
			if r.Match(v(s)) {
				got = append(got, s)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s matches %v, want %v", rng, got, want)
		}
	}
	// prerelease numbers of any length compare numerically (Masterminds/semver: as text)
	r, _ := ParseRange(">=1.0.0-99999999999999999999")
	if !r.Match(v("1.0.0-100000000000000000000")) || r.Match(v("1.0.0-99999999999999999998")) || r.Match(v("1.0.0-5")) {
		t.Error("long prerelease numbers compare as text")
	}
	pd := &PluginDocument{Releases: map[string]*Release{}}
	for _, s := range []string{"1.0.0-100000000000000000000", "1.0.0-99999999999999999999", "1.0.0-a", "1.0.0", "0.9.0"} {
		pd.Releases[s] = &Release{Version: s, SemVer: v(s)}
	}
	var order []string
	for _, r := range pd.sortedVersions() {
		order = append(order, r.Version)
	}
	if got := strings.Join(order, " "); got != "1.0.0 1.0.0-a 1.0.0-100000000000000000000 1.0.0-99999999999999999999 0.9.0" {
		t.Errorf("sorted: %s", got)
	}
}

// TestYearZeroIsNoTime: time.Parse takes year 0000; Python's datetime and the Rust verifier
// start at 0001, so generated_at, published_at and a root's expires of year 0 are refused.
func TestYearZeroIsNoTime(t *testing.T) {
	for _, s := range []string{"0000-01-01T00:00:00Z", "0000-12-31T23:59:59Z", "0000-02-29T00:00:00Z"} {
		if _, ok := ParseTime(s); ok {
			t.Errorf("%s read as a time", s)
		}
		d := &doc{class: ClassMalformed}
		if d.time(s, "published_at"); d.err == nil || d.err.Class != ClassMalformed {
			t.Errorf("%s: %v", s, d.err)
		}
	}
	for _, s := range []string{"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-02-29T12:00:00Z"} {
		if _, ok := ParseTime(s); !ok {
			t.Errorf("%s refused", s)
		}
	}
}

// TestDocumentStringLimits: the string limits of the Python client and the Rust verifier (a
// registry description of 5,000 characters, a license of 600 were accepted). Characters are
// code points.
func TestDocumentStringLimits(t *testing.T) {
	sha := strings.Repeat("a", 64)
	top := func(field, value string) error {
		reg := map[string]string{"name": "reg", "description": "d", "base_url": "https://example.org/", "host.name": "host",
			"host.versions": "*"}
		reg[field] = value
		q := func(k string) string { return fmt.Sprintf("%q", reg[k]) }
		text := `{"format_version":2,"version":1,"generated_at":"2026-01-01T00:00:00Z","expires_at":"2026-02-01T00:00:00Z",` +
			`"root_version":1,"registry":{"name":` + q("name") + `,"description":` + q("description") + `,"base_url":` +
			q("base_url") + `,"host":{"name":` + q("host.name") + `,"versions":` + q("host.versions") + `}},` +
			`"tree":{"sha256":"` + sha + `","size":1},"catalog":{"sha256":"` + sha + `","size":1},"counts":{"plugins":0,"releases":0}}`
		_, err := ParseTopDocument([]byte(text))
		return err
	}
	for field, max := range map[string]int{"name": 128, "description": 4096, "base_url": 2048, "host.name": 128, "host.versions": 256} {
		fill := strings.Repeat("é", max)
		if field == "host.versions" {
			fill = ">=0.0.0" + strings.Repeat(" ", max-14) + "<=1.0.0"
		}
		if err := top(field, fill); err != nil {
			t.Errorf("registry.%s of %d characters: %v", field, max, err)
		}
		if err := top(field, fill+"x"); err == nil || AsError(err).Class != ClassMalformed {
			t.Errorf("registry.%s of %d characters: %v, want malformed", field, max+1, err)
		}
	}

	plugin := func(field, value string) error {
		rel := map[string]string{"description": `"d"`, "license": `"MIT"`, "abi": `"core"`, "host": `null`, "exports": `["run"]`,
			"permissions": `[]`, "limits": `{"fuel":0,"memory":0,"wall_time_ms":0}`, "dependencies": `{}`,
			"manifest": `{"path":"plugins/abc/1.0.0/plugin.toml","sha256":"` + sha + `","size":1}`,
			"wasm":     `{"path":"plugins/abc/1.0.0/abc.wasm","sha256":"` + sha + `","size":1}`, "signers": `[]`,
			"published_at": `"2026-01-01T00:00:00Z"`, "yanked": `null`, "smoke": `null`, "authors": `[]`, "keywords": `[]`,
			"homepage": `null`, "repository": `null`}
		rel[field] = value
		var parts []string
		for k, v := range rel {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
		text := `{"_type":"registry-plugin","format_version":2,"name":"abc","versions":{"1.0.0":{` + strings.Join(parts, ",") + `}}}`
		_, err := parsePluginDocument([]byte(text), "abc", "plugin document")
		return err
	}
	long := func(n int) string { return strings.Repeat("é", n) }
	for _, c := range []struct {
		field, ok, bad string
	}{
		{"license", `"` + long(256) + `"`, `"` + long(257) + `"`},
		{"abi", `"` + long(64) + `"`, `"` + long(65) + `"`},
		{"description", `"` + long(65536) + `"`, `"` + long(65537) + `"`},
		{"host", `"` + long(65536) + `"`, `"` + long(65537) + `"`},
		{"homepage", `"` + long(65536) + `"`, `"` + long(65537) + `"`},
		{"repository", `"` + long(65536) + `"`, `"` + long(65537) + `"`},
		{"exports", `["` + long(65536) + `"]`, `["a","` + long(65537) + `"]`},
		{"authors", `["` + long(65536) + `"]`, `["` + long(65537) + `"]`},
		{"keywords", `["` + long(65536) + `"]`, `["` + long(65537) + `"]`},
		{"yanked", `{"reason":"` + long(65536) + `"}`, `{"reason":"` + long(65537) + `"}`},
		{"smoke", `[{"name":"` + long(65536) + `","fuel":null,"peak_memory":null}]`,
			`[{"name":"` + long(65537) + `","fuel":null,"peak_memory":null}]`},
		{"dependencies", `{"dep":">=1.0.0` + strings.Repeat(" ", 243) + `<2.0.0"}`, `{"dep":">=1.0.0` + strings.Repeat(" ", 244) + `<2.0.0"}`},
		// a path above 512 characters is malformed before it is judged a path traversal
		{"manifest", `{"path":"plugins/abc/1.0.0/plugin.toml","sha256":"` + sha + `","size":1}`,
			`{"path":"plugins/abc/1.0.0/` + strings.Repeat("x/", 250) + `plugin.toml","sha256":"` + sha + `","size":1}`},
	} {
		if err := plugin(c.field, c.ok); err != nil {
			t.Errorf("%s at the limit: %v", c.field, err)
		}
		if err := plugin(c.field, c.bad); err == nil || AsError(err).Class != ClassMalformed {
			t.Errorf("%s above the limit: %v, want malformed", c.field, err)
		}
	}
	// a prefix above 64 characters is malformed, not a mix-and-match
	_, err := parseNode([]byte(`{"_type":"registry-node","format_version":2,"prefix":"`+strings.Repeat("a", 65)+`","plugins":{}}`), "", "node")
	if err == nil || AsError(err).Class != ClassMalformed {
		t.Errorf("prefix of 65 characters: %v", err)
	}
}
