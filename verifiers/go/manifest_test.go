package verifier

import (
	"reflect"
	"testing"
)

// TestManifestDependenciesAreReadAsPythonReadsThem: [dependencies] in both documented forms
// (docs/manifest.md), read as Python's required_dependencies reads them: a range string, or a
// table whose `version` is the range; `optional = true` entries are left out (the build publishes
// only the required ones, and decision 11 step 4 compares the two). The table form was refused.
func TestManifestDependenciesAreReadAsPythonReadsThem(t *testing.T) {
	accepted := map[string]struct {
		body string
		want map[string]string
	}{
		"none":                    {"", map[string]string{}},
		"empty table":             {"\n[dependencies]\n", map[string]string{}},
		"string":                  {"\n[dependencies]\nbase = \"^1\"\n", map[string]string{"base": "^1"}},
		"inline table":            {"\n[dependencies]\nbase = { version = \"^1\" }\n", map[string]string{"base": "^1"}},
		"inline optional":         {"\n[dependencies]\nbase = { version = \"^1\", optional = true }\n", map[string]string{}},
		"inline optional false":   {"\n[dependencies]\nbase = { version = \"^1\", optional = false }\n", map[string]string{"base": "^1"}},
		"sub-table":               {"\n[dependencies.base]\nversion = \"^1\"\n", map[string]string{"base": "^1"}},
		"sub-table optional":      {"\n[dependencies.base]\nversion = \"^1\"\noptional = true\n", map[string]string{}},
		"optional, no version":    {"\n[dependencies]\nbase = { optional = true }\n", map[string]string{}},
		"optional, int version":   {"\n[dependencies]\nbase = { optional = true, version = 1 }\n", map[string]string{}},
		"non-boolean optional":    {"\n[dependencies]\nbase = { version = \"^1\", optional = \"true\" }\n", map[string]string{"base": "^1"}},
		"integer optional":        {"\n[dependencies]\nbase = { version = \"^1\", optional = 1 }\n", map[string]string{"base": "^1"}},
		"unknown key is not read": {"\n[dependencies]\nbase = { version = \"^1\", features = [\"x\"] }\n", map[string]string{"base": "^1"}},
		"mixed": {
			"\n[dependencies]\na = \"^1\"\nb = { version = \">=2\", optional = true }\nc = { version = \"~3\" }\n\n[dependencies.d]\nversion = \"4\"\n",
			map[string]string{"a": "^1", "c": "~3", "d": "4"},
		},
	}
	for name, c := range accepted {
		m, err := ParseManifest([]byte(nestingManifest + c.body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(m.Dependencies, c.want) {
			t.Errorf("%s: dependencies %v, want %v", name, m.Dependencies, c.want)
		}
	}
	refused := map[string]string{
		"table without version":            "\n[dependencies]\nbase = {}\n",
		"optional false, no version":       "\n[dependencies]\nbase = { optional = false }\n",
		"non-boolean optional, no version": "\n[dependencies]\nbase = { optional = \"true\" }\n",
		"sub-table without version":        "\n[dependencies.base]\noptional = false\n",
		"integer version":                  "\n[dependencies]\nbase = { version = 1 }\n",
		"table version":                    "\n[dependencies]\nbase = { version = { a = \"x\" } }\n",
		"array version":                    "\n[dependencies]\nbase = { version = [\"^1\"] }\n",
		"integer":                          "\n[dependencies]\nbase = 1\n",
		"boolean":                          "\n[dependencies]\nbase = true\n",
		"array":                            "\n[dependencies]\nbase = [\"^1\"]\n",
		"array of tables":                  "\n[[dependencies.base]]\nversion = \"^1\"\n",
		"dependencies array of tables":     "\n[[dependencies]]\nbase = \"^1\"\n",
	}
	for name, body := range refused {
		_, err := ParseManifest([]byte(nestingManifest + body))
		if err == nil || AsError(err).Class != ClassMalformed {
			t.Errorf("%s: got %v, want malformed", name, err)
		}
	}
	for name, top := range map[string]string{"string": "dependencies = \"x\"\n", "array": "dependencies = []\n", "integer": "dependencies = 1\n"} {
		_, err := ParseManifest([]byte(top + nestingManifest))
		if err == nil || AsError(err).Class != ClassMalformed {
			t.Errorf("[dependencies] a %s: got %v, want malformed", name, err)
		}
	}
	m, err := ParseManifest([]byte("dependencies = {}\n" + nestingManifest))
	if err != nil || len(m.Dependencies) != 0 {
		t.Errorf("dependencies = {}: %v %v", m, err)
	}
}

// TOML 1.0 as the Python client's tomli 2.2 reads it (conformance decision 11 step 1): TOML 1.1, a
// table defined twice, a control character in a comment, a date or time that does not exist and a
// number beyond 64 bits are refused; a sub-table of a dotted-key table is not.
func TestTOMLIsReadAsTOML10(t *testing.T) {
	for _, bad := range []string{
		"[x]\ns = \"\\e\"\n",
		"[x]\ns = \"\"\"\\e\"\"\"\n",
		"[x]\ns = \"\\x41\"\n",
		"[x]\nt = {a = 1,}\n",
		"[x]\nt = {\na = 1\n}\n",
		"[x]\nt = 07:32\n",
		"[x]\nt.a = 1\n[x.t]\nb = 2\n",
		"[x]\nt = {a = 1}\nt.b = 2\n",
		"# \x7f\n",
		"[x]\nd = 0000-01-01\n",
		"[x]\nd = 0000-01-01T00:00:00Z\n",
		"[x]\nd = 0000-01-01T00:00:00\n",
		"[x]\nd = 1979-02-29\n",
		"[x]\nd = 1979-05-27T24:00:00Z\n",
		"[x]\nd = 1979-05-27T00:00:00+24:00\n",
		"[x]\nt = 07:32:60\n",
		"[x]\nd = 1979-05-27T07:32:60Z\n",
		"[x]\nn = 9223372036854775808\n",
		"[x]\nf = -1e400\n",
	} {
		if _, err := parseTOML([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{
		"[x]\nt.status = 200\n[x.t.headers]\na = \"b\"\n",
		"[x]\ns = \"\\\\e \\t \\u00e9\"\nl = '\\e'\n# \"\\e\n",
		"[x]\ns = \"\"\"a\\\n  b\"\"\"\n",
		"[x]\nd = 2000-02-29\nt = 07:32:59\n",
		"[x]\nd = 0001-01-01T00:00:00+23:59\n",
		"[x]\nn = -9223372036854775808\nf = [-inf, 1e-400]\n",
	} {
		if _, err := parseTOML([]byte(good)); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
}
