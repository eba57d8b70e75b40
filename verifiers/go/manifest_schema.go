package verifier

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The published manifest's schema: a copy of schemas/plugin.schema.json (a test keeps the two
// identical), read by the Python client's parse_manifest as JSON Schema draft 7.
//
//go:embed plugin.schema.json
var pluginSchemaJSON []byte

var pluginSchema = func() map[string]any {
	var s map[string]any
	if err := json.Unmarshal(pluginSchemaJSON, &s); err != nil {
		panic("plugin.schema.json: " + err.Error())
	}
	return s
}()

const (
	// maxStrictManifest is the Python client's cap on a manifest it schema-checks (parse_manifest).
	maxStrictManifest = 256 * 1024
	// maxSchemaDepth: parsed values nested deeper are refused before the schema (Python's MAX_DEPTH).
	maxSchemaDepth = 16
)

// CheckManifestStrict applies to a signed plugin.toml what the Python client's parse_manifest
// (registry_tool/manifest/model.py) applies after the index entry was compared with it
// (conformance decision 11, step 4): at most 256 KiB, values nested at most 16 levels,
// schemas/plugin.schema.json (JSON Schema draft 7: no unknown table or key, required keys, types,
// patterns, lengths, ranges; an integer may be written as an integral float), then the limits
// converted as the build converts them. Any failure is malformed.
func CheckManifestStrict(data []byte) error {
	bad := func(format string, args ...any) error {
		return &Error{Class: ClassMalformed, What: "the signed plugin.toml does not follow schemas/plugin.schema.json: " + fmt.Sprintf(format, args...),
			Fix: "the maintainer must re-sign a valid plugin.toml (registry-tool validate)"}
	}
	if len(data) > maxStrictManifest {
		return bad("it is %d bytes, above the 256 KiB cap", len(data))
	}
	m, err := parseTOML(data)
	if err != nil {
		return err
	}
	doc := normaliseTOML(m)
	if tomlDepth(doc) > maxSchemaDepth {
		return bad("values are nested more than %d levels deep", maxSchemaDepth)
	}
	if why := schemaCheck(pluginSchema, pluginSchema, doc, ""); why != "" {
		return bad("%s", why)
	}
	if l, ok := doc.(map[string]any)["limits"].(map[string]any); ok {
		for _, k := range sortedKeys(l) {
			v := l[k]
			var ok bool
			switch k {
			case "memory", "module_size", "stack":
				_, ok = pySize(v)
			case "wall_time":
				_, ok = pyDuration(v)
			default: // fuel, table_elements, instances: integers (the schema said so)
				ok = true
			}
			if !ok {
				return bad("limits.%s = %v is not a valid value", k, v)
			}
		}
	}
	return nil
}

// normaliseTOML turns arrays of tables ([]map[string]any) into []any, so every array is []any.
func normaliseTOML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normaliseTOML(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normaliseTOML(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normaliseTOML(e)
		}
		return out
	}
	return v
}

// tomlDepth is Python's nesting_depth: the top table is 1, each table or array level adds one.
func tomlDepth(v any) int {
	level, frontier := 0, []any{v}
	for {
		var children []any
		for _, item := range frontier {
			switch x := item.(type) {
			case map[string]any:
				for _, c := range x {
					children = append(children, c)
				}
			case []any:
				children = append(children, x...)
			}
		}
		if len(children) == 0 {
			return level
		}
		level++
		frontier = frontier[:0]
		for _, c := range children {
			switch c.(type) {
			case map[string]any, []any:
				frontier = append(frontier, c)
			}
		}
		if len(frontier) == 0 {
			return level
		}
	}
}

func schemaRef(root map[string]any, s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		defs, _ := root["definitions"].(map[string]any)
		s, _ = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
	}
}

// schemaType is JSON Schema draft 7's type test as Python's jsonschema makes it on TOML values:
// a boolean is no number, an integral float is an integer.
func schemaType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		switch x := v.(type) {
		case int64:
			return true
		case float64:
			return !math.IsInf(x, 0) && !math.IsNaN(x) && x == math.Trunc(x)
		}
		return false
	case "number":
		switch v.(type) {
		case int64, float64:
			return true
		}
		return false
	}
	return false
}

// As the Python client reads the schema's patterns: `$` is the end of the text (ECMA-262, so a
// value ending in a newline never passes; Python's re would also match before it), `\s` is any
// Unicode whitespace as Python's re has it.
const pyWhitespace = `[\t\n\v\f\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]`

var schemaPatterns = map[string]*regexp.Regexp{}

func pyPattern(p string) *regexp.Regexp {
	if re, ok := schemaPatterns[p]; ok {
		return re
	}
	t := strings.ReplaceAll(p, `\s`, pyWhitespace)
	t = strings.ReplaceAll(t, "$", `\z`)
	re := regexp.MustCompile(t)
	schemaPatterns[p] = re
	return re
}

