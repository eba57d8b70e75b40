package verifier

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"
)

const maxRootBytes = 1024 * 1024

// The name rules of docs/trust.md and the format 2 contract, matched in full (Go's `$` never
// accepts a trailing newline).
var (
	pluginNameRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,63}$`)
	pluginPatternRE = regexp.MustCompile(`^(\*|[a-z][a-z0-9_-]{0,62}\*|[a-z][a-z0-9_-]{1,63})$`)
	registryNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	maintainerIDRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	keyIDRE         = regexp.MustCompile(`^[0-9A-F]{16}$`)
	timeRE          = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`)
	publicKeyLineRE = regexp.MustCompile(`^RW[QRST][A-Za-z0-9+/]{53}$`)
)

// TimeLayout is the only time format of the registry: RFC 3339 UTC, seconds, Z.
const TimeLayout = "2006-01-02T15:04:05Z"

// ParseTime reads YYYY-MM-DDTHH:MM:SSZ (a valid calendar date and time). Years start at 0001, as
// in Python's datetime and the Rust verifier: time.Parse also takes year 0000.
func ParseTime(s string) (time.Time, bool) {
	if !timeRE.MatchString(s) {
		return time.Time{}, false
	}
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Year() < 1 {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// patternWithin: every plugin name pattern inner matches is also matched by pattern outer
// (docs/trust.md 5.5 step 4): outer "prefix*" holds inner (without its trailing "*") starting
// with prefix; an exact outer holds only itself.
func patternWithin(inner, outer string) bool {
	if strings.HasSuffix(outer, "*") {
		return strings.HasPrefix(strings.TrimSuffix(inner, "*"), strings.TrimSuffix(outer, "*"))
	}
	return inner == outer
}

func patternMatches(pattern, plugin string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(plugin, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == plugin
}

// Revocation is one entry of a root's "revoked" list (docs/trust.md 5.3).
type Revocation struct {
	Key               PublicKey
	RevokedInVersion  int64
	RevokedAt         time.Time
	KeepPriorReleases bool
	Plugins           []string
}

func (r Revocation) covers(plugin string) bool {
	for _, p := range r.Plugins {
		if patternMatches(p, plugin) {
			return true
		}
	}
	return false
}

// Maintainer is a delegation of plugin names/patterns to keys.
type Maintainer struct {
	ID      string
	Keys    []PublicKey
	Plugins []string
}

func (m Maintainer) covers(plugin string) bool {
	for _, p := range m.Plugins {
		if patternMatches(p, plugin) {
			return true
		}
	}
	return false
}

// Role is a set of authorised keys, how many distinct ones must sign, and recognised keys whose
// signatures are refused with a reason (revoked keys, keys not delegated for this plugin).
type Role struct {
	Name      string
	Keys      []PublicKey
	Threshold int64
	Refused   []Refused
}

// Refused is a key whose valid signature does not count, and the error it gives.
type Refused struct {
	Key PublicKey
	Err *Error
}

// Root is parsed, checked root metadata (docs/trust.md section 5).
type Root struct {
	Raw              []byte
	Registry         string
	Version          int64
	Expires          time.Time
	Keys             map[string]PublicKey
	Roles            map[string]Role
	Maintainers      map[string]Maintainer
	PluginThresholds map[string]int64
	Revoked          []Revocation
}

// Expired: now >= expires.
func (r *Root) Expired(now time.Time) bool { return !now.Before(r.Expires) }

func rootFormat(where, format string, args ...any) *Error {
	return trustError("root-format", where, "restore the root metadata; edit roots with `registry-tool root ...`", format, args...)
}

// ParseRoot parses root metadata strictly: JSON, the schema, then the semantic rules of
// docs/trust.md 5.1. Errors have code root-format.
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ParseRoot(data []byte, where string) (*Root, error) {
	v, err := parseRoot(data, where)
	return v, classedInput(err, where)
}

// parseRoot is ParseRoot with the rule errors the package's own steps give their step's class.
func parseRoot(data []byte, where string) (*Root, error) {
	if len(data) > maxRootBytes {
		return nil, rootFormat(where, "root metadata is larger than %d bytes", maxRootBytes)
	}
	v, err := parseStrictJSON(data)
	if err != nil {
		return nil, rootFormat(where, "not valid root JSON: %v", err)
	}
	d := &doc{code: "root-format", where: where}
	top := d.object(v, "", []string{"_type", "spec_version", "registry", "version", "expires", "keys", "roles",
		"maintainers", "plugin_thresholds", "revoked"}, []string{"registry_config"})
	// registry_config pins registry.toml for ci check and build (docs/trust.md 5.8); a verifier
	// only checks its shape.
	if rc, ok := top["registry_config"]; ok {
		pin := d.object(rc, "registry_config", []string{"sha256"}, nil)
		if sum, ok := pin["sha256"].(string); !ok || !sha256RE.MatchString(sum) {
			d.fail("registry_config.sha256", "must be 64 lower-case hex digits")
		}
	}
	if t, ok := top["_type"].(string); !ok || t != "registry-root" {
		d.fail("_type", "must be \"registry-root\"")
	}
	if d.integer(top["spec_version"], "spec_version", 1) != 1 {
		d.fail("spec_version", "must be 1")
	}
	r := &Root{Raw: data, Keys: map[string]PublicKey{}, Roles: map[string]Role{}, Maintainers: map[string]Maintainer{},
		PluginThresholds: map[string]int64{}}
	r.Registry = d.match(top["registry"], registryNameRE, "registry")
	r.Version = d.integer(top["version"], "version", 1)
	expires := d.match(top["expires"], timeRE, "expires")
	if d.err == nil {
		t, ok := ParseTime(expires)
		if !ok {
			d.fail("expires", "%q is not a valid time", expires)
		}
		r.Expires = t
	}
	parseKey := func(v any, path string) PublicKey {
		line := d.match(v, publicKeyLineRE, path)
		if d.err != nil {
			return PublicKey{}
		}
		k, err := parsePublicKey([]byte(line))
		if err != nil {
			d.fail(path, "invalid public key: %s", AsError(err).What)
		}
		return k
	}
	keys := d.anyObject(top["keys"], "keys")
	for _, id := range sortedKeys(keys) {
		path := "keys." + id
		if !keyIDRE.MatchString(id) {
			d.fail(path, "key id is not 16 upper-case hex digits")
		}
		e := d.object(keys[id], path, []string{"public_key"}, []string{"comment"})
		if c, ok := e["comment"]; ok {
			if s := d.str(c, path+".comment"); len([]rune(s)) > 256 {
				d.fail(path+".comment", "longer than 256 characters")
			}
		}
		k := parseKey(e["public_key"], path+".public_key")
		if d.err == nil && k.KeyID() != id {
			d.fail(path, "holds a public key with key id %s", k.KeyID())
		}
		r.Keys[id] = k
	}
	resolve := func(v any, path string) []PublicKey {
		ids := d.strings(v, path, keyIDRE, true)
		if d.err == nil && len(ids) == 0 {
			d.fail(path, "must not be empty")
		}
		out := []PublicKey{}
		for _, id := range ids {
			k, ok := r.Keys[id]
			if !ok && d.err == nil {
				d.fail(path, "unknown key id %s", id)
			}
			out = append(out, k)
		}
		return out
	}
	roles := d.object(top["roles"], "roles", []string{"root", "index"}, nil)
	for _, name := range []string{"root", "index"} {
		path := "roles." + name
		spec := d.object(roles[name], path, []string{"keyids", "threshold"}, nil)
		rk := resolve(spec["keyids"], path+".keyids")
		t := d.integer(spec["threshold"], path+".threshold", 1)
		if d.err == nil && t > int64(len(distinct(rk))) {
			d.fail(path+".threshold", "threshold %d exceeds the %d distinct key(s) of the role", t, len(distinct(rk)))
		}
		r.Roles[name] = Role{Name: name + " role", Keys: rk, Threshold: t}
	}
	ms := d.anyObject(top["maintainers"], "maintainers")
	for _, id := range sortedKeys(ms) {
		path := "maintainers." + id
		if !maintainerIDRE.MatchString(id) {
			d.fail(path, "maintainer id does not match %s", maintainerIDRE)
		}
		m := d.object(ms[id], path, []string{"keyids", "plugins"}, nil)
		mk := resolve(m["keyids"], path+".keyids")
		pats := d.strings(m["plugins"], path+".plugins", pluginPatternRE, true)
		if d.err == nil && len(pats) == 0 {
			d.fail(path+".plugins", "must not be empty")
		}
		r.Maintainers[id] = Maintainer{ID: id, Keys: mk, Plugins: pats}
	}
	pt := d.anyObject(top["plugin_thresholds"], "plugin_thresholds")
	for _, name := range sortedKeys(pt) {
		if !pluginNameRE.MatchString(name) {
			d.fail("plugin_thresholds."+name, "not a plugin name")
		}
		r.PluginThresholds[name] = d.integer(pt[name], "plugin_thresholds."+name, 1)
	}
	if d.err != nil {
		return nil, d.err
	}
	// The online index key must not also be a root or maintainer key.
	other := map[string]bool{}
	for _, k := range r.Roles["root"].Keys {
		other[string(k.Key)] = true
	}
	for _, m := range r.Maintainers {
		for _, k := range m.Keys {
			other[string(k.Key)] = true
		}
	}
	for _, k := range r.Roles["index"].Keys {
		if other[string(k.Key)] {
			return nil, rootFormat(where, "roles.index.keyids: an index key is also a root or maintainer key")
		}
	}
	all := map[string]bool{}
	for _, k := range r.Keys {
		all[string(k.Key)] = true
	}
	revoked := d.array(top["revoked"], "revoked")
	for i, item := range revoked {
		path := fmt.Sprintf("revoked[%d]", i)
		e := d.object(item, path, []string{"keyid", "public_key", "revoked_in_version", "revoked_at",
			"keep_prior_releases", "plugins"}, []string{"reason"})
		id := d.match(e["keyid"], keyIDRE, path+".keyid")
		k := parseKey(e["public_key"], path+".public_key")
		riv := d.integer(e["revoked_in_version"], path+".revoked_in_version", 1)
		at := d.match(e["revoked_at"], timeRE, path+".revoked_at")
		keep := d.boolean(e["keep_prior_releases"], path+".keep_prior_releases")
		pats := d.strings(e["plugins"], path+".plugins", pluginPatternRE, true)
		if reason, ok := e["reason"]; ok {
			if s := d.str(reason, path+".reason"); len([]rune(s)) > 1024 {
				d.fail(path+".reason", "longer than 1024 characters")
			}
		}
		if d.err != nil {
			return nil, d.err
		}
		if k.KeyID() != id {
			return nil, rootFormat(where, "%s: revoked key id %s does not match its public key (%s)", path, id, k.KeyID())
		}
		if all[string(k.Key)] {
			return nil, rootFormat(where, "%s: revoked key %s is still listed under keys", path, id)
		}
		for _, prev := range r.Revoked {
			if string(prev.Key.Key) == string(k.Key) {
				return nil, rootFormat(where, "%s: key %s is revoked twice", path, id)
			}
		}
		// Within one root a key id names one public key (docs/trust.md 5.1 rule 7): a key id is
		// chosen by whoever makes the key, so a copied id must not describe two keys.
		_, kept := r.Keys[id]
		for _, prev := range r.Revoked {
			kept = kept || prev.Key.KeyID() == id
		}
		if kept {
			return nil, rootFormat(where, "%s: key id %s names two different public keys", path, id)
		}
		if riv > r.Version {
			return nil, rootFormat(where, "%s: revoked_in_version is later than this version", path)
		}
		t, ok := ParseTime(at)
		if !ok {
			return nil, rootFormat(where, "%s.revoked_at: %q is not a valid time", path, at)
		}
		r.Revoked = append(r.Revoked, Revocation{Key: k, RevokedInVersion: riv, RevokedAt: t, KeepPriorReleases: keep, Plugins: pats})
	}
	if d.err != nil {
		return nil, d.err
	}
	for _, name := range sortedKeys(r.PluginThresholds) {
		if n := len(r.delegatedKeys(name)); r.PluginThresholds[name] > int64(n) {
			return nil, rootFormat(where, "plugin_thresholds.%s: needs %d maintainer signatures, only %d key(s) are delegated",
				name, r.PluginThresholds[name], n)
		}
	}
	return r, nil
}

func distinct(keys []PublicKey) []PublicKey {
	seen := map[string]bool{}
	out := []PublicKey{}
	for _, k := range keys {
		if !seen[string(k.Key)] {
			seen[string(k.Key)] = true
			out = append(out, k)
		}
	}
	return out
}

func (r *Root) revokedRefusals() []Refused {
	out := []Refused{}
	for _, rv := range r.Revoked {
		out = append(out, Refused{Key: rv.Key, Err: trustError("revoked-key", "", "sign with a current key",
			"key %s was revoked in root version %d at %s", rv.Key.KeyID(), rv.RevokedInVersion, rv.RevokedAt.Format(TimeLayout))})
	}
	return out
}

// role returns a role of this root with its revoked keys as refused candidates.
func (r *Root) role(name string) Role {
	base := r.Roles[name]
	base.Refused = r.revokedRefusals()
	return base
}

func (r *Root) delegatedKeys(plugin string) []PublicKey {
	var keys []PublicKey
	for _, id := range sortedKeys(r.Maintainers) {
		m := r.Maintainers[id]
		if m.covers(plugin) {
			keys = append(keys, m.Keys...)
		}
	}
	return distinct(keys)
}

// releaseRole is docs/trust.md 5.3/5.4: the keys delegated for plugin, revoked keys that still
// count for a release published before their revocation, and every other known key refused.
func (r *Root) releaseRole(plugin string, publishedAt *time.Time) Role {
	delegated := r.delegatedKeys(plugin)
	allowed := map[string]bool{}
	for _, k := range delegated {
		allowed[string(k.Key)] = true
	}
	var refused []Refused
	for _, id := range sortedKeys(r.Maintainers) {
		m := r.Maintainers[id]
		for _, k := range m.Keys {
			if !allowed[string(k.Key)] {
				refused = append(refused, Refused{Key: k, Err: trustError("unauthorized-signer", "",
					"ask the registry owners to delegate the plugin to this key, or sign with a delegated key",
					"key %s (maintainer '%s') is delegated for %s, not for plugin '%s'", k.KeyID(), m.ID, strings.Join(m.Plugins, ", "), plugin)})
			}
		}
	}
	for _, name := range []string{"root", "index"} {
		for _, k := range r.Roles[name].Keys {
			if !allowed[string(k.Key)] {
				refused = append(refused, Refused{Key: k, Err: trustError("unauthorized-signer", "",
					"sign releases with a maintainer key delegated for the plugin",
					"key %s is in the %s role, which cannot sign plugin releases", k.KeyID(), name)})
			}
		}
	}
	for _, rv := range r.Revoked {
		why := ""
		switch {
		case !rv.KeepPriorReleases:
			why = "the registry did not keep the releases it signed"
		case !rv.covers(plugin):
			why = fmt.Sprintf("it was never delegated for plugin '%s'", plugin)
		case publishedAt == nil:
			why = "the release's publication time is unknown, so it cannot be shown to predate the revocation"
		case !publishedAt.Before(rv.RevokedAt):
			why = fmt.Sprintf("the release was published at %s, not before the revocation", publishedAt.Format(TimeLayout))
		}
		if why == "" {
			delegated = append(delegated, rv.Key)
			continue
		}
		refused = append(refused, Refused{Key: rv.Key, Err: trustError("revoked-key", "",
			"have a current maintainer of the plugin re-sign the release",
			"key %s was revoked in root version %d at %s; %s", rv.Key.KeyID(), rv.RevokedInVersion, rv.RevokedAt.Format(TimeLayout), why)})
	}
	t := r.PluginThresholds[plugin]
	if t == 0 {
		t = 1
	}
	return Role{Name: fmt.Sprintf("maintainers of '%s'", plugin), Keys: delegated, Threshold: t, Refused: refused}
}

// counted is one distinct key whose signature verified and counts.
type counted struct {
	keyID   string
	comment string
}

type tally struct {
	counted  map[string]counted // raw public key -> signature
	order    []string
	rejected []*Error
	// Every signature that verified, a key's second one too: the trusted-comment rule judges
	// each (two files by one key, one naming another release, are refused in any order).
	verified []counted
}

func checkOne(sigText, data []byte, role Role) (counted, string, *Error) {
	s, err := parseSignature(sigText)
	if err != nil {
		return counted{}, "", AsError(err)
	}
	if s.Algorithm == "Ed" {
		return counted{}, "", trustError("legacy-signature", "", "re-sign with registry-tool or minisign 0.8+",
			"legacy 'Ed' (non-prehashed) signatures are never accepted for registry metadata")
	}
	type cand struct {
		key PublicKey
		err *Error
	}
	var matching []cand
	for _, k := range role.Keys {
		if k.KeyNum == s.KeyNum {
			matching = append(matching, cand{key: k})
		}
	}
	for _, rf := range role.Refused {
		if rf.Key.KeyNum == s.KeyNum {
			matching = append(matching, cand{key: rf.Key, err: rf.Err})
		}
	}
	if len(matching) == 0 {
		return counted{}, "", trustError("unauthorized-signer", "", "sign with a key of the "+role.Name,
			"signature by key %s, which is not a key of the %s", keyIDOf(s.KeyNum), role.Name)
	}
	// The key id only selects candidates; each is tried against its full public key.
	for _, c := range matching {
		if !s.verifyWith(c.key, data) {
			continue
		}
		if c.err != nil {
			return counted{}, "", c.err
		}
		return counted{keyID: c.key.KeyID(), comment: s.TrustedComment}, string(c.key.Key), nil
	}
	return counted{}, "", trustError("bad-signature", "", "the file or its signature was changed",
		"signature by key %s does not verify", keyIDOf(s.KeyNum))
}

func tallySignatures(data []byte, sigs [][]byte, role Role) tally {
	t := tally{counted: map[string]counted{}}
	for i, s := range sigs {
		c, raw, err := checkOne(s, data, role)
		if err != nil {
			e := *err
			e.What = fmt.Sprintf("signature #%d: %s", i+1, err.What)
			t.rejected = append(t.rejected, &e)
			continue
		}
		if _, ok := t.counted[raw]; !ok {
			t.counted[raw] = c
			t.order = append(t.order, raw)
		}
		t.verified = append(t.verified, c)
	}
	return t
}

func requireThreshold(t tally, role Role, subject string) error {
	if role.Threshold < 1 {
		return trustError("empty-policy", "", "a threshold is at least 1", "the %s has threshold %d", role.Name, role.Threshold)
	}
	if int64(len(t.counted)) >= role.Threshold {
		return nil
	}
	if len(t.counted) == 0 && len(t.rejected) > 0 {
		return t.rejected[0]
	}
	var reasons []string
	for _, e := range t.rejected {
		reasons = append(reasons, e.What)
	}
	msg := fmt.Sprintf("%s is signed by %d distinct key(s) of the %s, %d required", subject, len(t.counted), role.Name, role.Threshold)
	if len(reasons) > 0 {
		msg += " (rejected: " + strings.Join(reasons, "; ") + ")"
	}
	return trustError("threshold-not-met", "", fmt.Sprintf("collect signatures from %d different keys of the %s", role.Threshold, role.Name), "%s", msg)
}

// VerifyThreshold checks that a threshold of role's distinct keys signed data (docs/trust.md 5.2).
func VerifyThreshold(role Role, data []byte, sigs [][]byte, subject string) error {
	return requireThreshold(tallySignatures(data, sigs, role), role, subject)
}

func checkExpiry(r *Root, now time.Time) error {
	if r.Expired(now) {
		return trustError("root-expired", "", "the registry owners must publish a new root version (`registry-tool root renew` and sign)",
			"root version %d expired at %s", r.Version, r.Expires.Format(TimeLayout))
	}
	return nil
}

// VerifyRootSelf is first-use pinning: the root is signed by a threshold of its own root role
// and not expired.
func VerifyRootSelf(raw []byte, sigs [][]byte, now time.Time) (*Root, error) {
	r, err := parseRoot(raw, "")
	if err != nil {
		return nil, err
	}
	if err := VerifyThreshold(r.role("root"), raw, sigs, fmt.Sprintf("root version %d", r.Version)); err != nil {
		return nil, err
	}
	if err := checkExpiry(r, now); err != nil {
		return nil, err
	}
	return r, nil
}

func rootRoleOf(r *Root) Role {
	role := r.role("root")
	role.Name = fmt.Sprintf("root role of version %d", r.Version)
	return role
}

// VerifyRootStep accepts root N+1 given trusted root N (docs/trust.md 5.5 steps 0-5).
func VerifyRootStep(prev *Root, raw []byte, sigs [][]byte) (*Root, error) {
	// Step 0: signatures are checked against N's root role before the candidate is parsed.
	oldRole := rootRoleOf(prev)
	t := tallySignatures(raw, sigs, oldRole)
	if len(t.counted) == 0 {
		if err := requireThreshold(t, oldRole, fmt.Sprintf("root version %d", prev.Version+1)); err != nil {
			return nil, err
		}
	}
	next, err := parseRoot(raw, "")
	if err != nil {
		return nil, err
	}
	if next.Version != prev.Version+1 {
		return nil, trustError("root-version", "", "publish every root version; a client walks them one by one",
			"expected root version %d after %d, got %d", prev.Version+1, prev.Version, next.Version)
	}
	if err := checkContinuity(prev, next); err != nil {
		return nil, err
	}
	// Keys the new version revokes count for neither threshold.
	revokedNow := map[string]bool{}
	for _, rv := range next.Revoked {
		revokedNow[string(rv.Key.Key)] = true
	}
	var kept []PublicKey
	for _, k := range oldRole.Keys {
		if !revokedNow[string(k.Key)] {
			kept = append(kept, k)
		}
	}
	oldRole.Keys = kept
	oldRole.Refused = append(next.revokedRefusals(), oldRole.Refused...)
	subject := fmt.Sprintf("root version %d", next.Version)
	if err := VerifyThreshold(oldRole, raw, sigs, subject); err != nil {
		return nil, err
	}
	if err := VerifyThreshold(rootRoleOf(next), raw, sigs, subject); err != nil {
		return nil, err
	}
	return next, nil
}

// publicKeyLine is the key's base64 line, as in a minisign .pub file.
func publicKeyLine(k PublicKey) string {
	return base64.StdEncoding.EncodeToString(append(append([]byte("Ed"), k.KeyNum[:]...), k.Key...))
}

// keyIDs is every key id a root names (keys and revoked entries) with its public key.
func (r *Root) keyIDs() map[string]PublicKey {
	ids := map[string]PublicKey{}
	for id, k := range r.Keys {
		ids[id] = k
	}
	for _, rv := range r.Revoked {
		if _, ok := ids[rv.Key.KeyID()]; !ok {
			ids[rv.Key.KeyID()] = rv.Key
		}
	}
	return ids
}

// delegationOf is the plugin patterns of every maintainer holding key (by raw key), each once.
func (r *Root) delegationOf(key PublicKey) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range sortedKeys(r.Maintainers) {
		m := r.Maintainers[id]
		holds := false
		for _, k := range m.Keys {
			holds = holds || string(k.Key) == string(key.Key)
		}
		for _, p := range m.Plugins {
			if holds && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func samePluginSet(a, b []string) bool {
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, p := range l {
			m[p] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for p := range sa {
		if !sb[p] {
			return false
		}
	}
	return true
}

// checkContinuity is docs/trust.md 5.5 step 4 (every failure root-continuity): the registry name,
// the public key of every key id both versions name, and every revocation of prev are fixed (but
// its reason, and keep_prior_releases from true to false); a new revocation is dated by next's
// expiry and names only plugins prev delegated to the key.
func checkContinuity(prev, next *Root) error {
	fail := func(fix, format string, args ...any) error {
		return trustError("root-continuity", "", fix, format, args...)
	}
	if next.Registry != prev.Registry {
		return fail("a registry keeps its name for the whole root chain", "root version %d is for registry '%s', not '%s'",
			next.Version, next.Registry, prev.Registry)
	}
	newIDs := next.keyIDs()
	oldIDs := prev.keyIDs()
	for _, id := range sortedKeys(oldIDs) {
		if k, ok := newIDs[id]; ok && string(k.Key) != string(oldIDs[id].Key) {
			return fail("a key id names one public key for the whole chain; a new key gets a new key id",
				"root version %d binds key id %s to another public key (%s; version %d has %s)", next.Version, id,
				publicKeyLine(k), prev.Version, publicKeyLine(oldIDs[id]))
		}
	}
	find := func(r *Root, k PublicKey) *Revocation {
		for i := range r.Revoked {
			if string(r.Revoked[i].Key.Key) == string(k.Key) {
				return &r.Revoked[i]
			}
		}
		return nil
	}
	for _, old := range prev.Revoked {
		n := find(next, old.Key)
		if n == nil || n.Key.KeyID() != old.Key.KeyID() || !n.RevokedAt.Equal(old.RevokedAt) ||
			n.RevokedInVersion != old.RevokedInVersion || !samePluginSet(n.Plugins, old.Plugins) {
			return fail("revocations are permanent; keep every entry of the previous version as it is (only its reason may change, and keep_prior_releases from true to false)",
				"root version %d drops or alters the revocation of key %s", next.Version, old.Key.KeyID())
		}
		if n.KeepPriorReleases && !old.KeepPriorReleases {
			return fail("keep_prior_releases can only change from true to false",
				"root version %d re-validates releases of revoked key %s", next.Version, old.Key.KeyID())
		}
	}
	for _, n := range next.Revoked {
		if find(prev, n.Key) != nil {
			continue
		}
		if n.RevokedInVersion != next.Version {
			return fail(fmt.Sprintf("set revoked_in_version to %d", next.Version),
				"new revocation of key %s says revoked_in_version %d", n.Key.KeyID(), n.RevokedInVersion)
		}
		if n.RevokedAt.After(next.Expires) {
			return fail("a revocation takes effect when it is made: set revoked_at to the time of the revocation",
				"root version %d revokes key %s as of %s, after the version itself expires (%s)", next.Version,
				n.Key.KeyID(), n.RevokedAt.Format(TimeLayout), next.Expires.Format(TimeLayout))
		}
		delegated := prev.delegationOf(n.Key)
		var wider []string
		for _, p := range n.Plugins {
			within := false
			for _, d := range delegated {
				within = within || patternWithin(p, d)
			}
			if !within {
				wider = append(wider, p)
			}
		}
		if len(wider) > 0 {
			none := "none"
			if len(delegated) > 0 {
				none = strings.Join(delegated, ", ")
			}
			return fail("a revocation lists the plugins the key was delegated for; it never delegates anything",
				"root version %d revokes key %s for plugins %s, which version %d did not delegate to it (delegated: %s)",
				next.Version, n.Key.KeyID(), strings.Join(wider, ", "), prev.Version, none)
		}
	}
	return nil
}

// RootCandidate is one root version with its signature files.
type RootCandidate struct {
	Raw  []byte
	Sigs [][]byte
}

// VerifyRootChain walks trusted -> N+1 -> ...; intermediate roots may be expired, the last may not.
func VerifyRootChain(trusted []byte, chain []RootCandidate, now time.Time) (*Root, error) {
	cur, err := parseRoot(trusted, "")
	if err != nil {
		return nil, err
	}
	for _, c := range chain {
		if cur, err = VerifyRootStep(cur, c.Raw, c.Sigs); err != nil {
			return nil, err
		}
	}
	if err := checkExpiry(cur, now); err != nil {
		return nil, err
	}
	return cur, nil
}

// commentFields reads tab-separated key:value fields of a trusted comment (first occurrence wins).
func commentFields(comment string) map[string]string {
	fields := map[string]string{}
	for _, part := range strings.Split(comment, "\t") {
		key, value, ok := strings.Cut(part, ":")
		if ok && key != "" {
			if _, seen := fields[key]; !seen {
				fields[key] = value
			}
		}
	}
	return fields
}

// VerifyReleaseSignatures is docs/trust.md 5.7 steps 1-4 for a plugin.toml (table "plugin") or a
// yank.toml (table "yank"): returns the key ids of the counted maintainer signatures.
func VerifyReleaseSignatures(root *Root, plugin string, manifest []byte, sigs [][]byte, now time.Time, publishedAt *time.Time) ([]string, error) {
	if err := checkExpiry(root, now); err != nil {
		return nil, err
	}
	return verifyMaintainerSigned(root, plugin, manifest, sigs, publishedAt, "plugin")
}

// verifyInstalledSignatures is VerifyReleaseSignatures for plugins already installed, checked
// offline: freshness belongs to sessions, so the last trusted root judges the signatures even
// after it expired (as the Python client's verify does).
func verifyInstalledSignatures(root *Root, plugin string, manifest []byte, sigs [][]byte, publishedAt *time.Time) ([]string, error) {
	return verifyMaintainerSigned(root, plugin, manifest, sigs, publishedAt, "plugin")
}

func verifyMaintainerSigned(root *Root, plugin string, data []byte, sigs [][]byte, publishedAt *time.Time, table string) ([]string, error) {
	if !pluginNameRE.MatchString(plugin) {
		return nil, trustError("invalid-plugin-name", "", "plugin names are lower-case ASCII letters, digits, '_' and '-'",
			"%q is not a plugin name, so no delegation covers it", plugin)
	}
	name, version, err := manifestIdentity(data, table)
	if err != nil {
		return nil, err
	}
	if name != plugin {
		return nil, trustError("plugin-name-mismatch", "", "a release lives under plugins/<name>/<version>/ with the same name in its manifest",
			"the signed %s.name is '%s', but it is being verified as plugin '%s'", table, name, plugin)
	}
	role := root.releaseRole(plugin, publishedAt)
	t := tallySignatures(data, sigs, role)
	for _, c := range t.verified {
		f := commentFields(c.comment)
		for _, kv := range [][2]string{{"plugin", name}, {"version", version}} {
			if got, ok := f[kv[0]]; ok && got != kv[1] {
				return nil, trustError("trusted-comment-mismatch", "", "the signature belongs to another release; re-sign this release",
					"the trusted comment says %s '%s' but the manifest says '%s'", kv[0], got, kv[1])
			}
		}
	}
	if err := requireThreshold(t, role, fmt.Sprintf("%s.toml of '%s' %s", table, plugin, version)); err != nil {
		return nil, err
	}
	ids := []string{}
	for _, raw := range t.order {
		ids = append(ids, t.counted[raw].keyID)
	}
	return ids, nil
}
