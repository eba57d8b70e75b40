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

func parseTOML(data []byte) (map[string]any, error) {
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
	if deps, ok := m["dependencies"].(map[string]any); ok {
		for k, v := range deps {
			s, ok := v.(string)
			if !ok {
				return bad("[dependencies] %s is not a range string", k)
			}
			out.Dependencies[k] = s
		}
	}
	return out, nil
}