func init() {
	// Compile every pattern of the schema once (the map is then only read).
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if p, ok := x["pattern"].(string); ok {
				pyPattern(p)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(pluginSchema)
}

func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// schemaEqual is jsonschema's equality for enum and const: booleans equal only booleans.
func schemaEqual(a, b any) bool {
	switch x := a.(type) {
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	}
	if _, ok := b.(bool); ok {
		return false
	}
	x, ok1 := numberOf(a)
	y, ok2 := numberOf(b)
	return ok1 && ok2 && x == y
}

func at(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// schemaCheck returns why v does not satisfy schema s ("" when it does), for the keywords
// plugin.schema.json uses.
func schemaCheck(root, s map[string]any, v any, path string) string {
	s = schemaRef(root, s)
	where := path
	if where == "" {
		where = "document"
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				types = append(types, e.(string))
			}
		}
		matched := false
		for _, t := range types {
			matched = matched || schemaType(v, t)
		}
		if !matched {
			return fmt.Sprintf("%s: expected %s, got %T", where, strings.Join(types, " or "), v)
		}
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, c := range e {
			found = found || schemaEqual(v, c)
		}
		if !found {
			return fmt.Sprintf("%s: %v is not one of %v", where, v, e)
		}
	}
	if c, ok := s["const"]; ok && !schemaEqual(v, c) {
		return fmt.Sprintf("%s: %v is not %v", where, v, c)
	}
	if str, ok := v.(string); ok {
		n := float64(utf8.RuneCountInString(str))
		if min, ok := s["minLength"].(float64); ok && n < min {
			return fmt.Sprintf("%s: %q is shorter than %v characters", where, str, min)
		}
		if max, ok := s["maxLength"].(float64); ok && n > max {
			return fmt.Sprintf("%s: %.40q... is longer than %v characters", where, str, max)
		}
		if p, ok := s["pattern"].(string); ok && !pyPattern(p).MatchString(str) {
			return fmt.Sprintf("%s: %q does not match %s", where, str, p)
		}
	}
	if _, isBool := v.(bool); !isBool {
		if x, ok := numberOf(v); ok {
			if min, ok := s["minimum"].(float64); ok && numberBelow(v, x, min) {
				return fmt.Sprintf("%s: %v is less than the minimum of %v", where, v, min)
			}
			if max, ok := s["maximum"].(float64); ok && x > max {
				return fmt.Sprintf("%s: %v is greater than the maximum of %v", where, v, max)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if min, ok := s["minItems"].(float64); ok && float64(len(arr)) < min {
			return fmt.Sprintf("%s: has fewer than %v items", where, min)
		}
		if max, ok := s["maxItems"].(float64); ok && float64(len(arr)) > max {
			return fmt.Sprintf("%s: has more than %v items", where, max)
		}
		if u, ok := s["uniqueItems"].(bool); ok && u {
			for i := range arr {
				for j := 0; j < i; j++ {
					if schemaEqual(arr[i], arr[j]) {
						return fmt.Sprintf("%s: has non-unique elements", where)
					}
				}
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range arr {
				if why := schemaCheck(root, items, e, fmt.Sprintf("%s[%d]", path, i)); why != "" {
					return why
				}
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		keys := sortedKeys(obj)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					return fmt.Sprintf("%s: %q is required", where, r)
				}
			}
		}
		if max, ok := s["maxProperties"].(float64); ok && float64(len(obj)) > max {
			return fmt.Sprintf("%s: has more than %v members", where, max)
		}
		if pn, ok := s["propertyNames"].(map[string]any); ok {
			for _, k := range keys {
				if why := schemaCheck(root, pn, k, path); why != "" {
					return why
				}
			}
		}
		props, _ := s["properties"].(map[string]any)
		for _, k := range keys {
			if sub, ok := props[k].(map[string]any); ok {
				if why := schemaCheck(root, sub, obj[k], at(path, k)); why != "" {
					return why
				}
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Sprintf("unknown key '%s'", at(path, k))
				}
			case map[string]any:
				if why := schemaCheck(root, ap, obj[k], at(path, k)); why != "" {
					return why
				}
			}
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		valid := 0
		for _, sub := range one {
			if schemaCheck(root, sub.(map[string]any), v, path) == "" {
				valid++
			}
		}
		if valid != 1 {
			return fmt.Sprintf("%s: %v is not valid under exactly one of the given schemas", where, v)
		}
	}
	return ""
}

// numberBelow: the instance (v, as float x) is below bound, compared exactly for integers.
func numberBelow(v any, x, bound float64) bool {
	if i, ok := v.(int64); ok && bound == math.Trunc(bound) && math.Abs(bound) < 1<<62 {
		return i < int64(bound)
	}
	return x < bound
}

// ---------------------------------------------------------------- Python's conversions

// pyNumberUnit is registry_tool/manifest/units.py _NUMBER_UNIT (re.ASCII).
var pyNumberUnit = regexp.MustCompile(`^[ \t\n\r\f\v]*([0-9]{1,18}(?:\.[0-9]{1,9})?)[ \t\n\r\f\v]*([A-Za-z]*)[ \t\n\r\f\v]*\n?\z`)

var pySizeUnits = map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
var pyDurationUnits = map[string]float64{"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

// pyMaxSeconds is units.py MAX_SECONDS: a numeric duration beyond ten years is refused.
const pyMaxSeconds = 10 * 365 * 86400.0

func numberUnitOf(s string, units map[string]float64) (float64, float64, bool) {
	m := pyNumberUnit.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	u, ok := units[strings.ToLower(m[2])]
	if !ok {
		return 0, 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	return f, u, err == nil
}

// pySize is units.py parse_size: an integer >= 0, or a number with B, KB/MB/GB, KiB/MiB/GiB
// (any case); int(float(number) * factor).
func pySize(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, x >= 0 && x <= maxSafeSize
	case string:
		f, u, ok := numberUnitOf(x, pySizeUnits)
		// Compared as the product: int64 of a float past its range is not defined.
		if !ok || f*u > float64(maxSafeSize) {
			return 0, false
		}
		return int64(f * u), true
	}
	return 0, false
}

// maxSafeSize is units.py's bound on a size: the registry's documents hold integers up to 2**53.
const maxSafeSize = int64(1) << 53

// pyDuration is units.py parse_duration (seconds): a finite number in [0, ten years], or a
// number with ms, s, m, h, d or w (any case).
func pyDuration(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		f := float64(x)
		return f, math.Abs(f) <= pyMaxSeconds && x >= 0
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > pyMaxSeconds || x < 0 {
			return 0, false
		}
		return x, true
	case string:
		f, u, ok := numberUnitOf(x, pyDurationUnits)
		// Ten years bounds a duration string as it bounds a number (units.py parse_duration).
		return f * u, ok && f*u <= pyMaxSeconds
	}
	return 0, false
}

// pyMilliseconds is units.py milliseconds: a half rounded away from zero.
func pyMilliseconds(seconds float64) int64 {
	ms := math.Abs(seconds) * 1000
	whole := math.Floor(ms)
	if ms-whole >= 0.5 {
		whole++
	}
	if seconds < 0 {
		return -int64(whole)
	}
	return int64(whole)
}

// pyInt is Python's int() of a TOML value: an integer, a float truncated, a boolean 0/1, a
// string of digits (surrounding whitespace, a sign and single underscores between digits allowed).
func pyInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case float64:
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			return 0, false
		case x >= 1<<63: // Python's int is unbounded: a value no entry holds (entries stay within 2^53)
			return math.MaxInt64, true
		case x < -(1 << 63):
			return math.MinInt64, true
		}
		return int64(x), true
	case string:
		s := strings.TrimFunc(x, pyIsSpace)
		neg := false
		if s != "" && (s[0] == '+' || s[0] == '-') {
			neg, s = s[0] == '-', s[1:]
		}
		if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			return 0, false
		}
		if neg {
			n = -n
		}
		return n, true
	}
	return 0, false
}

func pyIsSpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x20, r == 0x85, r == 0xa0, r == 0x1680,
		r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// notAString stands for Python's str() of a table, an array or a date-time: no entry field holds it.
const notAString = "\x00(not a string)"

// pyStr is Python's str() of a TOML value (a string as is, an integer in decimal, True/False, a
// float as Python's repr); tables, arrays and date-times compare equal to nothing.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return pyFloatRepr(x)
	}
	return notAString
}

// pyFloatRepr is Python's repr of a float: the shortest round-trip digits, positional when the
// exponent is in [-4, 16), else d.ddde+XX.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	if exp >= -4 && exp < 16 {
		var out string
		if exp < 0 {
			out = "0." + strings.Repeat("0", -exp-1) + digits
		} else if len(digits) <= exp+1 {
			out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		} else {
			out = digits[:exp+1] + "." + digits[exp+1:]
		}
		return sign + out
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es, exp = "-", -exp
	}
	return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
}

// pyTruthy is Python's truth of a TOML value.
func pyTruthy(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	case []map[string]any:
		return len(x) > 0
	case string:
		return x != ""
	case int64:
		return x != 0
	case float64:
		return x != 0
	case bool:
		return x
	}
	return true // date-times
}

// pyIn is Python's `key in v` for a TOML value: ok false where Python raises TypeError.
func pyIn(key string, v any) (found, ok bool) {
	switch x := v.(type) {
	case map[string]any:
		_, found := x[key]
		return found, true
	case []any:
		for _, e := range x {
			if s, isStr := e.(string); isStr && s == key {
				return true, true
			}
		}
		return false, true
	case []map[string]any:
		return false, true
	case string:
		return strings.Contains(x, key), true
	}
	return false, false
}
