package verifier

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// lockedRegistryProblem says why a lockfile entry's registry URL is one the Python client refuses
// ("" when it accepts it). The trust state is looked up by each entry's registry URL, so reading
// the lockfile refuses such an entry (class lockfile, as the Python client's install._registry),
// whatever the operation. The Python client's normalise_url (registry_tool/client/store.py) refuses a URL
// urlsplit cannot parse (an unbalanced or invalid bracketed host, a netloc holding a character
// whose NFKC form holds / ? # @ or :, a port that is not 0-65535 in ASCII digits), whose scheme
// is not http, https or file, that holds a user name or password, or that names no host (file URLs
// excepted); conformance decision 15.
func lockedRegistryProblem(raw string) string {
	scheme, netloc, _, hasNetloc := splitURL(raw)
	// With an "@" anywhere, a piece of the netloc may be a password's ("https://ci:ab/cd@host/"
	// has the port "ab"): the messages then name no piece of it.
	secret := strings.Contains(raw, "@") || strings.Contains(raw, "%40")
	if hasNetloc {
		if strings.ContainsFunc(netloc, nfkcURLDelimiter) {
			return "cannot be parsed (the host holds a character that NFKC-normalises to one of / ? # @ :)"
		}
		open, closed := strings.Contains(netloc, "["), strings.Contains(netloc, "]")
		if open != closed {
			return "cannot be parsed (Invalid IPv6 URL)"
		}
		if open {
			inner := netloc[strings.Index(netloc, "[")+1:]
			inner, _, _ = strings.Cut(inner, "]")
			if !bracketedHostOK(inner) {
				if secret {
					return "cannot be parsed (the bracketed host is not an IPv6 address)"
				}
				return fmt.Sprintf("cannot be parsed (%q is not an IPv6 address)", inner)
			}
		}
	}
	hostinfo := netloc[strings.LastIndex(netloc, "@")+1:]
	var host, port string
	if _, bracketed, ok := strings.Cut(hostinfo, "["); ok {
		var rest string
		host, rest, _ = strings.Cut(bracketed, "]")
		_, port, _ = strings.Cut(rest, ":")
	} else {
		host, port, _ = strings.Cut(hostinfo, ":")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || strings.Trim(port, "0123456789") != "" {
			if secret {
				return "cannot be parsed (the port is not a number)"
			}
			return fmt.Sprintf("cannot be parsed (the port %q is not a number)", port)
		}
		if n > 65535 {
			return "cannot be parsed (the port is out of range 0-65535)"
		}
	}
	if scheme != "http" && scheme != "https" && scheme != "file" {
		return "is not an http://, https:// or file:// URL"
	}
	if strings.Contains(netloc, "@") {
		return userinfoProblem
	}
	if scheme != "file" && host == "" {
		return "names no host"
	}
	return ""
}

