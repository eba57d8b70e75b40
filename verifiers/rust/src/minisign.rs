//! minisign public keys and signatures (docs/trust.md sections 2 and 3): parsing with every
//! refusal of the spec, and verification of one signature with one key (3.4) on
//! ed25519-dalek's strict verification and BLAKE2b-512 prehashing.

use crate::error::{TrustCode, TrustError};
use base64::Engine;
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signature as EdSignature, VerifyingKey};

const UNTRUSTED: &str = "untrusted comment: ";
const TRUSTED: &str = "trusted comment: ";
pub const MAX_SIGNATURE_FILE: usize = 16 * 1024;
const MAX_UNTRUSTED_COMMENT: usize = 1004;
const MAX_TRUSTED_COMMENT: usize = 8174;

// Little-endian y coordinates that libsodium refuses as a public key: 0, 1, p-1, y8, p-y8
// (the small-order points), plus p itself as the bound of canonical encodings.
const P: [u8; 32] = le_hex(b"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    le_hex(b"0000000000000000000000000000000000000000000000000000000000000000"),
    le_hex(b"0100000000000000000000000000000000000000000000000000000000000000"),
    le_hex(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    le_hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    le_hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
];

const fn le_hex(h: &[u8; 64]) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        if c <= b'9' {
            c - b'0'
        } else {
            c - b'a' + 10
        }
    }
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nib(h[2 * i]) << 4 | nib(h[2 * i + 1]);
        i += 1;
    }
    out
}

fn malformed_key(msg: impl Into<String>) -> TrustError {
    TrustError::new(TrustCode::MalformedKey, msg)
}

fn malformed_sig(msg: impl Into<String>) -> TrustError {
    TrustError::new(TrustCode::MalformedSignature, msg)
}

/// Canonical standard base64 (RFC 4648 section 4, padded, zero padding bits) of `len` bytes.
fn decode_b64(text: &str, len: usize) -> Option<Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(text).ok()?;
    if bytes.len() != len || engine.encode(&bytes) != text {
        return None;
    }
    Some(bytes)
}

