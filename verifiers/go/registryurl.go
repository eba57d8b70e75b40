package verifier

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// lockedRegistryProblem says why a lockfile entry's registry URL is one the Python client refuses
// ("" when it accepts it). The trust state is looked up by each entry's registry URL, so reading
// the lockfile refuses such an entry (class lockfile, as the Python client's install._registry),
// whatever the operation. The Python client's normalise_url (registry_tool/client/store.py) refuses a URL
// urlsplit cannot parse (an unbalanced or invalid bracketed host, a port that is not 0-65535 in
// ASCII digits), whose scheme is not http, https or file, or that names no host (file URLs
// excepted); conformance decision 15.
func lockedRegistryProblem(raw string) string {
	u := strings.TrimFunc(raw, pyIsSpace)
	u = strings.TrimLeft(u, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	u = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(u)
	scheme := ""
	if i := strings.IndexByte(u, ':'); i > 0 && isASCIIAlpha(u[0]) && strings.Trim(u[:i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == "" {
		scheme, u = strings.ToLower(u[:i]), u[i+1:]
	}
	netloc := ""
	if strings.HasPrefix(u, "//") {
		netloc = u[2:]
		if j := strings.IndexAny(netloc, "/?#"); j >= 0 {
			netloc = netloc[:j]
		}
		open, closed := strings.Contains(netloc, "["), strings.Contains(netloc, "]")
		if open != closed {
			return "cannot be parsed (Invalid IPv6 URL)"
		}
		if open {
			inner := netloc[strings.Index(netloc, "[")+1:]
			inner, _, _ = strings.Cut(inner, "]")
			if !bracketedHostOK(inner) {
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
			return fmt.Sprintf("cannot be parsed (the port %q is not a number)", port)
		}
		if n > 65535 {
			return "cannot be parsed (the port is out of range 0-65535)"
		}
	}
	if scheme != "http" && scheme != "https" && scheme != "file" {
		return "is not an http://, https:// or file:// URL"
	}
	if scheme != "file" && host == "" {
		return "names no host"
	}
	return ""
}

func isASCIIAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// bracketedHostOK is Python's _check_bracketed_host: an IPvFuture (v<hex>.<chars>) or an IPv6
// address (with an optional zone), never an IPv4 one.
func bracketedHostOK(h string) bool {
	if strings.HasPrefix(h, "v") {
		hex, rest, ok := strings.Cut(h[1:], ".")
		return ok && hex != "" && strings.Trim(strings.ToLower(hex), "0123456789abcdef") == "" && rest != "" &&
			strings.Trim(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:") == ""
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6()
}
