package verifier

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/blake2b"
)

// minisign's limits (docs/trust.md 3.3).
const (
	maxSignatureFile    = 16 * 1024
	maxUntrustedComment = 1004
	maxTrustedComment   = 8174
	untrustedPrefix     = "untrusted comment: "
	trustedPrefix       = "trusted comment: "
	publicKeyBlobSize   = 42
	signatureBlobSize   = 74
	globalSignatureSize = 64
)

// PublicKey is a minisign Ed25519 public key (docs/trust.md 3.1).
type PublicKey struct {
	KeyNum [8]byte
	Key    ed25519.PublicKey
}

// KeyID is the key number as minisign prints it: little-endian u64 in 16 upper-case hex digits.
func (k PublicKey) KeyID() string { return keyIDOf(k.KeyNum) }

func keyIDOf(keynum [8]byte) string {
	var rev [8]byte
	for i := range keynum {
		rev[i] = keynum[7-i]
	}
	return strings.ToUpper(hex.EncodeToString(rev[:]))
}

// Signature is a parsed minisign signature file (docs/trust.md 3.3).
type Signature struct {
	Algorithm      string // "ED" (prehashed) or "Ed" (legacy)
	KeyNum         [8]byte
	Sig            []byte
	TrustedComment string
	Global         []byte
}

var (
	ed25519P  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	ed25519Y8 = mustHexInt("05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826")
)

func mustHexInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("bad constant")
	}
	return n
}

// weakKey says why an Ed25519 public key is refused, as libsodium (hence minisign) refuses it: a
// non-canonical y, or a point of small order (under which R = identity, S = 0 verifies anything).
// crypto/ed25519 accepts both, so this check is ours.
func weakKey(pk []byte) string {
	le := make([]byte, 32)
	copy(le, pk)
	le[31] &= 0x7f
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		le[i], le[j] = le[j], le[i]
	}
	y := new(big.Int).SetBytes(le)
	if y.Cmp(ed25519P) >= 0 {
		return "not canonically encoded (the same point has another encoding)"
	}
	pm1 := new(big.Int).Sub(ed25519P, big.NewInt(1))
	pmy8 := new(big.Int).Sub(ed25519P, ed25519Y8)
	for _, bad := range []*big.Int{big.NewInt(0), big.NewInt(1), pm1, ed25519Y8, pmy8} {
		if y.Cmp(bad) == 0 {
			return "a point of small order (anyone could forge its signatures)"
		}
	}
	return ""
}

