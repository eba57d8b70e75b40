package verifier

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// The requirement and range syntax of the format 2 contract, section 7, with npm's semantics.
// Masterminds/semver parses and orders versions; the grammar (which differs from Masterminds'
// own constraint syntax: no hyphen ranges, no "!=", npm's prerelease rule) is ours.

var (
	partialRE = regexp.MustCompile(`^(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*|x|\*)(?:\.(0|[1-9][0-9]*|x|\*)(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?)?)?$`)
	// A release version: strict semver 2.0 without build metadata.
	versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$`)
)

// ParseVersion reads a release version (strict semver 2.0, no +build).
func ParseVersion(s string) (*semver.Version, bool) {
	if !versionRE.MatchString(s) {
		return nil, false
	}
	v, err := semver.StrictNewVersion(s)
	return v, err == nil
}

type op int

const (
	opEQ op = iota
	opGT
	opGE
	opLT
	opLE
)

// num is a number of a range. The grammar has no upper limit (Python reads any size): a number
// above 2^64-1, and the successor of 2^64-1 ("over"), is above every number of a release, which
// Masterminds/semver keeps in a uint64, so every such number compares the same.
type num struct {
	n    uint64
	over bool
}

func parseNum(s string) num {
	n, err := strconv.ParseUint(s, 10, 64)
	return num{n: n, over: err != nil}
}

func (x num) next() num {
	if x.over || x.n == math.MaxUint64 {
		return num{over: true}
	}
	return num{n: x.n + 1}
}

// boundVersion is the version of a bound: major.minor.patch, each possibly over, and a prerelease.
type boundVersion struct {
	core [3]num
	pre  string
}

func mkv(major, minor, patch num, pre string) boundVersion {
	return boundVersion{core: [3]num{major, minor, patch}, pre: pre}
}

// compare is the sign of v - b in semver precedence.
func (b boundVersion) compare(v *semver.Version) int {
	for i, n := range [3]uint64{v.Major(), v.Minor(), v.Patch()} {
		switch c := b.core[i]; {
		case c.over || n < c.n:
			return -1
		case n > c.n:
			return 1
		}
	}
	return comparePrerelease(v.Prerelease(), b.pre)
}

// sameCore reports whether v has b's major.minor.patch.
func (b boundVersion) sameCore(v *semver.Version) bool {
	for i, n := range [3]uint64{v.Major(), v.Minor(), v.Patch()} {
		if b.core[i].over || b.core[i].n != n {
			return false
		}
	}
	return true
}

// comparePrerelease is semver 2.0 precedence of two prereleases ("" is a release, above any):
// numeric identifiers compare numerically whatever their length (Masterminds/semver compares one
// beyond 2^64-1 as text), below alphanumeric ones, which compare in ASCII order.
func comparePrerelease(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" || b == "" {
		if a == "" {
			return 1
		}
		return -1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	numeric := func(s string) bool { return strings.Trim(s, "0123456789") == "" }
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		c := 0
		switch nx, ny := numeric(x), numeric(y); {
		case nx && ny:
			if c = cmpInt(len(x), len(y)); c == 0 {
				c = strings.Compare(x, y)
			}
		case nx:
			c = -1
		case ny:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return cmpInt(len(as), len(bs))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareVersions is the semver precedence of two releases (see comparePrerelease).
func compareVersions(a, b *semver.Version) int {
	return mkv(num{n: b.Major()}, num{n: b.Minor()}, num{n: b.Patch()}, b.Prerelease()).compare(a)
}

// bound is a primitive comparator; pre marks a bound the user wrote with a prerelease (only those
// admit prerelease versions, npm's rule).
type bound struct {
	op  op
	v   boundVersion
	pre bool
}

func (b bound) test(v *semver.Version) bool {
	c := b.v.compare(v)
	switch b.op {
	case opEQ:
		return c == 0
	case opGT:
		return c > 0
	case opGE:
		return c >= 0
	case opLT:
		return c < 0
	default:
		return c <= 0
	}
}

// Range is a parsed range: a union of sets, each an intersection of bounds.
type Range struct {
	text  string
	sets  [][]bound
	exact bool // the whole range is one full version, optionally with "=": may select a yanked release
}

func (r *Range) String() string { return r.text }

// Exact reports whether the range is an exact pin (`1.2.3` or `=1.2.3`).
func (r *Range) Exact() bool { return r.exact }

// Match applies npm's rule: v satisfies every bound of some set, and a prerelease v only where a
// bound of that set names the same major.minor.patch with a prerelease.
func (r *Range) Match(v *semver.Version) bool {
	for _, set := range r.sets {
		if matchSet(set, v) {
			return true
		}
	}
	return false
}

func matchSet(set []bound, v *semver.Version) bool {
	if v.Prerelease() != "" {
		named := false
		for _, b := range set {
			if b.pre && b.v.sameCore(v) {
				named = true
			}
		}
		if !named {
			return false
		}
	}
	for _, b := range set {
		if !b.test(v) {
			return false
		}
	}
	return true
}

func badRange(text, why string) *Error {
	return &Error{Class: ClassBadRequirement, What: fmt.Sprintf("range %q: %s", text, why),
		Fix: "write a range like ^1.2, ~1.2.3, >=1.0.0 <2.0.0, 1.2.3 or 1.x || 2 (npm syntax, no hyphen ranges)"}
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

// ParseRange parses the grammar of section 7 exactly (no leading or trailing blanks, no hyphen
// ranges); every failure is bad-requirement.
func ParseRange(text string) (*Range, error) {
	r := &Range{text: text}
	if text == "" || strings.Trim(text, " \t") != text || len(text) > 256 {
		return nil, badRange(text, "empty, surrounded by blanks or longer than 256 characters")
	}
	for _, setText := range strings.Split(text, "||") {
		// ws* around "||": trimmed here; a set itself must then be non-empty.
		setText = strings.Trim(setText, " \t")
		if setText == "" {
			return nil, badRange(text, "an empty alternative around '||'")
		}
		var set []bound
		tokens, err := splitComparators(setText)
		if err != "" {
			return nil, badRange(text, err)
		}
		for _, tok := range tokens {
			bs, why := comparator(tok)
			if why != "" {
				return nil, badRange(text, why)
			}
			set = append(set, bs...)
		}
		r.sets = append(r.sets, set)
	}
	// an exact pin by the grammar, whatever the size of its numbers (Python's rule)
	r.exact = versionRE.MatchString(strings.TrimPrefix(text, "="))
	return r, nil
}

// splitComparators splits a set on (ws+ | ws* "," ws*).
func splitComparators(s string) ([]string, string) {
	var out []string
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && !isWS(s[j]) && s[j] != ',' {
			j++
		}
		if j == i {
			return nil, "an empty comparator"
		}
		out = append(out, s[i:j])
		k := j
		for k < len(s) && isWS(s[k]) {
			k++
		}
		if k < len(s) && s[k] == ',' {
			k++
			for k < len(s) && isWS(s[k]) {
				k++
			}
			if k == len(s) {
				return nil, "a trailing ','"
			}
		}
		i = k
	}
	return out, ""
}

// comparator desugars one comparator into bounds (npm's caret, tilde and x-range rules).
func comparator(tok string) ([]bound, string) {
	if tok == "*" {
		return nil, ""
	}
	prefix := ""
	for _, p := range []string{">=", "<=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(tok, p) {
			prefix = p
			break
		}
	}
	m := partialRE.FindStringSubmatch(tok[len(prefix):])
	if m == nil {
		return nil, fmt.Sprintf("%q is not a comparator", tok)
	}
	wild := func(s string) bool { return s == "x" || s == "*" }
	if wild(m[2]) && m[3] != "" && !wild(m[3]) {
		return nil, fmt.Sprintf("%q has a wildcard minor but a fixed patch", tok)
	}
	M := parseNum(m[1])
	hasMinor := m[2] != "" && !wild(m[2])
	hasPatch := hasMinor && m[3] != "" && !wild(m[3])
	mi, pa, pre := num{}, num{}, m[4]
	if hasMinor {
		mi = parseNum(m[2])
	}
	if hasPatch {
		pa = parseNum(m[3])
	}
	full := hasMinor && hasPatch
	if pre != "" && !full {
		return nil, fmt.Sprintf("%q has a prerelease after a wildcard", tok)
	}
	low := mkv(M, mi, pa, pre)
	hasPre := pre != ""
	zero := num{}
	var above boundVersion
	switch {
	case !hasMinor:
		above = mkv(M.next(), zero, zero, "")
	case !hasPatch:
		above = mkv(M, mi.next(), zero, "")
	default:
		above = mkv(M, mi, pa.next(), "")
	}
	switch prefix {
	case "^":
		var top boundVersion
		switch {
		case M != zero || !hasMinor:
			top = mkv(M.next(), zero, zero, "")
		case mi != zero || !hasPatch:
			top = mkv(zero, mi.next(), zero, "")
		default:
			top = mkv(zero, zero, pa.next(), "")
		}
		return []bound{{opGE, low, hasPre}, {opLT, top, false}}, ""
	case "~":
		top := mkv(M, mi.next(), zero, "")
		if !hasMinor {
			top = mkv(M.next(), zero, zero, "")
		}
		return []bound{{opGE, low, hasPre}, {opLT, top, false}}, ""
	case "", "=":
		if full {
			return []bound{{opEQ, low, hasPre}}, ""
		}
		return []bound{{opGE, low, false}, {opLT, above, false}}, ""
	case ">":
		if full {
			return []bound{{opGT, low, hasPre}}, ""
		}
		return []bound{{opGE, above, false}}, ""
	case ">=":
		return []bound{{opGE, low, hasPre}}, ""
	case "<":
		return []bound{{opLT, low, hasPre}}, ""
	default: // "<="
		if full {
			return []bound{{opLE, low, hasPre}}, ""
		}
		return []bound{{opLT, above, false}}, ""
	}
}

var anyVersion, _ = ParseRange("*")

// Requirement is NAME or NAME@RANGE.
type Requirement struct {
	Name  string
	Range *Range // nil: the highest non-yanked compatible version
}

// ParseRequirement parses a requirement; a bad name or range is bad-requirement.
func ParseRequirement(spec string) (*Requirement, error) {
	name, rng, hasRange := strings.Cut(spec, "@")
	if !pluginNameRE.MatchString(name) {
		return nil, &Error{Class: ClassBadRequirement, What: fmt.Sprintf("%q is not a plugin name", name),
			Fix: "plugin names match ^[a-z][a-z0-9_-]{1,63}$; write NAME or NAME@RANGE"}
	}
	req := &Requirement{Name: name}
	if hasRange {
		r, err := ParseRange(rng)
		if err != nil {
			return nil, err
		}
		req.Range = r
	}
	return req, nil
}
