package verifier

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// Manifest is what a verifier reads from a maintainer-signed plugin.toml: the identity, the
// artifact pin and every field the index is not trusted for (format 2 contract, section 6).
type Manifest struct {
	Name, Version  string
	ABI            string
	Host           *string // the [compatibility] host range, or ">=min_host_version"; nil: any host
	ArtifactFile   string
	ArtifactSHA256 string
	ArtifactSize   int64
	Exports        []string
	Permissions    []string // granted (true) permissions, sorted
	Limits         map[string]int64
	Dependencies   map[string]string

	abiSet     bool // [plugin] abi is present (Python compares None with the entry's abi)
	exportsSet bool // [exports] functions is present (Python compares None with the entry's list)
}

// maxTOMLNesting bounds what a TOML parser is handed (conformance decision 11, the same rule as the
// Python client's and the Rust verifier's): parsers recurse on nested arrays, inline tables and
// dotted keys, and 20,000 levels in 40 KB took this verifier 16 GB.
const maxTOMLNesting = 64

// tomlNestingProblem says why text nests too deep for a TOML parser to be trusted with it, or "".
// Outside strings and comments: more than maxTOMLNesting '[' / '{' open at once ('[' / '{' +1,
// ']' / '}' -1, never below 0), or more than maxTOMLNesting dots in one segment (every dot
// counts, a float's or a time fraction's too; the count restarts at a newline, '=', ',', '{' and
// '['). An unterminated string ends the scan: the parser reports it. The scan of
// registry_tool/_toml.py nesting_problem, line for line.
func tomlNestingProblem(text string) string {
	depth, dots, n := 0, 0, len(text)
	for i := 0; i < n; {
		c := text[i]
		switch {
		case c == '#':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return ""
			}
			i += j
			continue
		case c == '"' || c == '\'':
			if i = tomlStringEnd(text, i); i < 0 {
				return "" // unterminated: the parser says where
			}
			continue
		case c == '\n' || c == '=' || c == ',' || c == '{' || c == '[':
			dots = 0
			if c == '[' || c == '{' {
				if depth++; depth > maxTOMLNesting {
					return fmt.Sprintf("more than %d arrays or inline tables are open at once", maxTOMLNesting)
				}
			}
		case c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		case c == '.':
			if dots++; dots > maxTOMLNesting {
				return fmt.Sprintf("a dotted key has more than %d parts", maxTOMLNesting)
			}
		}
		i++
	}
	return ""
}

// tomlStringEnd is the index after the string that starts with the quote at text[i], or -1 when
// it never ends: basic strings, one-line or multi-line (three double quotes; a backslash escapes
// the next character), and literal strings, one-line or multi-line (three single quotes); a
// one-line string does not span lines.
func tomlStringEnd(text string, i int) int {
	q := text[i]
	closing := text[i : i+1]
	if strings.HasPrefix(text[i:], strings.Repeat(closing, 3)) {
		closing = strings.Repeat(closing, 3)
	}
	multi := len(closing) == 3
	j := i + len(closing)
	for {
		k := strings.Index(text[j:], closing)
		if k < 0 {
			return -1
		}
		k += j
		if q == '"' {
			// a backslash escapes the next character: count the backslashes right before the quote
			slashes := 0
			for text[k-1-slashes] == '\\' {
				slashes++
			}
			if slashes%2 == 1 {
				j = k + 1
				continue
			}
		}
		if !multi && strings.IndexByte(text[j:k], '\n') >= 0 {
			return -1 // the parser reports it
		}
		end := k + len(closing)
		for multi && end < len(text) && text[end] == q && end-k < 5 {
			end++ // up to two more quotes belong to a multi-line string's content
		}
		return end
	}
}

func parseTOML(data []byte) (map[string]any, error) {
	if problem := tomlNestingProblem(string(data)); problem != "" {
		return nil, &Error{Class: ClassMalformed, What: fmt.Sprintf("plugin.toml: %s (at most %d levels are read)", problem, maxTOMLNesting),
			Fix: "the signed manifest does not follow docs/manifest.md"}
	}
	var m map[string]any
	err := toml.Unmarshal(data, &m)
	if err == nil {
		if problem := tomlLexicalProblem(string(data)); problem != "" {
			err = fmt.Errorf("%s", problem)
		} else if date := tomlImpossibleDate(m); date != "" {
			err = fmt.Errorf("the date %s does not exist", date)
		}
	}
	if err != nil {
		return nil, trustError("plugin-name-mismatch", "", "fix the TOML syntax", "cannot parse the TOML: %v", err)
	}
	return m, nil
}