// strictBase64 decodes standard base64 with padding and refuses anything that does not re-encode
// to the same text (whitespace, non-zero padding bits).
func strictBase64(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// textLines splits a key or signature file: LF line ends (the final one optional), no CR, no
// blank lines, UTF-8.
func textLines(data []byte) ([]string, string) {
	if !utf8.Valid(data) {
		return nil, "not valid UTF-8"
	}
	if bytes.IndexByte(data, '\r') >= 0 {
		return nil, "contains a carriage return (CR); minisign files use LF line ends"
	}
	text := strings.TrimSuffix(string(data), "\n")
	lines := strings.Split(text, "\n")
	for _, l := range lines {
		if l == "" {
			return nil, "contains a blank line"
		}
	}
	return lines, ""
}

// ParsePublicKey reads a minisign public key file, or its base64 line alone.
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ParsePublicKey(text []byte) (PublicKey, error) {
	v, err := parsePublicKey(text)
	return v, classedInput(err, "")
}

// parsePublicKey is ParsePublicKey with the rule errors the package's own steps give their step's class.
func parsePublicKey(text []byte) (PublicKey, error) {
	bad := func(what string) (PublicKey, error) {
		return PublicKey{}, trustError("malformed-key", "", "use the public key file written by minisign -G or registry-tool key generate",
			"public key: %s", what)
	}
	lines, why := textLines(text)
	if why != "" {
		return bad(why)
	}
	var line string
	switch len(lines) {
	case 1:
		line = lines[0]
	case 2:
		if !strings.HasPrefix(lines[0], untrustedPrefix) {
			return bad("line 1 does not start with 'untrusted comment: '")
		}
		if len(lines[0])-len(untrustedPrefix) > maxUntrustedComment {
			return bad("comment longer than 1004 bytes")
		}
		line = lines[1]
	default:
		return bad("expected 2 lines")
	}
	blob, ok := strictBase64(line)
	if !ok || len(blob) != publicKeyBlobSize {
		return bad("the key line is not canonical base64 of 42 bytes")
	}
	if string(blob[:2]) != "Ed" {
		return bad("algorithm is not Ed")
	}
	if why := weakKey(blob[10:]); why != "" {
		return bad("the Ed25519 key is " + why)
	}
	var k PublicKey
	copy(k.KeyNum[:], blob[2:10])
	k.Key = ed25519.PublicKey(append([]byte(nil), blob[10:]...))
	return k, nil
}

// ParseSignature reads a minisign signature file (every failure is malformed-signature).
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ParseSignature(data []byte) (Signature, error) {
	v, err := parseSignature(data)
	return v, classedInput(err, "")
}

// parseSignature is ParseSignature with the rule errors the package's own steps give their step's class.
func parseSignature(data []byte) (Signature, error) {
	bad := func(what string) (Signature, error) {
		return Signature{}, trustError("malformed-signature", "", "restore the signature file", "signature file: %s", what)
	}
	if len(data) > maxSignatureFile {
		return bad("larger than 16 KiB")
	}
	lines, why := textLines(data)
	if why != "" {
		return bad(why)
	}
	if len(lines) != 4 {
		return bad("expected exactly 4 lines")
	}
	if !strings.HasPrefix(lines[0], untrustedPrefix) || len(lines[0])-len(untrustedPrefix) > maxUntrustedComment {
		return bad("line 1 is not an untrusted comment of at most 1004 bytes")
	}
	blob, ok := strictBase64(lines[1])
	if !ok || len(blob) != signatureBlobSize {
		return bad("line 2 is not canonical base64 of 74 bytes")
	}
	if !strings.HasPrefix(lines[2], trustedPrefix) {
		return bad("line 3 does not start with 'trusted comment: '")
	}
	comment := lines[2][len(trustedPrefix):]
	if len(comment) > maxTrustedComment {
		return bad("trusted comment longer than 8174 bytes")
	}
	global, ok := strictBase64(lines[3])
	if !ok || len(global) != globalSignatureSize {
		return bad("line 4 is not canonical base64 of 64 bytes")
	}
	alg := string(blob[:2])
	if alg != "ED" && alg != "Ed" {
		return bad("unknown signature algorithm")
	}
	s := Signature{Algorithm: alg, Sig: blob[10:], TrustedComment: comment, Global: global}
	copy(s.KeyNum[:], blob[2:10])
	return s, nil
}

// verifyWith checks steps 4-5 of docs/trust.md 3.4 (signature over the data, global signature
// over signature || trusted comment).
func (s Signature) verifyWith(k PublicKey, data []byte) bool {
	msg := data
	if s.Algorithm == "ED" {
		h := blake2b.Sum512(data)
		msg = h[:]
	}
	if !ed25519.Verify(k.Key, msg, s.Sig) {
		return false
	}
	return ed25519.Verify(k.Key, append(append([]byte(nil), s.Sig...), s.TrustedComment...), s.Global)
}

// VerifySignature verifies one signature file against one public key (docs/trust.md 3.4) and
// returns the trusted comment.
func VerifySignature(k PublicKey, data, sigText []byte, allowLegacy bool) (string, error) {
	s, err := parseSignature(sigText)
	if err != nil {
		return "", err
	}
	if s.Algorithm == "Ed" && !allowLegacy {
		return "", trustError("legacy-signature", "", "re-sign with a current minisign (prehashed ED signatures)",
			"legacy (non-prehashed) Ed signature")
	}
	if s.KeyNum != k.KeyNum {
		return "", trustError("key-mismatch", "", "verify with the key that made the signature",
			"signature by key %s, not %s", keyIDOf(s.KeyNum), k.KeyID())
	}
	if !s.verifyWith(k, data) {
		return "", trustError("bad-signature", "", "the data, signature or trusted comment was changed",
			"signature by key %s does not verify", k.KeyID())
	}
	return s.TrustedComment, nil
}
