package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting: documents of this format nest a few levels, an attacker's many.
const maxJSONDepth = 64

// maxSafeInteger is 2^53: integers beyond it do not survive a round trip through a float64 parser,
// so two implementations could read different numbers.
const maxSafeInteger = 1 << 53

var integerLiteral = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// ParseStrictJSON parses RFC 8259 JSON the way every registry-tool verifier must: UTF-8 without a
// byte order mark, no duplicate member names (parsers keeping the first or the last duplicate would
// see different documents), no lone surrogate escapes, no trailing data. Objects become
// map[string]any, numbers json.Number (their literal text), so integer rules can be exact.
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ParseStrictJSON(data []byte) (any, error) {
	v, err := parseStrictJSON(data)
	return v, classedInput(err, "")
}

// parseStrictJSON is ParseStrictJSON with the rule errors the package's own steps give their step's class.
func parseStrictJSON(data []byte) (any, error) {
	if bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}) {
		return nil, errors.New("starts with a byte order mark")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func readValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested more than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %v", err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("invalid JSON: object key is not a string")
				}
				if _, dup := obj[key]; dup {
					return nil, fmt.Errorf("duplicate member name %q", key)
				}
				val, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj[key] = val
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %v", err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %v", err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("invalid JSON: unexpected %v", t)
	case json.Number:
		// Integers beyond +-2^53 lose precision in other languages' parsers: refused anywhere.
		if integerLiteral.MatchString(string(t)) {
			if i, err := strconv.ParseInt(string(t), 10, 64); err != nil || i > maxSafeInteger || i < -maxSafeInteger {
				return nil, fmt.Errorf("integer %.32s is beyond +-2^53", string(t))
			}
		} else if f, err := strconv.ParseFloat(string(t), 64); err != nil && math.IsInf(f, 0) {
			// 1e400: no float64 holds it (Python reads infinity and refuses it too)
			return nil, fmt.Errorf("number %.32s is out of range", string(t))
		}
		return t, nil
	default:
		return tok, nil
	}
}

// checkSurrogates refuses \uD800-\uDFFF escapes that are not a high+low pair: encoding/json
// would silently turn them into U+FFFD, another implementation into something else.
func checkSurrogates(data []byte) error {
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(data) {
				return nil // the parser reports the truncation
			}
			if data[i+1] != 'u' {
				i++
				continue
			}
			u, ok := hex4(data, i+2)
			if !ok {
				return nil // the parser reports the bad escape
			}
			switch {
			case u >= 0xD800 && u <= 0xDBFF:
				low, ok := uint32(0), false
				if i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
					low, ok = hex4(data, i+8)
				}
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return errors.New("lone surrogate escape in a string")
				}
				i += 11
			case u >= 0xDC00 && u <= 0xDFFF:
				return errors.New("lone surrogate escape in a string")
			default:
				i += 5
			}
		}
	}
	return nil
}

func hex4(data []byte, at int) (uint32, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[at:at+4]), 16, 32)
	return uint32(n), err == nil
}

// doc reads a parsed JSON document against a fixed shape; the first violation is kept and every
// later read returns a zero value, so parsing code reads straight through and checks err once.
type doc struct {
	class Class
	code  string // the docs/trust.md rule, e.g. "root-format"; defaults to the class
	where string
	err   *Error
}

func (d *doc) fail(path, format string, args ...any) {
	if d.err == nil {
		what := fmt.Sprintf(format, args...)
		if path != "" {
			what = path + ": " + what
		}
		code := d.code
		if code == "" {
			code = string(d.class)
		}
		d.err = &Error{Class: d.class, Code: code, What: what, Where: d.where,
			Fix: "the document does not follow the registry format; restore it from the registry"}
	}
}

// object returns v as an object whose member names are all in required or optional, and that has
// every required one.
func (d *doc) object(v any, path string, required, optional []string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object")
		return map[string]any{}
	}
	allowed := map[string]bool{}
	for _, k := range required {
		allowed[k] = true
		if _, ok := m[k]; !ok {
			d.fail(path, "required member %q is missing", k)
		}
	}
	for _, k := range optional {
		allowed[k] = true
	}
	if required != nil || optional != nil {
		for _, k := range sortedKeys(m) {
			if !allowed[k] {
				d.fail(path, "unknown member %q", k)
			}
		}
	}
	return m
}

// anyObject is an object with arbitrary member names (a map).
func (d *doc) anyObject(v any, path string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object")
		return map[string]any{}
	}
	return m
}

func (d *doc) array(v any, path string) []any {
	a, ok := v.([]any)
	if !ok {
		d.fail(path, "expected an array")
		return nil
	}
	return a
}

func (d *doc) str(v any, path string) string {
	s, ok := v.(string)
	if !ok {
		d.fail(path, "expected a string")
	}
	return s
}

// maxDocString is the most characters a string of a registry document holds where its field
// names no lower limit (the Python client's documents and the Rust verifier).
const maxDocString = 65536

// strMax is a string of at most max characters (code points, as Python and Rust count them).
func (d *doc) strMax(v any, path string, max int) string {
	s := d.str(v, path)
	if d.err == nil && len(s) > max && utf8.RuneCountInString(s) > max {
		d.fail(path, "longer than %d characters", max)
	}
	return s
}

// docStrings is an array of strings of at most maxDocString characters each, matching re when given.
func (d *doc) docStrings(v any, path string, re *regexp.Regexp) []string {
	out := d.strings(v, path, re, false)
	for i, s := range out {
		if d.err == nil && len(s) > maxDocString && utf8.RuneCountInString(s) > maxDocString {
			d.fail(fmt.Sprintf("%s[%d]", path, i), "longer than %d characters", maxDocString)
		}
	}
	return out
}

// match is a string matching re in full (Go's regexp anchors do not accept a trailing newline).
func (d *doc) match(v any, re *regexp.Regexp, path string) string {
	s := d.str(v, path)
	if d.err == nil && !re.MatchString(s) {
		d.fail(path, "%q does not match %s", s, re.String())
	}
	return s
}

func (d *doc) boolean(v any, path string) bool {
	b, ok := v.(bool)
	if !ok {
		d.fail(path, "expected true or false")
	}
	return b
}

// integer is a JSON integer written without fraction or exponent, within +-2^53, >= min.
func (d *doc) integer(v any, path string, min int64) int64 {
	n, ok := v.(json.Number)
	if !ok || !integerLiteral.MatchString(string(n)) {
		d.fail(path, "expected an integer")
		return 0
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i > maxSafeInteger || i < -maxSafeInteger {
		d.fail(path, "integer %s is out of range", n)
		return 0
	}
	if i < min {
		d.fail(path, "integer %d is below %d", i, min)
	}
	return i
}

func (d *doc) strings(v any, path string, re *regexp.Regexp, unique bool) []string {
	arr := d.array(v, path)
	out := make([]string, 0, len(arr))
	seen := map[string]bool{}
	for i, item := range arr {
		p := fmt.Sprintf("%s[%d]", path, i)
		var s string
		if re != nil {
			s = d.match(item, re, p)
		} else {
			s = d.str(item, p)
		}
		if unique && seen[s] {
			d.fail(p, "%q is listed twice", s)
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
