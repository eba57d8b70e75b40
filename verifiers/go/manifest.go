package verifier

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
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
	if _, err := toml.Decode(string(data), &m); err != nil {
		return nil, trustError("plugin-name-mismatch", "", "fix the TOML syntax", "cannot parse the TOML: %v", err)
	}
	return m, nil
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

var numberUnit = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$`)

var sizeUnits = map[string]float64{"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1e3, "mb": 1e6, "gb": 1e9}
var durationUnits = map[string]float64{"": 1, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

// parseUnit reads a size (bytes) or a duration (seconds, scaled by scale) as docs/manifest.md
// writes them: an integer, or a number with a unit.
func parseUnit(v any, units map[string]float64, scale float64) (int64, bool) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, false
		}
		return int64(float64(x) * scale), true
	case float64:
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return int64(math.Round(x * scale)), true
	case string:
		m := numberUnit.FindStringSubmatch(x)
		if m == nil {
			return 0, false
		}
		f, err := strconv.ParseFloat(m[1], 64)
		u, ok := units[strings.ToLower(m[2])]
		if err != nil || !ok {
			return 0, false
		}
		if scale != 1 {
			return int64(math.Round(f * u * scale)), true
		}
		return int64(f * u), true
	}
	return 0, false
}

// ParseManifest reads the fields of a signed plugin.toml that verification compares.
func ParseManifest(data []byte) (*Manifest, error) {
	m, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (*Manifest, error) {
		return nil, &Error{Class: ClassMalformed, What: "plugin.toml: " + fmt.Sprintf(format, args...),
			Fix: "the signed manifest does not follow docs/manifest.md"}
	}
	p, _ := m["plugin"].(map[string]any)
	out := &Manifest{Limits: map[string]int64{}, Dependencies: map[string]string{}}
	var ok bool
	if out.Name, ok = p["name"].(string); !ok {
		return bad("[plugin] name is missing")
	}
	if out.Version, ok = p["version"].(string); !ok {
		return bad("[plugin] version is missing")
	}
	out.ABI, _ = p["abi"].(string)
	if c, ok := m["compatibility"].(map[string]any); ok {
		if h, ok := c["host"].(string); ok {
			out.Host = &h
		}
	}
	if out.Host == nil {
		if v, ok := p["min_host_version"].(string); ok {
			h := ">=" + v
			out.Host = &h
		}
	}
	a, _ := m["artifact"].(map[string]any)
	if out.ArtifactFile, ok = a["file"].(string); !ok {
		return bad("[artifact] file is missing")
	}
	if out.ArtifactSHA256, ok = a["sha256"].(string); !ok || !sha256RE.MatchString(out.ArtifactSHA256) {
		return bad("[artifact] sha256 is missing or not 64 lower-case hex digits")
	}
	if out.ArtifactSize, ok = a["size"].(int64); !ok || out.ArtifactSize < 0 {
		return bad("[artifact] size is missing")
	}
	if e, ok := m["exports"].(map[string]any); ok {
		fs, _ := e["functions"].([]any)
		for _, f := range fs {
			s, ok := f.(string)
			if !ok {
				return bad("[exports] functions holds a non-string")
			}
			out.Exports = append(out.Exports, s)
		}
	}
	if perms, ok := m["permissions"].(map[string]any); ok {
		for k, v := range perms {
			b, ok := v.(bool)
			if !ok {
				return bad("[permissions] %s is not true or false", k)
			}
			if b {
				out.Permissions = append(out.Permissions, k)
			}
		}
	}
	sort.Strings(out.Permissions)
	if l, ok := m["limits"].(map[string]any); ok {
		for k, v := range l {
			var n int64
			var ok bool
			switch k {
			case "wall_time":
				n, ok = parseUnit(v, durationUnits, 1000)
				k = "wall_time_ms"
			case "memory", "module_size", "stack":
				n, ok = parseUnit(v, sizeUnits, 1)
			default:
				n, ok = v.(int64)
			}
			if !ok {
				return bad("[limits] %s is not a valid value", k)
			}
			out.Limits[k] = n
		}
	}
	if raw, present := m["dependencies"]; present {
		deps, err := requiredDependencies(raw)
		if err != nil {
			return bad("%s", err)
		}
		out.Dependencies = deps
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