// tomlLexicalProblem says what in a text the parser (go-toml v2.2) took is no TOML 1.0 as the
// Python client's parser (tomli) reads it, or "": an escape of a basic string TOML 1.0 does not
// have (go-toml also takes TOML 1.1's \e), or a time with second 60 (go-toml takes a leap
// second; a ':' outside strings and comments is always a time's). Strings are found as
// tomlNestingProblem finds them; the text parsed, so they all end.
func tomlLexicalProblem(text string) string {
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '#':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return ""
			}
			i += j
		case c == '"' || c == '\'':
			end := tomlStringEnd(text, i)
			if end < 0 {
				return ""
			}
			if c == '"' {
				for j := i + 1; j < end-1; j++ {
					if text[j] != '\\' {
						continue
					}
					j++
					if !strings.ContainsRune("btnfr\"\\uU \t\r\n", rune(text[j])) {
						return fmt.Sprintf("a string holds the escape \\%c, which TOML 1.0 does not have", text[j])
					}
				}
			}
			i = end
			continue
		case c == ':':
			// HH:MM:SS, the ':' after the hour: the seconds are at i+4
			if i+6 <= len(text) && text[i+3] == ':' && text[i+4:i+6] == "60" {
				return "a time has second 60"
			}
		}
		i++
	}
	return ""
}

// tomlImpossibleDate is the first date of a parsed TOML value that Python's datetime.date (and so
// the Python client's parser) refuses and go-toml lets through: year 0, or "".
func tomlImpossibleDate(v any) string {
	switch x := v.(type) {
	case toml.LocalDate:
		if x.Year == 0 {
			return x.String()
		}
	case toml.LocalDateTime:
		if x.Year == 0 {
			return x.LocalDate.String()
		}
	case time.Time:
		if x.Year() == 0 {
			return x.Format("2006-01-02")
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := tomlImpossibleDate(x[k]); d != "" {
				return d
			}
		}
	case []any:
		for _, e := range x {
			if d := tomlImpossibleDate(e); d != "" {
				return d
			}
		}
	}
	return ""
}

// manifestIdentity is ([table] name, [table] version), both required strings.
func manifestIdentity(data []byte, table string) (string, string, error) {
	m, err := parseTOML(data)
	if err != nil {
		return "", "", err
	}
	sec, _ := m[table].(map[string]any)
	name, ok1 := sec["name"].(string)
	version, ok2 := sec["version"].(string)
	if !ok1 || !ok2 {
		return "", "", trustError("plugin-name-mismatch", "", fmt.Sprintf("add name and version to the [%s] table", table),
			"[%s] name and version are required strings", table)
	}
	return name, version, nil
}

// ParseManifest reads the fields of a signed plugin.toml that verification compares, as the
// Python client's ManifestFacts.parse reads them (registry_tool/client/trust_state.py; conformance
// decision 11, step 1): UTF-8 TOML (no byte order mark) with a [plugin] and an [artifact] table
// holding name, version, file, sha256 and size; a field that is no string is compared as Python's
// str() of it, the size as Python's int() of it and the sha256 in lower case; [permissions],
// [compatibility], [exports] and [dependencies] must be tables; the limits fuel, memory and
// wall_time are converted as the build converts them. Everything else the schema decides, later
// (CheckManifestStrict). Any failure is malformed.
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ParseManifest(data []byte) (*Manifest, error) {
	v, err := parseManifest(data)
	return v, classedInput(err, "plugin.toml")
}