/// The lines of a text file with exactly `n` lines (final LF optional, no blank lines, no CR).
fn lines(text: &str, n: usize) -> Option<Vec<&str>> {
    if text.contains('\r') {
        return None;
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let parts: Vec<&str> = body.split('\n').collect();
    if parts.len() != n || parts.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(parts)
}

/// `key_id = hex_upper(reverse(keynum))`.
pub fn key_id(keynum: &[u8; 8]) -> String {
    let mut out = String::with_capacity(16);
    for b in keynum.iter().rev() {
        out.push_str(&format!("{:02X}", b));
    }
    out
}

/// True when the 32 bytes are a key libsodium accepts: canonical y, not a small-order point.
pub fn is_acceptable_ed25519_key(raw: &[u8; 32]) -> bool {
    let mut y = *raw;
    y[31] &= 0x7f;
    // canonical: y < p, compared as little-endian integers (most significant byte last)
    let mut canonical = false;
    for i in (0..32).rev() {
        if y[i] != P[i] {
            canonical = y[i] < P[i];
            break;
        }
    }
    canonical && !SMALL_ORDER_Y.contains(&y)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub keynum: [u8; 8],
    pub raw: [u8; 32],
}

impl PublicKey {
    /// The base64 line alone (what root metadata's `public_key` fields hold).
    pub fn from_base64(line: &str) -> Result<PublicKey, TrustError> {
        let blob =
            decode_b64(line, 42).ok_or_else(|| malformed_key("public key is not canonical base64 of 42 bytes"))?;
        if &blob[0..2] != b"Ed" {
            return Err(malformed_key("public key algorithm is not Ed"));
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&blob[2..10]);
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&blob[10..42]);
        if !is_acceptable_ed25519_key(&raw) {
            return Err(malformed_key("public key is not a canonical Ed25519 key or has small order"));
        }
        Ok(PublicKey { keynum, raw })
    }

    /// A public key file (two lines) or its base64 line alone.
    pub fn from_file(data: &[u8]) -> Result<PublicKey, TrustError> {
        let text = std::str::from_utf8(data).map_err(|_| malformed_key("public key file is not UTF-8"))?;
        if let Some(l) = lines(text, 1) {
            return PublicKey::from_base64(l[0]);
        }
        let l = lines(text, 2).ok_or_else(|| malformed_key("public key file does not have exactly 2 lines"))?;
        let comment = l[0]
            .strip_prefix(UNTRUSTED)
            .ok_or_else(|| malformed_key("public key line 1 does not start with 'untrusted comment: '"))?;
        if comment.len() > MAX_UNTRUSTED_COMMENT {
            return Err(malformed_key("public key comment is longer than 1004 bytes"));
        }
        PublicKey::from_base64(l[1])
    }

    pub fn key_id(&self) -> String {
        key_id(&self.keynum)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// `*b"ED"` (prehashed) or `*b"Ed"` (legacy).
    pub algorithm: [u8; 2],
    pub keynum: [u8; 8],
    pub signature: [u8; 64],
    pub trusted_comment: String,
    pub global_signature: [u8; 64],
}

impl Signature {
    pub fn parse(data: &[u8]) -> Result<Signature, TrustError> {
        if data.len() > MAX_SIGNATURE_FILE {
            return Err(malformed_sig("signature file is larger than 16 KiB"));
        }
        let text = std::str::from_utf8(data).map_err(|_| malformed_sig("signature file is not UTF-8"))?;
        let l = lines(text, 4)
            .ok_or_else(|| malformed_sig("signature file does not have exactly 4 lines (or has a CR)"))?;
        let untrusted = l[0]
            .strip_prefix(UNTRUSTED)
            .ok_or_else(|| malformed_sig("line 1 does not start with 'untrusted comment: '"))?;
        if untrusted.len() > MAX_UNTRUSTED_COMMENT {
            return Err(malformed_sig("untrusted comment is longer than 1004 bytes"));
        }
        let blob = decode_b64(l[1], 74).ok_or_else(|| malformed_sig("line 2 is not canonical base64 of 74 bytes"))?;
        let trusted = l[2]
            .strip_prefix(TRUSTED)
            .ok_or_else(|| malformed_sig("line 3 does not start with 'trusted comment: '"))?;
        if trusted.len() > MAX_TRUSTED_COMMENT {
            return Err(malformed_sig("trusted comment is longer than 8174 bytes"));
        }
        let global = decode_b64(l[3], 64).ok_or_else(|| malformed_sig("line 4 is not canonical base64 of 64 bytes"))?;
        let algorithm = [blob[0], blob[1]];
        if &algorithm != b"ED" && &algorithm != b"Ed" {
            return Err(malformed_sig("signature algorithm is neither ED nor Ed"));
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&blob[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&blob[10..74]);
        let mut global_signature = [0u8; 64];
        global_signature.copy_from_slice(&global);
        Ok(Signature { algorithm, keynum, signature, trusted_comment: trusted.to_owned(), global_signature })
    }

    pub fn key_id(&self) -> String {
        key_id(&self.keynum)
    }

    pub fn is_legacy(&self) -> bool {
        &self.algorithm == b"Ed"
    }

    /// Steps 4-5 of 3.4: the Ed25519 signature over the (prehashed) data and the global
    /// signature over signature ‖ trusted comment, both under `key`. The key number is not
    /// compared here (callers select candidates by it).
    pub fn verify_bytes(&self, key: &PublicKey, data: &[u8]) -> Result<(), TrustError> {
        let bad =
            || TrustError::new(TrustCode::BadSignature, format!("signature by key {} does not verify", key.key_id()));
        // A point that does not decompress verifies nothing (it is not a parse error).
        let vk = VerifyingKey::from_bytes(&key.raw).map_err(|_| bad())?;
        let sig = EdSignature::from_bytes(&self.signature);
        let ok = if self.is_legacy() {
            vk.verify_strict(data, &sig).is_ok()
        } else {
            let digest = Blake2b512::digest(data);
            vk.verify_strict(&digest, &sig).is_ok()
        };
        if !ok {
            return Err(bad());
        }
        let mut signed = Vec::with_capacity(64 + self.trusted_comment.len());
        signed.extend_from_slice(&self.signature);
        signed.extend_from_slice(self.trusted_comment.as_bytes());
        vk.verify_strict(&signed, &EdSignature::from_bytes(&self.global_signature)).map_err(|_| bad())
    }

    /// The `key:value` fields of the trusted comment (tab-separated).
    pub fn comment_field(&self, key: &str) -> Option<&str> {
        self.trusted_comment.split('\t').find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    }

    pub fn has_comment_field(&self, key: &str) -> bool {
        self.comment_field(key).is_some()
    }
}

/// docs/trust.md 3.4: verify a signature file with one public key.
pub fn verify(
    key: &PublicKey,
    data: &[u8],
    signature_file: &[u8],
    allow_legacy: bool,
) -> Result<Signature, TrustError> {
    let sig = Signature::parse(signature_file)?;
    if sig.is_legacy() && !allow_legacy {
        return Err(TrustError::new(
            TrustCode::LegacySignature,
            "legacy (Ed) signature; only prehashed ED signatures are accepted",
        ));
    }
    if sig.keynum != key.keynum {
        return Err(TrustError::new(
            TrustCode::KeyMismatch,
            format!("signature is by key {}, not {}", sig.key_id(), key.key_id()),
        ));
    }
    sig.verify_bytes(key, data)?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_reversed_keynum_in_upper_hex() {
        assert_eq!(key_id(&[0x5a, 0xdf, 0x5b, 0x1c, 0xed, 0xc4, 0x61, 0xf2]), "F261C4ED1C5BDF5A");
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_refused() {
        for y in SMALL_ORDER_Y.iter() {
            assert!(!is_acceptable_ed25519_key(y));
            let mut signed = *y;
            signed[31] |= 0x80; // sign bit does not hide it
            assert!(!is_acceptable_ed25519_key(&signed));
        }
        assert!(!is_acceptable_ed25519_key(&P));
        let mut above = P;
        above[0] = 0xee;
        assert!(!is_acceptable_ed25519_key(&above));
        let mut below = P;
        below[0] = 0xeb; // p - 2: canonical, not small order
        assert!(is_acceptable_ed25519_key(&below));
    }

    #[test]
    fn identity_key_with_a_zero_signature_is_refused_before_verification() {
        // R = identity, S = 0 verifies any message under the identity key with lax verifiers.
        let mut blob = b"Ed".to_vec();
        blob.extend_from_slice(&[7u8; 8]);
        blob.extend_from_slice(&SMALL_ORDER_Y[1]);
        let line = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert_eq!(PublicKey::from_base64(&line).unwrap_err().code, TrustCode::MalformedKey);
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let good = "RWTLNzQ5Jmm+K0zLNFEtMubzEATZGTt/Y+u0019rk92J8QV5dsybk+/l";
        assert!(PublicKey::from_base64(good).is_ok());
        assert!(PublicKey::from_base64(&format!("{} ", good)).is_err());
        assert!(PublicKey::from_base64(&format!("{}=", good)).is_err());
        // line 2 of a signature ends in "g=": 'h' sets one of the two unused padding bits
        let text = String::from_utf8(
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/trust/vectors/sig/message.txt.minisig"))
                .unwrap(),
        )
        .unwrap();
        assert!(text.contains("Qg=\n"));
        assert!(Signature::parse(text.as_bytes()).is_ok());
        assert_eq!(
            Signature::parse(text.replace("Qg=\n", "Qh=\n").as_bytes()).unwrap_err().code,
            TrustCode::MalformedSignature
        );
        assert_eq!(
            Signature::parse(text.replace("Qg=\n", "Qg\n").as_bytes()).unwrap_err().code,
            TrustCode::MalformedSignature
        );
    }

    #[test]
    fn signature_files_have_exactly_four_lines_and_no_cr() {
        let sig =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/trust/vectors/sig/message.txt.minisig"))
                .unwrap();
        assert!(Signature::parse(&sig).is_ok());
        let text = String::from_utf8(sig.clone()).unwrap();
        assert!(Signature::parse(text.replace('\n', "\r\n").as_bytes()).is_err());
        assert!(Signature::parse(format!("{}\n", text).as_bytes()).is_err());
        assert!(Signature::parse(text.trim_end().as_bytes()).is_ok());
        let mut five = text.clone();
        five.push_str("extra\n");
        assert!(Signature::parse(five.as_bytes()).is_err());
    }
}