// splitURL is the first steps of Python's urlsplit on strip()ped input: leading C0 controls and
// spaces dropped, tabs, CR and LF removed anywhere, a scheme (lower-cased) before the first ":",
// the netloc between "//" and the first "/", "?" or "#", and what follows it.
func splitURL(raw string) (scheme, netloc, rest string, hasNetloc bool) {
	u := strings.TrimFunc(raw, pyIsSpace)
	u = strings.TrimLeft(u, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	u = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(u)
	if i := strings.IndexByte(u, ':'); i > 0 && isASCIIAlpha(u[0]) && strings.Trim(u[:i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == "" {
		scheme, u = strings.ToLower(u[:i]), u[i+1:]
	}
	if !strings.HasPrefix(u, "//") {
		return scheme, "", u, false
	}
	netloc, rest = u[2:], ""
	if j := strings.IndexAny(netloc, "/?#"); j >= 0 {
		netloc, rest = netloc[:j], netloc[j:]
	}
	return scheme, netloc, rest, true
}

// canonicalRegistryURL is the one spelling the Python client's normalise_url gives a registry URL
// lockedRegistryProblem accepts: scheme and host lower-cased, the path without a trailing
// "registry.json" (people paste the file's URL) and with a trailing "/", no query or fragment.
// The trust state and every lockfile entry hold it, so the three clients name a registry alike.
// A URL lockedRegistryProblem refuses is returned as it is (its own check refuses it).
func canonicalRegistryURL(raw string) string {
	if lockedRegistryProblem(raw) != "" {
		return raw
	}
	scheme, netloc, rest, _ := splitURL(raw)
	path := rest
	if j := strings.IndexAny(path, "?#"); j >= 0 {
		path = path[:j]
	}
	path = strings.TrimSuffix(path, "registry.json")
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	if netloc == "" && strings.HasPrefix(path, "//") {
		return scheme + ":" + path // Python's urlunsplit adds no "//" before a path that has one
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + pyLower(netloc) + path
}

// pyLower is Python's str.lower: each character's simple lower-case mapping, except the
// unconditional special casing of U+0130 (i and a combining dot above) and the Final_Sigma rule
// (a capital sigma after a cased letter and not before one, case-ignorable characters skipped,
// becomes a final sigma). strings.ToLower maps U+0130 to a plain i: another host.
func pyLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch {
		case r == '\u0130':
			b.WriteString("i\u0307")
		case r == '\u03a3' && finalSigma(rs, i):
			b.WriteRune('\u03c2')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	k := i + 1
	for k < len(rs) && caseIgnorable(rs[k]) {
		k++
	}
	return k == len(rs) || !cased(rs[k])
}

// cased and caseIgnorable are Unicode's derived Cased and Case_Ignorable properties.
func cased(r rune) bool {
	return unicode.In(r, unicode.Ll, unicode.Lu, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func caseIgnorable(r rune) bool {
	// Word_Break MidLetter, MidNumLet and Single_Quote, then the general categories.
	if strings.ContainsRune(":.'\u00b7\u0387\u055f\u05f4\u2018\u2019\u2024\u2027\ufe13\ufe52\ufe55\uff07\uff0e\uff1a", r) {
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// userinfoProblem: a registry URL is written into the lockfile, the trust state and messages, so
// a user name or password in it would leak (conformance decision 15).
const userinfoProblem = "holds a user name or password, which would be written into the lockfile, the trust state and messages"

// redactedURL is how a refused URL is shown, the rule of the Python client's store.redacted:
// tabs, CR and LF removed; everything from the first "//" to the last "@" after it becomes "***"
// (a password may hold "/", "?" or "#": base64 tokens do); then, in each run of characters other
// than whitespace, quotes, "/", "[", "]" and "@", the part before an "@" that ends the run or
// before the run's last "%40" becomes "***" ("https:/user:token@host"). Over-redacting costs
// nothing.
func redactedURL(raw string) string {
	clean := strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(raw)
	if i := strings.Index(clean, "//"); i >= 0 {
		if at := strings.LastIndex(clean[i+2:], "@"); at >= 0 {
			clean = clean[:i+2] + "***" + clean[i+2+at:]
		}
	}
	var out strings.Builder
	for len(clean) > 0 {
		end := strings.IndexFunc(clean, runBreak)
		if end < 0 {
			end = len(clean)
		}
		run := clean[:end]
		switch {
		case end > 0 && end < len(clean) && clean[end] == '@':
			run = "***"
		case strings.LastIndex(run, "%40") > 0:
			run = "***" + run[strings.LastIndex(run, "%40"):]
		}
		out.WriteString(run)
		if end < len(clean) {
			_, size := utf8.DecodeRuneInString(clean[end:])
			out.WriteString(clean[end : end+size])
			end += size
		}
		clean = clean[end:]
	}
	return out.String()
}

// runBreak ends a run redactedURL looks at.
func runBreak(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("'\"/[]@", r)
}

func isASCIIAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// bracketedHostOK is Python's _check_bracketed_host: an IPvFuture (a lower-case v, hex digits, a
// dot, then any characters at all: Python's pattern is v[a-fA-F0-9]+\..+) or an IPv6 address
// with an optional zone (Python's ipaddress: a zone is not empty and holds no %), never an IPv4
// one.
func bracketedHostOK(h string) bool {
	if strings.HasPrefix(h, "v") {
		hex, rest, ok := strings.Cut(h[1:], ".")
		return ok && hex != "" && strings.Trim(strings.ToLower(hex), "0123456789abcdef") == "" && rest != ""
	}
	if _, zone, ok := strings.Cut(h, "%"); ok && strings.Contains(zone, "%") {
		return false
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6()
}

// nfkcURLDelimiter says whether r is one of the characters whose NFKC form holds / ? # @ or :,
// which Python's urlsplit refuses in a netloc (urllib.parse._checknetloc: a non-ASCII netloc,
// its @ and : removed, must not gain one of them under NFKC; as NFKC never composes these ASCII
// characters away, that is a netloc holding one of these code points). The list is every such
// code point of Python's unicodedata (Unicode 14):
//
//	[c for c in range(0x80, 0x110000) if any(x in unicodedata.normalize("NFKC", chr(c)) for x in "/?#@:")]
func nfkcURLDelimiter(r rune) bool {
	switch r {
	case 0x2047, 0x2048, 0x2049, // ⁇ ⁈ ⁉
		0x2100, 0x2101, 0x2105, 0x2106, // ℀ ℁ ℅ ℆ (a/c a/s c/o c/u)
		0x2A74,                                         // ⩴ (::=)
		0xFE13, 0xFE16, 0xFE55, 0xFE56, 0xFE5F, 0xFE6B, // vertical and small forms
		0xFF03, 0xFF0F, 0xFF1A, 0xFF1F, 0xFF20: // full-width # / : ? @
		return true
	}
	return false
}