// parseManifest is ParseManifest with the rule errors the package's own steps give their step's class.
func parseManifest(data []byte) (*Manifest, error) {
	bad := func(format string, args ...any) (*Manifest, error) {
		return nil, &Error{Class: ClassMalformed, What: "plugin.toml lacks a readable [plugin] name/version or [artifact] pin: " + fmt.Sprintf(format, args...),
			Fix: "the signed manifest does not follow docs/manifest.md"}
	}
	if !utf8.Valid(data) || bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return bad("the file is not UTF-8 TOML (or starts with a byte order mark)")
	}
	m, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	p, ok := m["plugin"].(map[string]any)
	if !ok {
		return bad("[plugin] is missing or not a table")
	}
	a, ok := m["artifact"].(map[string]any)
	if !ok {
		return bad("[artifact] is missing or not a table")
	}
	out := &Manifest{Limits: map[string]int64{}, Dependencies: map[string]string{}}
	perms := map[string]any{}
	if v, present := m["permissions"]; present {
		if perms, ok = v.(map[string]any); !ok {
			return bad("permissions is not a table")
		}
	}
	if v, present := m["compatibility"]; present {
		c, ok := v.(map[string]any)
		if !ok {
			return bad("compatibility is not a table")
		}
		if h, present := c["host"]; present {
			s := pyStr(h)
			out.Host = &s
		}
	}
	if v, present := p["min_host_version"]; present && out.Host == nil {
		h := ">=" + pyStr(v)
		out.Host = &h
	}
	if v, present := m["exports"]; present {
		e, ok := v.(map[string]any)
		if !ok {
			return bad("exports is not a table")
		}
		if fs, present := e["functions"]; present {
			out.exportsSet = true
			out.Exports = []string{}
			switch x := fs.(type) {
			case []any:
				for _, f := range x {
					out.Exports = append(out.Exports, pyStr(f))
				}
			case []map[string]any:
				for range x {
					out.Exports = append(out.Exports, notAString)
				}
			case string:
				for _, r := range x {
					out.Exports = append(out.Exports, string(r))
				}
			case map[string]any:
				out.Exports = append(out.Exports, sortedKeys(x)...)
			default:
				return bad("exports.functions is not a list")
			}
		}
	}
	if raw, present := m["dependencies"]; present {
		deps, err := requiredDependencies(raw)
		if err != nil {
			return bad("%s", err)
		}
		out.Dependencies = deps
	}
	if l, present := m["limits"]; present && pyTruthy(l) {
		for _, k := range []string{"fuel", "memory", "wall_time"} {
			found, ok := pyIn(k, l)
			if !ok {
				return bad("limits is not a table")
			}
			if !found {
				continue
			}
			t, ok := l.(map[string]any)
			if !ok {
				return bad("limits is not a table")
			}
			var n int64
			switch k {
			case "fuel":
				n, ok = pyInt(t[k])
			case "memory":
				n, ok = pySize(t[k])
			case "wall_time":
				var secs float64
				secs, ok = pyDuration(t[k])
				n, k = pyMilliseconds(secs), "wall_time_ms"
			}
			if !ok {
				return bad("limits.%s is not a valid value", k)
			}
			out.Limits[k] = n
		}
		// The limits a host reads besides (the schema check refuses a manifest where they are
		// invalid; verify of an installed plugin reads what it can).
		if t, ok := l.(map[string]any); ok {
			for _, k := range []string{"module_size", "stack"} {
				if n, ok := pySize(t[k]); ok {
					out.Limits[k] = n
				}
			}
			for _, k := range []string{"table_elements", "instances"} {
				if n, ok := pyInt(t[k]); ok && t[k] != nil {
					out.Limits[k] = n
				}
			}
		}
	}
	name, ok1 := p["name"]
	version, ok2 := p["version"]
	file, ok3 := a["file"]
	sha, ok4 := a["sha256"]
	size, ok5 := a["size"]
	if !ok1 || !ok2 {
		return bad("[plugin] name and version are required")
	}
	if !ok3 || !ok4 || !ok5 {
		return bad("[artifact] file, sha256 and size are required")
	}
	out.Name, out.Version, out.ArtifactFile = pyStr(name), pyStr(version), pyStr(file)
	out.ArtifactSHA256 = strings.ToLower(pyStr(sha))
	if out.ArtifactSize, ok = pyInt(size); !ok {
		return bad("[artifact] size is not an integer")
	}
	for k, v := range perms {
		if b, ok := v.(bool); ok && b {
			out.Permissions = append(out.Permissions, k)
		}
	}
	sort.Strings(out.Permissions)
	if v, present := p["abi"]; present {
		out.ABI, out.abiSet = pyStr(v), true
	}
	return out, nil
}

// requiredDependencies is a manifest's [dependencies] as the index publishes them: the required
// ones only, name -> range (Python's required_dependencies, registry_tool/client/trust_state.py).
// An entry is `name = "range"` or a table, inline or `[dependencies.name]`: a table with
// `optional = true` is left out whatever else it holds; any other table's `version` is the range
// and must be a string (its other keys, a non-boolean `optional` included, are not read).
func requiredDependencies(raw any) (map[string]string, error) {
	deps, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("[dependencies] is not a table")
	}
	out := map[string]string{}
	for name, spec := range deps {
		if t, ok := spec.(map[string]any); ok {
			if optional, ok := t["optional"].(bool); ok && optional {
				continue
			}
			v, present := t["version"]
			if !present {
				return nil, fmt.Errorf("[dependencies] %s is a table without a version", name)
			}
			spec = v
		}
		s, ok := spec.(string)
		if !ok {
			return nil, fmt.Errorf("[dependencies] %s is not a range string", name)
		}
		out[name] = s
	}
	return out, nil
}
