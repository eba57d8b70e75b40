/* registry-tool browser catalog: verifies the signed registry in the page, then shows it.
 *
 * Classic script (no modules: those do not load from a local file), no dependencies.  Nothing is
 * rendered from a document before it has been verified: root chain from the pinned root,
 * index-key threshold over registry.json's exact bytes, expiry, and sha256 + size of every
 * metadata document against its pin (docs/trust.md, docs/catalog.md).
 */
(function () {
  "use strict";

  var MAX_ROOT = 1 << 20;
  var MAX_TOP = 64 << 10;
  var MAX_SIG = 16 << 10;
  var MAX_CHAIN = 1000;
  var PAGE_SIZE = 50;

  // ------------------------------------------------------------------ errors

  var TITLES = {
    "digest-mismatch": "Tampered document",
    "endless-data": "Tampered document",
    "bad-signature": "Bad signature",
    "unknown-key": "Unknown key",
    "threshold-not-met": "Not enough signatures",
    freeze: "Expired registry",
    rollback: "Rolled-back registry",
    "root-expired": "Expired root",
    "root-chain": "Root chain broken",
    malformed: "Malformed document",
    "unsupported-format": "Unsupported format",
    "wrong-registry": "Wrong registry",
    "wrong-software": "Wrong document",
    "path-traversal": "Unsafe path",
    network: "Could not load",
    "not-found": "Not found",
    "unsupported-browser": "This browser cannot verify",
  };

  function VerifyError(cls, message, title) {
    this.cls = cls;
    this.message = message;
    this.title = title || TITLES[cls] || cls;
  }
  VerifyError.prototype = Object.create(Error.prototype);
  VerifyError.prototype.name = "VerifyError";

  function fail(cls, message, title) {
    throw new VerifyError(cls, message, title);
  }

  // ------------------------------------------------------------------ bytes

  var utf8 = new TextEncoder();
  var strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  function decodeUtf8(bytes, what) {
    try {
      return strictUtf8.decode(bytes);
    } catch (e) {
      fail("malformed", what + " is not valid UTF-8");
    }
  }

  function hex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }

  function concat(a, b) {
    var out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  /** Canonical RFC 4648 base64 (what docs/trust.md 2 requires): re-encoding must give the same text. */
  function b64decode(text, length, what) {
    var bin;
    try {
      bin = atob(text);
    } catch (e) {
      fail("malformed", what + " is not valid base64");
    }
    if (btoa(bin) !== text) fail("malformed", what + " is not canonical base64");
    if (length !== undefined && bin.length !== length)
      fail("malformed", what + " decodes to " + bin.length + " bytes, not " + length);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // ------------------------------------------------------------------ BLAKE2b-512 (RFC 7693)
  // 64-bit words as (low, high) pairs of 32-bit integers in Uint32Arrays.

  var B2_IV = new Uint32Array([
    0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
    0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
  ]);
  var B2_SIGMA = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
  ];
  B2_SIGMA.push(B2_SIGMA[0], B2_SIGMA[1]);

  var b2v = new Uint32Array(32);
  var b2m = new Uint32Array(32);

  // v[a] += v[b] + m[x]  (word indices are already doubled)
  function b2add(a, b) {
    var lo = b2v[a] + b2v[b];
    var hi = b2v[a + 1] + b2v[b + 1] + (lo > 0xffffffff ? 1 : 0);
    b2v[a] = lo;
    b2v[a + 1] = hi;
  }
  function b2addm(a, x) {
    var lo = b2v[a] + b2m[x];
    var hi = b2v[a + 1] + b2m[x + 1] + (lo > 0xffffffff ? 1 : 0);
    b2v[a] = lo;
    b2v[a + 1] = hi;
  }
  // v[d] = rotr64(v[d] ^ v[a], n) for n in {32, 24, 16, 63}
  function b2xorrot(d, a, n) {
    var lo = b2v[d] ^ b2v[a];
    var hi = b2v[d + 1] ^ b2v[a + 1];
    if (n === 32) {
      b2v[d] = hi;
      b2v[d + 1] = lo;
    } else if (n === 63) {
      b2v[d] = (lo << 1) | (hi >>> 31);
      b2v[d + 1] = (hi << 1) | (lo >>> 31);
    } else {
      b2v[d] = (lo >>> n) | (hi << (32 - n));
      b2v[d + 1] = (hi >>> n) | (lo << (32 - n));
    }
  }
  function b2g(a, b, c, d, x, y) {
    b2add(a, b);
    b2addm(a, x);
    b2xorrot(d, a, 32);
    b2add(c, d);
    b2xorrot(b, c, 24);
    b2add(a, b);
    b2addm(a, y);
    b2xorrot(d, a, 16);
    b2add(c, d);
    b2xorrot(b, c, 63);
  }
  function b2compress(h, block, offset, counter, last) {
    var i;
    for (i = 0; i < 16; i++) {
      b2v[i] = h[i];
      b2v[i + 16] = B2_IV[i];
    }
    b2v[24] ^= counter >>> 0;
    b2v[25] ^= Math.floor(counter / 0x100000000);
    if (last) {
      b2v[28] = ~b2v[28];
      b2v[29] = ~b2v[29];
    }
    for (i = 0; i < 32; i++) {
      var p = offset + 4 * i;
      b2m[i] = block[p] | (block[p + 1] << 8) | (block[p + 2] << 16) | (block[p + 3] << 24);
    }
    for (var r = 0; r < 12; r++) {
      var s = B2_SIGMA[r];
      b2g(0, 8, 16, 24, 2 * s[0], 2 * s[1]);
      b2g(2, 10, 18, 26, 2 * s[2], 2 * s[3]);
      b2g(4, 12, 20, 28, 2 * s[4], 2 * s[5]);
      b2g(6, 14, 22, 30, 2 * s[6], 2 * s[7]);
      b2g(0, 10, 20, 30, 2 * s[8], 2 * s[9]);
      b2g(2, 12, 22, 24, 2 * s[10], 2 * s[11]);
      b2g(4, 14, 16, 26, 2 * s[12], 2 * s[13]);
      b2g(6, 8, 18, 28, 2 * s[14], 2 * s[15]);
    }
    for (i = 0; i < 16; i++) h[i] ^= b2v[i] ^ b2v[i + 16];
  }

  /** BLAKE2b with a 64-byte digest and no key: minisign's prehash. */
  function blake2b512(data) {
    var h = new Uint32Array(B2_IV);
    h[0] ^= 0x01010040; // digest length 64, key length 0, fanout 1, depth 1
    var n = data.length;
    var offset = 0;
    while (n - offset > 128) {
      b2compress(h, data, offset, offset + 128, false);
      offset += 128;
    }
    var last = new Uint8Array(128);
    last.set(data.subarray(offset, n));
    b2compress(h, last, 0, n, true);
    var out = new Uint8Array(64);
    for (var i = 0; i < 64; i++) out[i] = (h[i >> 2] >>> (8 * (i & 3))) & 0xff;
    return out;
  }

  // ------------------------------------------------------------------ strict JSON
  // RFC 8259 with the registry's extra rules: duplicate member names, lone surrogates and
  // integers beyond +-2^53 are errors (JSON.parse would silently keep the last duplicate).

  function parseJson(text, what) {
    var i = 0;
    function err(msg) {
      fail("malformed", what + ": " + msg + " at offset " + i);
    }
    function ws() {
      for (;;) {
        var c = text.charCodeAt(i);
        if (c === 32 || c === 10 || c === 13 || c === 9) i++;
        else return;
      }
    }
    // Decoded UTF-8 text has no lone surrogates; only \u escapes can make one.
    var LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    function str() {
      i++; // opening quote
      var out = "";
      var start = i;
      var escaped = false;
      for (;;) {
        var c = text.charCodeAt(i);
        if (c === 34) {
          out += text.slice(start, i);
          i++;
          if (escaped && LONE.test(out)) err("lone surrogate in string");
          return out;
        }
        if (c !== c) err("unterminated string");
        if (c < 32) err("control character in string");
        if (c === 92) {
          out += text.slice(start, i);
          var e = text[i + 1];
          i += 2;
          if (e === "u") {
            escaped = true;
            var code = text.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(code)) err("bad \\u escape");
            out += String.fromCharCode(parseInt(code, 16));
            i += 4;
          } else {
            var m = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
            if (m === undefined) err("bad escape");
            out += m;
          }
          start = i;
        } else i++;
      }
    }
    var NUM = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    function value(depth) {
      if (depth > 64) err("nesting too deep");
      ws();
      var c = text[i];
      if (c === "{") {
        i++;
        var obj = Object.create(null);
        ws();
        if (text[i] === "}") {
          i++;
          return obj;
        }
        for (;;) {
          ws();
          if (text[i] !== '"') err("expected a member name");
          var k = str();
          if (Object.prototype.hasOwnProperty.call(obj, k)) err('duplicate member name "' + k + '"');
          ws();
          if (text[i] !== ":") err("expected ':'");
          i++;
          obj[k] = value(depth + 1);
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "}") {
            i++;
            return obj;
          } else err("expected ',' or '}'");
        }
      }
      if (c === "[") {
        i++;
        var arr = [];
        ws();
        if (text[i] === "]") {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "]") {
            i++;
            return arr;
          } else err("expected ',' or ']'");
        }
      }
      if (c === '"') return str();
      if (text.startsWith("true", i)) return (i += 4), true;
      if (text.startsWith("false", i)) return (i += 5), false;
      if (text.startsWith("null", i)) return (i += 4), null;
      NUM.lastIndex = i;
      var mm = NUM.exec(text);
      if (!mm) err("unexpected character");
      i += mm[0].length;
      var num = Number(mm[0]);
      if (/^-?[0-9]+$/.test(mm[0]) && !Number.isSafeInteger(num)) err("integer out of range");
      if (/[.eE]/.test(mm[0])) return { __float: num };
      return num;
    }
    var v = value(0);
    ws();
    if (i !== text.length) err("trailing data");
    return v;
  }

  // Parsed documents keep floats wrapped so that "an integer" means an integer written as one.
  function isInt(v) {
    return typeof v === "number" && Number.isSafeInteger(v);
  }
  // A word for a POSIX shell: as it is when it holds only characters no shell reads specially,
  // else in single quotes (a quote inside closes, escapes and reopens them).
  function shellQuote(v) {
    return /^[A-Za-z0-9_.\/:@%+=,-]+$/.test(v) ? v : "'" + v.replace(/'/g, "'\\''") + "'";
  }
  // A Python string literal: JSON's string syntax is one (escapes included).
  function pyQuote(v) {
    return JSON.stringify(v);
  }
  function isFigure(v) {
    return v === null || (isInt(v) && v >= 0);
  }
  function isObj(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v) && !("__float" in v);
  }
  function isStr(v) {
    return typeof v === "string";
  }
  function onlyKeys(obj, allowed, required, what) {
    if (!isObj(obj)) fail("malformed", what + " is not an object");
    Object.keys(obj).forEach(function (k) {
      if (allowed.indexOf(k) < 0) fail("malformed", what + ' has an unknown member "' + k + '"');
    });
    (required || allowed).forEach(function (k) {
      if (!(k in obj)) fail("malformed", what + ' lacks "' + k + '"');
    });
  }

  var TIME_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z$/;
  function parseTime(v, what) {
    var m = isStr(v) ? TIME_RE.exec(v) : null;
    if (!m) fail("malformed", what + " is not a time YYYY-MM-DDTHH:MM:SSZ");
    var t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    var d = new Date(t);
    if (d.getUTCDate() !== +m[3] || d.getUTCHours() !== +m[4] || d.getUTCMinutes() !== +m[5] || +m[6] > 59)
      fail("malformed", what + " is not a valid calendar time");
    return t;
  }

  var NAME_RE = /^[a-z][a-z0-9_-]{1,63}$/;
  var KEYID_RE = /^[0-9A-F]{16}$/;
  var SHA_RE = /^[0-9a-f]{64}$/;
  var FILE_RE = /^[A-Za-z0-9._-]{1,255}$/;
  var SEMVER_RE =
    /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$/;

  // ------------------------------------------------------------------ minisign

  var P25519 = (1n << 255n) - 19n;
  var Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
  var WEAK_Y = [0n, 1n, P25519 - 1n, Y8, P25519 - Y8];

  function keyIdOf(keynum) {
    var out = "";
    for (var i = 7; i >= 0; i--) out += (keynum[i] < 16 ? "0" : "") + keynum[i].toString(16);
    return out.toUpperCase();
  }

  /** A public key line (base64 of "Ed" || keynum || pk), docs/trust.md 3.1, with the small-order check. */
  function parsePublicKey(line, what) {
    var blob = b64decode(line, 42, what);
    if (blob[0] !== 0x45 || blob[1] !== 0x64) fail("malformed", what + " is not an Ed25519 minisign key");
    var pk = blob.slice(10, 42);
    var y = 0n;
    for (var i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? pk[i] & 0x7f : pk[i]);
    if (y >= P25519 || WEAK_Y.indexOf(y) >= 0) fail("malformed", what + " is not a usable Ed25519 key");
    var keynum = blob.slice(2, 10);
    return { keynum: hex(keynum), keyId: keyIdOf(keynum), raw: pk, rawHex: hex(pk), cryptoKey: null };
  }

  /** A signature file (docs/trust.md 3.3). */
  function parseSignature(bytes) {
    if (bytes.length > MAX_SIG) return { error: "malformed-signature" };
    var text;
    try {
      text = strictUtf8.decode(bytes);
    } catch (e) {
      return { error: "malformed-signature" };
    }
    if (text.indexOf("\r") >= 0) return { error: "malformed-signature" };
    if (text.endsWith("\n")) text = text.slice(0, -1);
    var lines = text.split("\n");
    if (lines.length !== 4) return { error: "malformed-signature" };
    if (!lines[0].startsWith("untrusted comment: ") || !lines[2].startsWith("trusted comment: "))
      return { error: "malformed-signature" };
    var comment = lines[2].slice("trusted comment: ".length);
    var commentBytes = utf8.encode(comment);
    if (utf8.encode(lines[0]).length - 19 > 1004 || commentBytes.length > 8174)
      return { error: "malformed-signature" };
    try {
      var blob = b64decode(lines[1], 74, "signature");
      var global = b64decode(lines[3], 64, "global signature");
    } catch (e) {
      return { error: "malformed-signature" };
    }
    var alg = String.fromCharCode(blob[0], blob[1]);
    if (alg !== "ED" && alg !== "Ed") return { error: "malformed-signature" };
    if (alg === "Ed") return { error: "legacy-signature" };
    return {
      keynum: hex(blob.slice(2, 10)),
      keyId: keyIdOf(blob.slice(2, 10)),
      signature: blob.slice(10, 74),
      comment: comment,
      commentBytes: commentBytes,
      global: global,
    };
  }

  function subtle() {
    if (!window.crypto || !window.crypto.subtle)
      fail(
        "unsupported-browser",
        "WebCrypto is not available here (pages served over plain HTTP from another host are not a " +
          "secure context); open the catalog over HTTPS, from localhost or from a local folder"
      );
    return window.crypto.subtle;
  }

  async function ed25519Verify(key, signature, message) {
    if (!key.cryptoKey) {
      try {
        key.cryptoKey = await subtle().importKey("raw", key.raw, { name: "Ed25519" }, false, ["verify"]);
      } catch (e) {
        if (e instanceof VerifyError) throw e;
        fail("unsupported-browser", "this browser has no WebCrypto Ed25519 (" + e.message + "); use a current browser");
      }
    }
    return subtle().verify({ name: "Ed25519" }, key.cryptoKey, signature, message);
  }

  async function sha256Hex(bytes) {
    return hex(new Uint8Array(await subtle().digest("SHA-256", bytes)));
  }

  /**
   * docs/trust.md 5.2: the distinct authorised public keys that signed `data`.
   * role = {name, keys: [key], refused: [{key, error}], threshold}
   */
  async function tally(data, sigTexts, role) {
    var candidates = role.keys
      .map(function (k) {
        return { key: k, error: null };
      })
      .concat(role.refused);
    var counted = {};
    var rejections = [];
    var digest = null;
    for (var s = 0; s < sigTexts.length; s++) {
      var sig = parseSignature(sigTexts[s].bytes);
      var where = sigTexts[s].path;
      if (sig.error) {
        rejections.push({ error: sig.error, where: where });
        continue;
      }
      var matches = candidates.filter(function (c) {
        return c.key.keynum === sig.keynum;
      });
      if (!matches.length) {
        rejections.push({ error: "unauthorized-signer", where: where, keyId: sig.keyId });
        continue;
      }
      if (!digest) digest = blake2b512(data);
      var verified = null;
      for (var m = 0; m < matches.length && !verified; m++) {
        var c = matches[m];
        if (
          (await ed25519Verify(c.key, sig.signature, digest)) &&
          (await ed25519Verify(c.key, sig.global, concat(sig.signature, sig.commentBytes)))
        )
          verified = c;
      }
      if (!verified) rejections.push({ error: "bad-signature", where: where, keyId: sig.keyId });
      else if (verified.error) rejections.push({ error: verified.error, where: where, keyId: sig.keyId });
      else counted[verified.key.rawHex] = verified.key.keyId;
    }
    var keyIds = Object.keys(counted).map(function (k) {
      return counted[k];
    });
    return { keyIds: keyIds, rejections: rejections };
  }

  /** Throws `cls` unless the tally meets the role's threshold; the message says why (5.2). */
  function requireThreshold(t, role, subject, cls) {
    if (role.threshold < 1) fail(cls, subject + ": the " + role.name + " has no threshold");
    if (t.keyIds.length >= role.threshold) return t.keyIds;
    if (!t.keyIds.length && t.rejections.length) {
      var r = t.rejections[0];
      var detail = {
        "unauthorized-signer": [
          "unknown-key",
          subject + " is signed by key " + r.keyId + ", which is not a key of the " + role.name,
        ],
        "bad-signature": [
          "bad-signature",
          "the signature " + r.where + " (key " + r.keyId + ") does not match " + subject +
            ": the document or its signature was changed",
        ],
        "revoked-key": ["bad-signature", subject + " is signed by key " + r.keyId + ", which is revoked"],
        "legacy-signature": ["bad-signature", r.where + " is a legacy (non-prehashed) signature"],
        "malformed-signature": ["bad-signature", r.where + " is not a minisign signature file"],
      }[r.error];
      fail(cls, detail[1], TITLES[detail[0]]);
    }
    fail(
      cls,
      subject + " has " + t.keyIds.length + " valid signature(s) from the " + role.name + ", " +
        role.threshold + " needed",
      TITLES["threshold-not-met"]
    );
  }

  function strList(v, what, re) {
    if (!Array.isArray(v) || !v.every(function (x) {
      return isStr(x) && (!re || re.test(x));
    }))
      fail("malformed", what + " is not a list of " + (re ? "valid names" : "strings"));
  }
  function strOrNull(v, what) {
    if (v !== null && !isStr(v)) fail("malformed", what + " is not a string or null");
  }
  function filePin(v, what) {
    onlyKeys(v, ["path", "sha256", "size"], null, what);
    if (!isStr(v.path) || !SHA_RE.test(v.sha256) || !isInt(v.size) || v.size < 0) fail("malformed", what + " is not {path, sha256, size}");
  }

  var PERMISSION_RE = /^[a-z][a-z0-9_-]{0,63}$/;
  var CATALOG_ENTRY = ["description", "keywords", "license", "abi", "latest", "versions", "permissions", "host", "authors", "document"];
  var RELEASE = ["description", "license", "abi", "host", "exports", "permissions", "limits", "dependencies", "manifest",
    "wasm", "signers", "published_at", "yanked", "smoke", "authors", "keywords", "homepage", "repository"];

  /** FORMAT2-SPEC 5: one catalog entry (the document pin is checked when it is fetched). */
  function checkCatalogEntry(p, what) {
    onlyKeys(p, CATALOG_ENTRY, null, what);
    ["description", "license", "abi"].forEach(function (k) {
      if (!isStr(p[k])) fail("malformed", what + " " + k + " is not a string");
    });
    strOrNull(p.host, what + " host");
    if (p.latest !== null && !(isStr(p.latest) && SEMVER_RE.test(p.latest))) fail("malformed", what + " latest is not a version");
    if (!isInt(p.versions) || p.versions < 1) fail("malformed", what + " versions is not a count");
    strList(p.keywords, what + " keywords");
    strList(p.authors, what + " authors");
    strList(p.permissions, what + " permissions", PERMISSION_RE);
  }

  /** FORMAT2-SPEC 4: one release of a plugin document. */
  function checkRelease(r, what) {
    onlyKeys(r, RELEASE, null, what);
    ["description", "license", "abi"].forEach(function (k) {
      if (!isStr(r[k])) fail("malformed", what + " " + k + " is not a string");
    });
    ["host", "homepage", "repository"].forEach(function (k) {
      strOrNull(r[k], what + " " + k);
    });
    strList(r.exports, what + " exports");
    strList(r.permissions, what + " permissions", PERMISSION_RE);
    strList(r.signers, what + " signers", KEYID_RE);
    strList(r.authors, what + " authors");
    strList(r.keywords, what + " keywords");
    onlyKeys(r.limits, ["fuel", "memory", "wall_time_ms"], null, what + " limits");
    ["fuel", "memory", "wall_time_ms"].forEach(function (k) {
      if (!isInt(r.limits[k])) fail("malformed", what + " limits." + k + " is not an integer");
    });
    if (!isObj(r.dependencies)) fail("malformed", what + " dependencies is not an object");
    Object.keys(r.dependencies).forEach(function (d) {
      if (!NAME_RE.test(d) || !isStr(r.dependencies[d])) fail("malformed", what + " has a bad dependency " + d);
    });
    filePin(r.manifest, what + " manifest");
    filePin(r.wasm, what + " wasm");
    parseTime(r.published_at, what + " published_at");
    if (r.yanked !== null) onlyKeys(r.yanked, ["reason"], null, what + " yanked");
    if (r.yanked !== null && !isStr(r.yanked.reason)) fail("malformed", what + " has a bad yanked entry");
    if (r.smoke !== null) {
      if (!Array.isArray(r.smoke)) fail("malformed", what + " smoke is not a list");
      r.smoke.forEach(function (t, i) {
        onlyKeys(t, ["name", "fuel", "peak_memory"], null, what + " smoke[" + i + "]");
        // A figure the run could not take is null (a component's peak memory), as documents.py reads it.
        if (!isStr(t.name) || !isFigure(t.fuel) || !isFigure(t.peak_memory)) fail("malformed", what + " smoke[" + i + "] has bad figures");
      });
    }
  }

  // ------------------------------------------------------------------ root metadata (docs/trust.md 5)

  var ROOT_MEMBERS = ["_type", "spec_version", "registry", "version", "expires", "keys", "roles",
    "maintainers", "plugin_thresholds", "revoked"];

  function parseRoot(bytes, what) {
    var doc = parseJson(decodeUtf8(bytes, what), what);
    onlyKeys(doc, ROOT_MEMBERS.concat(["registry_config"]), ROOT_MEMBERS, what);
    if ("registry_config" in doc) {
      // Pins registry.toml for ci check and build (docs/trust.md 5.8): only its shape matters here.
      onlyKeys(doc.registry_config, ["sha256"], null, what + " registry_config");
      if (!isStr(doc.registry_config.sha256) || !/^[0-9a-f]{64}$/.test(doc.registry_config.sha256)) {
        fail("malformed", what + ": bad registry_config.sha256");
      }
    }
    if (doc._type !== "registry-root" || doc.spec_version !== 1) fail("malformed", what + " is not root metadata (spec_version 1)");
    if (!isStr(doc.registry) || !isInt(doc.version) || doc.version < 1) fail("malformed", what + ": bad registry or version");
    var root = {
      bytes: bytes,
      doc: doc,
      version: doc.version,
      registry: doc.registry,
      expires: parseTime(doc.expires, what + " expires"),
      expiresText: doc.expires,
      keys: {},
      revoked: [],
    };
    if (!isObj(doc.keys)) fail("malformed", what + ": keys is not an object");
    Object.keys(doc.keys).forEach(function (id) {
      var entry = doc.keys[id];
      onlyKeys(entry, ["public_key", "comment"], ["public_key"], what + " keys." + id);
      var key = parsePublicKey(entry.public_key, what + " key " + id);
      if (!KEYID_RE.test(id) || key.keyId !== id) fail("malformed", what + ": key " + id + " has key id " + key.keyId);
      key.comment = entry.comment || null;
      root.keys[id] = key;
    });
    if (!Array.isArray(doc.revoked)) fail("malformed", what + ": revoked is not a list");
    doc.revoked.forEach(function (r, i) {
      var w = what + " revoked[" + i + "]";
      onlyKeys(r, ["keyid", "public_key", "revoked_in_version", "revoked_at", "keep_prior_releases", "plugins", "reason"],
        ["keyid", "public_key", "revoked_in_version", "revoked_at", "keep_prior_releases", "plugins"], w);
      var key = parsePublicKey(r.public_key, w);
      if (key.keyId !== r.keyid) fail("malformed", w + ": key id does not match its key");
      // docs/trust.md 5.1 rule 7: within a root a key id names one public key.
      if (root.keys[r.keyid] || root.revoked.some(function (o) { return o.key.keyId === r.keyid; }))
        fail("malformed", w + ": key id " + r.keyid + " names two different public keys");
      strList(r.plugins, w + " plugins");
      root.revoked.push({ key: key, entry: r, at: parseTime(r.revoked_at, w + " revoked_at") });
    });
    function keysFor(ids, w) {
      if (!Array.isArray(ids) || !ids.length) fail("malformed", w + " has no key ids");
      return ids.map(function (id) {
        if (!root.keys[id]) fail("malformed", w + " names unknown key " + id);
        return root.keys[id];
      });
    }
    function distinct(keys) {
      var seen = {};
      keys.forEach(function (k) {
        seen[k.rawHex] = 1;
      });
      return Object.keys(seen).length;
    }
    onlyKeys(doc.roles, ["root", "index"], null, what + " roles");
    var refused = root.revoked.map(function (r) {
      return { key: r.key, error: "revoked-key" };
    });
    root.roles = {};
    ["root", "index"].forEach(function (name) {
      var role = doc.roles[name];
      onlyKeys(role, ["keyids", "threshold"], null, what + " roles." + name);
      var keys = keysFor(role.keyids, what + " roles." + name);
      if (!isInt(role.threshold) || role.threshold < 1 || role.threshold > distinct(keys))
        fail("malformed", what + ": the " + name + " threshold is not between 1 and its number of keys");
      root.roles[name] = {
        name: name + " role of root version " + root.version,
        keys: keys,
        threshold: role.threshold,
        refused: refused,
      };
    });
    if (!isObj(doc.maintainers) || !isObj(doc.plugin_thresholds)) fail("malformed", what + ": bad maintainers");
    root.maintainers = {};
    var signing = root.roles.root.keys.map(function (k) {
      return k.rawHex;
    });
    Object.keys(doc.maintainers).forEach(function (id) {
      var m = doc.maintainers[id];
      onlyKeys(m, ["keyids", "plugins"], null, what + " maintainers." + id);
      strList(m.plugins, what + " maintainers." + id + " plugins");
      keysFor(m.keyids, what + " maintainers." + id).forEach(function (k) {
        signing.push(k.rawHex);
      });
      root.maintainers[id] = m;
    });
    // 5.1 rule 6: a compromised publishing server (index key) cannot sign roots or releases.
    root.roles.index.keys.forEach(function (k) {
      if (signing.indexOf(k.rawHex) >= 0) fail("malformed", what + ": index key " + k.keyId + " is also a root or maintainer key");
    });
    return root;
  }

  /** The maintainers of ``root`` holding ``keyId`` and delegated ``plugin`` (docs/trust.md 5.5). */
  function maintainersOf(root, keyId, plugin) {
    return Object.keys(root.maintainers).filter(function (id) {
      var m = root.maintainers[id];
      return m.keyids.indexOf(keyId) >= 0 && (m.plugins || []).some(function (p) {
        return p.slice(-1) === "*" ? plugin.indexOf(p.slice(0, -1)) === 0 : plugin === p;
      });
    });
  }

  // ------------------------------------------------------------------ sources

  /** Fetches site files relative to the page, capped; null for 404. */
  function httpSource() {
    return {
      label: new URL(".", document.baseURI).href,
      get: async function (path, maxSize, opts) {
        var resp;
        try {
          resp = await fetch(path, { cache: opts && opts.mutable ? "no-cache" : "default" });
        } catch (e) {
          fail("network", "could not fetch " + path + " (" + e.message + ")");
        }
        if (resp.status === 404) return null;
        if (!resp.ok) fail("network", "fetching " + path + " answered HTTP " + resp.status);
        var reader = resp.body.getReader();
        var chunks = [];
        var total = 0;
        for (;;) {
          var part = await reader.read();
          if (part.done) break;
          total += part.value.length;
          if (total > maxSize) {
            reader.cancel();
            fail("endless-data", path + " is larger than the " + maxSize + " bytes it may have");
          }
          chunks.push(part.value);
        }
        var out = new Uint8Array(total);
        var at = 0;
        chunks.forEach(function (c) {
          out.set(c, at);
          at += c.length;
        });
        return out;
      },
    };
  }

  /** The same interface over a folder the user picked (a page opened from a local file cannot fetch its siblings). */
  function folderSource(fileList) {
    var files = {};
    var label = "";
    Array.prototype.forEach.call(fileList, function (f) {
      var rel = f.webkitRelativePath || f.name;
      var cut = rel.indexOf("/");
      if (cut >= 0) {
        label = rel.slice(0, cut);
        rel = rel.slice(cut + 1);
      }
      files[rel] = f;
    });
    return {
      label: label + "/",
      get: async function (path, maxSize) {
        var f = files[path];
        if (!f) return null;
        if (f.size > maxSize) fail("endless-data", path + " is larger than the " + maxSize + " bytes it may have");
        return new Uint8Array(await f.arrayBuffer());
      },
    };
  }

  async function getSignatures(source, file, keyIds, withPlain) {
    var names = (withPlain ? [file + ".minisig"] : []).concat(
      keyIds.map(function (id) {
        return file + "." + id + ".minisig";
      })
    );
    var out = [];
    for (var i = 0; i < names.length; i++) {
      var bytes = await source.get(names[i], MAX_SIG, { mutable: true });
      if (bytes) out.push({ path: names[i], bytes: bytes });
    }
    return out;
  }

  function uniqueIds(keys) {
    var seen = {};
    return keys
      .map(function (k) {
        return k.keyId;
      })
      .filter(function (id) {
        return seen[id] ? false : (seen[id] = true);
      });
  }

  function checkPin(pin, what) {
    onlyKeys(pin, ["sha256", "size"], null, what);
    if (!SHA_RE.test(pin.sha256) || !isInt(pin.size) || pin.size < 1)
      fail("malformed", what + " is not a pin {sha256: 64 lower-case hex digits, size >= 1}");
  }

  /** Fetch a document by its pin: at most `size` bytes, then sha256 and size must match. */
  async function getPinned(source, pin, what) {
    checkPin(pin, "the pin of " + what);
    var path = "meta/" + pin.sha256.slice(0, 2) + "/" + pin.sha256 + ".json";
    var bytes = await source.get(path, pin.size);
    if (!bytes) fail("network", what + " (" + path + ") is missing from the site");
    var got = await sha256Hex(bytes);
    if (got !== pin.sha256 || bytes.length !== pin.size)
      fail(
        "digest-mismatch",
        what + " (" + path + ") has sha256 " + got + " and " + bytes.length + " bytes; the signed pin says " +
          pin.sha256 + " and " + pin.size + " bytes"
      );
    return { path: path, bytes: bytes, doc: parseJson(decodeUtf8(bytes, what), what) };
  }

  // ------------------------------------------------------------------ the verification procedure

  /** FORMAT2-SPEC 6.1-6.2 and the catalog pin; returns everything the pages show. */
  async function verifyRegistry(source, pinnedBytes, now) {
    var current;
    try {
      current = parseRoot(pinnedBytes, "the pinned root");
    } catch (e) {
      if (e instanceof VerifyError) fail("root-chain", e.message);
      throw e;
    }
    var chain = [current];
    for (var step = 0; step < MAX_CHAIN; step++) {
      var v = current.version + 1;
      var file = "root/" + v + ".root.json";
      var raw = await source.get(file, MAX_ROOT, { mutable: true });
      if (!raw) break;
      var oldIds = uniqueIds(current.roles.root.keys);
      var sigs = await getSignatures(source, file, oldIds, false);
      // 5.5 step 0: no key of root N signed it -> refused before it is parsed.
      var pre = await tally(raw, sigs, current.roles.root);
      if (!pre.keyIds.length) requireThreshold(pre, current.roles.root, file, "root-chain");
      var next;
      try {
        next = parseRoot(raw, file);
      } catch (e) {
        if (e instanceof VerifyError) fail("root-chain", e.message);
        throw e;
      }
      if (next.version !== v) fail("root-chain", file + " says version " + next.version + ", expected " + v);
      if (next.registry !== current.registry)
        fail("root-chain", file + " is for registry '" + next.registry + "', not '" + current.registry + "'");
      checkContinuity(current, next, file);
      var more = uniqueIds(next.roles.root.keys).filter(function (id) {
        return oldIds.indexOf(id) < 0;
      });
      sigs = sigs.concat(await getSignatures(source, file, more, false));
      var revokedNow = next.revoked.map(function (r) {
        return r.key.rawHex;
      });
      var nextRefused = next.revoked.map(function (r) {
        return { key: r.key, error: "revoked-key" };
      });
      var oldRole = {
        name: current.roles.root.name,
        threshold: current.roles.root.threshold,
        keys: current.roles.root.keys.filter(function (k) {
          return revokedNow.indexOf(k.rawHex) < 0;
        }),
        refused: nextRefused.concat(current.roles.root.refused),
      };
      requireThreshold(await tally(raw, sigs, oldRole), oldRole, file, "root-chain");
      requireThreshold(await tally(raw, sigs, next.roles.root), next.roles.root, file, "root-chain");
      current = next;
      chain.push(next);
    }
    if (now >= current.expires)
      fail("root-expired", "root version " + current.version + " expired at " + current.expiresText);

    var top = await source.get("registry.json", MAX_TOP, { mutable: true });
    if (!top) fail("network", "registry.json is missing from the site");
    var indexRole = current.roles.index;
    var topSigs = await getSignatures(source, "registry.json", uniqueIds(indexRole.keys), true);
    var signers = requireThreshold(await tally(top, topSigs, indexRole), indexRole, "registry.json", "bad-signature");
    var doc = parseJson(decodeUtf8(top, "registry.json"), "registry.json");
    if (!isObj(doc)) fail("malformed", "registry.json is not an object");
    // Read as an integer first (decision 7): 2.0 or 2e0 is malformed, not another format.
    if (!isInt(doc.format_version)) fail("malformed", "registry.json: format_version is not an integer");
    if (doc.format_version !== 2)
      fail("unsupported-format", "registry.json has format_version " + JSON.stringify(doc.format_version) + "; this catalog reads 2");
    onlyKeys(doc, ["format_version", "version", "generated_at", "expires_at", "root_version", "registry", "tree",
      "catalog", "counts"], null, "registry.json");
    onlyKeys(doc.registry, ["name", "description", "base_url", "host"], null, "registry.json registry");
    onlyKeys(doc.registry.host, ["name", "versions"], null, "registry.json registry host");
    // The client's TopDocument.parse: strings of at most these lengths.
    [[doc.registry.name, "name", 128], [doc.registry.description, "description", 4096],
      [doc.registry.base_url, "base_url", 2048], [doc.registry.host.name, "host.name", 128],
      [doc.registry.host.versions, "host.versions", 256]].forEach(function (f) {
      if (!isStr(f[0]) || Array.from(f[0]).length > f[2]) // code points, as Python counts them
        fail("malformed", "registry.json registry." + f[1] + " is not a string of at most " + f[2] + " characters");
    });
    checkPin(doc.tree, "registry.json tree");
    checkPin(doc.catalog, "registry.json catalog");
    onlyKeys(doc.counts, ["plugins", "releases"], null, "registry.json counts");
    if (!isInt(doc.counts.plugins) || !isInt(doc.counts.releases)) fail("malformed", "registry.json counts are not integers");
    if (!isInt(doc.version) || !isInt(doc.root_version)) fail("malformed", "registry.json: bad version numbers");
    var generated = parseTime(doc.generated_at, "registry.json generated_at");
    var expires = parseTime(doc.expires_at, "registry.json expires_at");
    if (doc.registry.name !== current.registry)
      fail("wrong-registry", "registry.json is for '" + doc.registry.name + "', the root for '" + current.registry + "'");
    if (doc.root_version > current.version)
      fail("malformed", "registry.json names root version " + doc.root_version + ", newer than the chain's " + current.version);
    if (now >= expires) fail("freeze", "registry.json expired at " + doc.expires_at + "; the publisher must re-sign it");
    var catalog = await getPinned(source, doc.catalog, "the catalog document");
    if (!isObj(catalog.doc) || catalog.doc._type !== "registry-catalog" || catalog.doc.format_version !== 2)
      fail("malformed", "the catalog document is not a format 2 registry-catalog");
    onlyKeys(catalog.doc, ["_type", "format_version", "plugins"], null, "the catalog document");
    return {
      source: source,
      root: current,
      chain: chain,
      pinned: chain[0],
      pinnedSha256: await sha256Hex(pinnedBytes),
      top: doc,
      topBytes: top.length,
      topSigners: signers,
      generated: generated,
      expires: expires,
      catalog: catalog,
      checkedAt: now,
    };
  }

  /** Every key id a root names (keys and revoked) -> the raw key (hex). */
  function keyIds(root) {
    var ids = {};
    Object.keys(root.keys).forEach(function (id) {
      ids[id] = root.keys[id].rawHex;
    });
    root.revoked.forEach(function (r) {
      if (!(r.key.keyId in ids)) ids[r.key.keyId] = r.key.rawHex;
    });
    return ids;
  }

  /** docs/trust.md 5.5 step 4: every plugin ``inner`` matches, ``outer`` matches too. */
  function patternWithin(inner, outer) {
    if (outer.slice(-1) === "*") return (inner.slice(-1) === "*" ? inner.slice(0, -1) : inner).indexOf(outer.slice(0, -1)) === 0;
    return inner === outer;
  }

  function samePlugins(a, b) {
    var x = a.slice().sort(), y = b.slice().sort();
    var dx = x.filter(function (v, i) { return x.indexOf(v) === i; });
    var dy = y.filter(function (v, i) { return y.indexOf(v) === i; });
    return dx.length === dy.length && dx.every(function (v, i) { return v === dy[i]; });
  }

  function checkContinuity(prev, next, file) {
    // A key id names one public key for the whole chain (ids are chosen by the key's maker).
    var before = keyIds(prev), after = keyIds(next);
    Object.keys(before).forEach(function (id) {
      if (id in after && after[id] !== before[id]) fail("root-chain", file + " binds key id " + id + " to another public key");
    });
    prev.revoked.forEach(function (old) {
      var now = next.revoked.filter(function (r) {
        return r.key.rawHex === old.key.rawHex;
      })[0];
      if (
        !now ||
        now.entry.keyid !== old.entry.keyid ||
        now.entry.revoked_at !== old.entry.revoked_at ||
        now.entry.revoked_in_version !== old.entry.revoked_in_version ||
        !samePlugins(now.entry.plugins, old.entry.plugins) ||
        (now.entry.keep_prior_releases && !old.entry.keep_prior_releases)
      )
        fail("root-chain", file + " drops or alters the revocation of key " + old.key.keyId);
    });
    next.revoked.forEach(function (r) {
      var known = prev.revoked.some(function (o) {
        return o.key.rawHex === r.key.rawHex;
      });
      if (known) return;
      if (r.entry.revoked_in_version !== next.version)
        fail("root-chain", file + ": new revocation of " + r.key.keyId + " has the wrong revoked_in_version");
      if (r.at > next.expires)
        fail("root-chain", file + ": new revocation of " + r.key.keyId + " is dated after the version expires");
      // A revocation never delegates: its plugins lie within what the key was delegated before.
      var delegated = [];
      Object.keys(prev.maintainers).forEach(function (id) {
        var m = prev.maintainers[id];
        var holds = m.keyids.some(function (k) { return prev.keys[k] && prev.keys[k].rawHex === r.key.rawHex; });
        if (holds) delegated = delegated.concat(m.plugins);
      });
      r.entry.plugins.forEach(function (p) {
        if (!delegated.some(function (d) { return patternWithin(p, d); }))
          fail("root-chain", file + ": new revocation of " + r.key.keyId + " names " + p + ", which the key was not delegated");
      });
    });
  }

  /** The plugin document (FORMAT2-SPEC 4), fetched by the catalog's pin. */
  async function verifyPlugin(state, name) {
    var entry = state.catalog.doc.plugins[name];
    if (!entry) fail("not-found", "the registry has no plugin named " + name);
    var got = await getPinned(state.source, entry.document, "the document of " + name);
    var doc = got.doc;
    if (!isObj(doc) || doc._type !== "registry-plugin" || doc.format_version !== 2)
      fail("malformed", got.path + " is not a format 2 plugin document");
    onlyKeys(doc, ["_type", "format_version", "name", "versions"], null, got.path);
    if (doc.name !== name) fail("wrong-software", got.path + " describes '" + doc.name + "', not '" + name + "'");
    if (!isObj(doc.versions)) fail("malformed", got.path + ": versions is not an object");
    Object.keys(doc.versions).forEach(function (v) {
      if (!SEMVER_RE.test(v)) fail("malformed", got.path + ": version '" + v + "' is not a semver version");
      var r = doc.versions[v];
      checkRelease(r, got.path + ": release " + v);
      var base = "plugins/" + name + "/" + v + "/";
      var wasmFile = isStr(r.wasm.path) ? r.wasm.path.slice(base.length) : "";
      if (r.manifest.path !== base + "plugin.toml" || !r.wasm.path.startsWith(base) || !FILE_RE.test(wasmFile) ||
        wasmFile === "." || wasmFile === "..")
        fail("path-traversal", got.path + ": release " + v + " points outside " + base);
    });
    return { path: got.path, sha256: entry.document.sha256, size: entry.document.size, doc: doc };
  }

  // ------------------------------------------------------------------ versions and ranges (FORMAT2-SPEC 7)

  function parseVersion(text) {
    var m = SEMVER_RE.exec(text);
    if (!m) return null;
    // BigInt: a version number may reach 2^64 - 1, past what a JavaScript number holds exactly.
    return { major: BigInt(m[1]), minor: BigInt(m[2]), patch: BigInt(m[3]), pre: m[4] ? m[4].split(".") : [] };
  }

  function comparePre(a, b) {
    if (!a.length || !b.length) return b.length - a.length; // no prerelease sorts higher
    for (var i = 0; i < Math.min(a.length, b.length); i++) {
      var an = /^[0-9]+$/.test(a[i]);
      var bn = /^[0-9]+$/.test(b[i]);
      if (an && bn && a[i] !== b[i]) return cmp(BigInt(a[i]), BigInt(b[i]));
      if (an !== bn) return an ? -1 : 1;
      if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return a.length - b.length;
  }

  function cmp(x, y) {
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function compareVersions(a, b) {
    return cmp(a.major, b.major) || cmp(a.minor, b.minor) || cmp(a.patch, b.patch) || comparePre(a.pre, b.pre);
  }

  var PRE = "(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*";
  var PART = "(?:\\*|x|X|0|[1-9][0-9]*)";
  // "*" alone, or an operator and a partial version whose major is a number.
  var COMP_RE = new RegExp(
    "^(?:\\*|(=|>=|<=|>|<|\\^|~)?((?:0|[1-9][0-9]*)(?:\\." + PART + "(?:\\." + PART + "(?:-" + PRE + ")?)?)?))$"
  );

  /** A range as a list of sets of comparators [op, version]; null when it does not parse. */
  function parseRange(text) {
    if (!isStr(text) || !text || text.length > 256 || /^[ \t]|[ \t]$/.test(text)) return null;
    var sets = [];
    var alts = text.split(/[ \t]*\|\|[ \t]*/);
    for (var s = 0; s < alts.length; s++) {
      var parts = alts[s].split(/[ \t]*,[ \t]*|[ \t]+/);
      var comps = [];
      for (var p = 0; p < parts.length; p++) {
        var m = COMP_RE.exec(parts[p]);
        if (!m) return null;
        var expanded = m[2] === undefined ? [] : expandComparator(m[1] || "", m[2]);
        if (!expanded) return null;
        comps = comps.concat(expanded);
      }
      sets.push(comps);
    }
    return sets;
  }

  function expandComparator(op, partial) {
    var bits = partial.split("-")[0].split(".");
    var pre = partial.indexOf("-") >= 0 ? partial.slice(partial.indexOf("-") + 1).split(".") : [];
    var wild = function (x) {
      return x === undefined || x === "*" || x === "x" || x === "X";
    };
    var n = bits.length;
    for (var i = 0; i < n; i++) if (wild(bits[i])) n = i;
    for (var j = n; j < bits.length; j++) if (!wild(bits[j])) return null; // "1.x.3"
    if (pre.length && n < 3) return null;
    var maj = BigInt(bits[0]), min = n > 1 ? BigInt(bits[1]) : 0n, pat = n > 2 ? BigInt(bits[2]) : 0n;
    // Upper bounds written as X.Y.Z-0 are ours, not the user's: they never admit a prerelease.
    function V(a, b, c, pr) {
      return { major: a, minor: b, patch: c, pre: pr || [], synthetic: pr !== undefined && pr[0] === "0" && pr !== pre };
    }
    if (n === 0) return op === "" || op === "=" || op === ">=" || op === "^" || op === "~" ? [] : op === "<" || op === ">" ? [["<", V(0n, 0n, 0n, ["0"])]] : [];
    var lo = V(maj, min, pat, pre);
    var upper;
    if (op === "^") {
      if (maj > 0n || n === 1) upper = V(maj + 1n, 0n, 0n, ["0"]);
      else if (min > 0n || n === 2) upper = V(0n, min + 1n, 0n, ["0"]);
      else upper = V(0n, 0n, pat + 1n, ["0"]);
      return [[">=", lo], ["<", upper]];
    }
    if (op === "~" || ((op === "" || op === "=") && n < 3)) {
      upper = n === 1 ? V(maj + 1n, 0n, 0n, ["0"]) : V(maj, min + 1n, 0n, ["0"]);
      return [[">=", lo], ["<", upper]];
    }
    if (op === "" || op === "=") return [["=", lo]];
    if (n < 3 && (op === ">" || op === "<=")) {
      // ">1.2" = ">=1.3.0", "<=1.2" = "<1.3.0"
      var next = n === 1 ? V(maj + 1n, 0n, 0n, ["0"]) : V(maj, min + 1n, 0n, ["0"]);
      return [[op === ">" ? ">=" : "<", next]];
    }
    return [[op, lo]];
  }

  function satisfies(sets, version) {
    return sets.some(function (comps) {
      var ok = comps.every(function (c) {
        var d = compareVersions(version, c[1]);
        return { "=": d === 0, ">": d > 0, ">=": d >= 0, "<": d < 0, "<=": d <= 0 }[c[0]];
      });
      if (!ok || !version.pre.length) return ok;
      // A prerelease only matches a set that names the same major.minor.patch with a prerelease.
      return comps.some(function (c) {
        var w = c[1];
        return w.pre.length && !w.synthetic && w.major === version.major && w.minor === version.minor &&
          w.patch === version.patch;
      });
    });
  }

  // ------------------------------------------------------------------ UI helpers (text only: no markup from documents)

  // The characters errors.py's printable() shows as escapes (controls but newline and tab, bidi
  // marks and overrides, invisible and tag characters): shown so, as the CLI shows them, every
  // text of the page is what a document holds ("r\u200fevil" rendered as "revil").
  var UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\u3164\ufeff\uffa0\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;
  function visible(text) {
    return String(text).replace(UNPRINTABLE, function (c) {
      var code = c.codePointAt(0);
      var hex = code.toString(16);
      if (code < 0x100) return "\\x" + ("0" + hex).slice(-2);
      if (code < 0x10000) return "\\u" + ("000" + hex).slice(-4);
      return "\\U" + ("0000000" + hex).slice(-8);
    });
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs)
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") node.textContent = visible(attrs[k]);
        else if (k === "class") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c))
        c.forEach(function (x) {
          if (x) node.appendChild(typeof x === "string" ? document.createTextNode(visible(x)) : x);
        });
      else node.appendChild(typeof c === "string" ? document.createTextNode(visible(c)) : c);
    }
    return node;
  }

  /** replaceChildren without the "null" text nodes that optional parts would otherwise become. */
  function put(node) {
    var kids = Array.prototype.slice.call(arguments, 1).filter(function (k) {
      return k !== null && k !== undefined && k !== false;
    });
    node.replaceChildren.apply(node, kids);
  }

  /** An http(s) URL the page links to: none naming a user before its host (user@host shows one
   * host and opens another) and none with a raw control, bidi or line separator character. */
  function safeUrl(u) {
    if (!isStr(u) || !/^https?:\/\//i.test(u) || /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(u))
      return null;
    try {
      var parsed = new URL(u);
      return parsed.username || parsed.password ? null : u;
    } catch (e) {
      return null;
    }
  }

  function bytesText(n) {
    if (!isInt(n)) return "—";
    if (n >= 1 << 20 && n % (1 << 20) === 0) return n / (1 << 20) + " MiB";
    if (n >= 1024 && n % 1024 === 0) return n / 1024 + " KiB";
    return n.toLocaleString("en") + " B";
  }

  function num(n) {
    return isInt(n) ? n.toLocaleString("en") : "—";
  }

  function copyButton(text, label) {
    var btn = el("button", { type: "button", class: "copy", text: "Copy", "aria-label": "Copy " + label });
    btn.addEventListener("click", function () {
      var done = function () {
        btn.textContent = "Copied";
        btn.setAttribute("data-copied", text);
        setTimeout(function () {
          btn.textContent = "Copy";
        }, 2000);
      };
      if (navigator.clipboard && navigator.clipboard.writeText)
        navigator.clipboard.writeText(text).then(done, function () {
          legacyCopy(text) && done();
        });
      else if (legacyCopy(text)) done();
    });
    return btn;
  }

  function legacyCopy(text) {
    var ta = el("textarea", { "aria-hidden": "true", class: "offscreen" });
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    ta.remove();
    return ok;
  }

  function codeBlock(text, label) {
    return el("div", { class: "code" }, el("pre", null, el("code", { text: text })), copyButton(text, label));
  }

  function dl(rows) {
    return el(
      "dl",
      { class: "facts" },
      rows
        .filter(function (r) {
          return r;
        })
        .map(function (r) {
          return el("div", null, el("dt", { text: r[0] }), el("dd", null, r[1]));
        })
    );
  }

  function chips(list, cls) {
    if (!list || !list.length) return el("span", { class: "muted", text: "none" });
    return el(
      "ul",
      { class: "chips" },
      list.map(function (x) {
        return el("li", { class: cls || "chip", text: x });
      })
    );
  }

  function table(caption, head, rows) {
    return el(
      "table",
      null,
      el("caption", { text: caption }),
      el("thead", null, el("tr", null, head.map(function (h) {
        return el("th", { scope: "col", text: h });
      }))),
      el("tbody", null, rows.map(function (r) {
        return el("tr", null, r.map(function (c, i) {
          return el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : null, c);
        }));
      }))
    );
  }

  // ------------------------------------------------------------------ application

  var app = {
    state: null, // the verified registry
    error: null,
    entries: null, // catalog entries prepared for search
    query: { text: "", abi: "", permission: "", host: "", license: "", page: 0 },
    lastSearchMs: null,
    rangeCache: {},
  };

  var main, badge;

  function setBadge(ok, title, detail) {
    badge.className = "badge " + (ok === true ? "ok" : ok === false ? "bad" : "busy");
    badge.setAttribute("data-state", ok === true ? "verified" : ok === false ? "failed" : "checking");
    put(badge, 
      el("span", { class: "badge-title", text: title }),
      detail ? el("span", { class: "badge-detail", text: detail }) : null
    );
  }

  function showFailure(err, context) {
    var e = err instanceof VerifyError ? err : new VerifyError("error", String(err && err.message || err), "Error");
    setBadge(false, "Not verified: " + e.title, e.message);
    document.title = "Not verified — registry catalog";
    put(main, 
      el(
        "section",
        { class: "failure", role: "alert", "data-error": e.cls },
        el("h1", { tabindex: "-1", text: e.title }),
        el("p", { text: e.message }),
        el("p", {
          text: context ||
            "Nothing from this registry is shown, because it could not be verified against the root " +
            "shipped with this page. Do not install from it until its publisher has fixed this.",
        }),
        el("p", { class: "muted", text: "Error class: " + e.cls })
      )
    );
    main.querySelector("h1").focus();
  }

  function prepareEntries(catalog) {
    var plugins = catalog.doc.plugins;
    if (!isObj(plugins)) fail("malformed", "the catalog document has no plugins object");
    return Object.keys(plugins)
      .sort()
      .map(function (name) {
        var p = plugins[name];
        if (!NAME_RE.test(name)) fail("malformed", "the catalog lists a bad plugin name '" + name + "'");
        checkCatalogEntry(p, "the catalog entry of " + name);
        var words = [name, p.description, (p.keywords || []).join(" "), (p.authors || []).join(" ")];
        return { name: name, p: p, hay: words.join("\n").toLowerCase() };
      });
  }

  function hostRange(text) {
    if (!(text in app.rangeCache)) app.rangeCache[text] = parseRange(text);
    return app.rangeCache[text];
  }

  /** The search: every whitespace-separated term must occur; filters are exact. */
  function search(q) {
    var terms = q.text.toLowerCase().split(/\s+/).filter(Boolean);
    var host = q.host ? parseVersion(q.host.trim()) : null;
    var out = [];
    var entries = app.entries;
    for (var i = 0; i < entries.length; i++) {
      var e = entries[i];
      var ok = true;
      for (var t = 0; t < terms.length && ok; t++) ok = e.hay.indexOf(terms[t]) >= 0;
      if (!ok) continue;
      var p = e.p;
      if (q.abi && p.abi !== q.abi) continue;
      if (q.license && p.license !== q.license) continue;
      if (q.permission === "(none)" ? p.permissions && p.permissions.length : q.permission && (p.permissions || []).indexOf(q.permission) < 0)
        continue;
      if (host && p.host) {
        var r = hostRange(p.host);
        if (!r || !satisfies(r, host)) continue;
      }
      out.push(e);
    }
    if (terms.length) {
      // names that start with the first term first, the rest in name order
      var first = terms[0];
      var head = [], tail = [];
      out.forEach(function (e) {
        (e.name.indexOf(first) === 0 ? head : tail).push(e);
      });
      out = head.concat(tail);
    }
    return out;
  }

  function distinctValues(f) {
    var seen = {};
    app.entries.forEach(function (e) {
      [].concat(f(e.p) || []).forEach(function (v) {
        if (isStr(v)) seen[v] = 1;
      });
    });
    return Object.keys(seen).sort();
  }

  function select(id, label, values, current, extra) {
    var s = el("select", { id: id, name: id });
    [["", "Any"]].concat(extra || [], values.map(function (v) {
      return [v, v];
    })).forEach(function (o) {
      var opt = el("option", { value: o[0], text: o[1] });
      if (o[0] === current) opt.selected = true;
      s.appendChild(opt);
    });
    return el("div", { class: "field" }, el("label", { for: id, text: label }), s);
  }

  function renderList() {
    var st = app.state;
    var q = app.query;
    document.title = st.top.registry.name + " — plugin catalog";
    var input = el("input", {
      id: "q", type: "search", name: "q", placeholder: "Search names, descriptions, keywords", autocomplete: "off",
      "aria-describedby": "result-status",
    });
    input.value = q.text;
    var hostInput = el("input", { id: "host", name: "host", inputmode: "decimal", placeholder: "e.g. 0.3.1", autocomplete: "off" });
    hostInput.value = q.host;
    var form = el(
      "form",
      { class: "filters", role: "search", "aria-label": "Search plugins" },
      el("div", { class: "field grow" }, el("label", { for: "q", text: "Search" }), input),
      select("abi", "ABI", distinctValues(function (p) {
        return p.abi;
      }), q.abi),
      select("permission", "Permission", distinctValues(function (p) {
        return p.permissions;
      }), q.permission, [["(none)", "None needed"]]),
      el("div", { class: "field" }, el("label", { for: "host", text: "Host version" }), hostInput),
      select("license", "License", distinctValues(function (p) {
        return p.license;
      }), q.license)
    );
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
    });
    var status = el("p", { id: "result-status", class: "status", role: "status", "aria-live": "polite" });
    var list = el("ol", { id: "results", class: "results" });
    var pager = el("nav", { class: "pager", "aria-label": "Result pages" });
    put(main, 
      el("h1", { tabindex: "-1", class: "visually-hidden", text: "Plugins" }),
      el("p", { class: "lede", text: st.top.registry.description || "" }),
      form,
      status,
      list,
      pager
    );
    function update(resetPage) {
      var t0 = performance.now();
      q.text = input.value;
      q.abi = form.abi.value;
      q.permission = form.permission.value;
      q.license = form.license.value;
      q.host = hostInput.value.trim();
      if (resetPage) q.page = 0;
      var badHost = q.host && !parseVersion(q.host);
      hostInput.setAttribute("aria-invalid", badHost ? "true" : "false");
      var found = search(q);
      var pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
      if (q.page >= pages) q.page = pages - 1;
      var shown = found.slice(q.page * PAGE_SIZE, (q.page + 1) * PAGE_SIZE);
      list.replaceChildren.apply(list, shown.map(resultItem));
      pager.replaceChildren(
        pageButton("Previous", q.page > 0, function () {
          q.page--;
          update(false);
        }),
        el("span", { text: "Page " + (q.page + 1) + " of " + pages }),
        pageButton("Next", q.page + 1 < pages, function () {
          q.page++;
          update(false);
        })
      );
      var ms = performance.now() - t0;
      app.lastSearchMs = ms;
      status.setAttribute("data-search-ms", ms.toFixed(2));
      status.setAttribute("data-count", String(found.length));
      status.textContent =
        found.length.toLocaleString("en") + " of " + app.entries.length.toLocaleString("en") + " plugins" +
        (badHost ? " (host version is not a semver version; filter ignored)" : "");
    }
    form.addEventListener("input", function () {
      update(true);
    });
    // No "change" listener: it fires when focus leaves the search box, and re-rendering then
    // would pull the result a keyboard user is tabbing to out from under them.
    update(false);
  }

  function pageButton(text, enabled, onClick) {
    var b = el("button", { type: "button", text: text });
    b.disabled = !enabled;
    b.addEventListener("click", onClick);
    return b;
  }

  function resultItem(e) {
    var p = e.p;
    return el(
      "li",
      null,
      el(
        "article",
        { class: "card" },
        el("h2", null, el("a", { href: "#/plugin/" + e.name, text: e.name }),
          el("span", { class: "version", text: p.latest ? " " + p.latest : " (all versions yanked)" })),
        el("p", { text: p.description || "" }),
        el("p", { class: "meta" },
          el("span", { text: p.license || "" }), " · ", el("span", { text: "ABI " + (p.abi || "?") }), " · ",
          el("span", { text: "host " + (p.host || "any") }),
          p.permissions && p.permissions.length ? " · needs " + p.permissions.join(", ") : " · no permissions")
      )
    );
  }

  async function renderPlugin(name, version) {
    var st = app.state;
    // A link's text is anybody's: it reaches the page only when it is a plugin name (and a
    // version), never as free text under the verified badge ("No plugin X. SECURITY NOTICE: ...").
    if (!NAME_RE.test(name) || (version && !SEMVER_RE.test(version))) {
      put(main, el("h1", { tabindex: "-1", text: "No such plugin or version" }), el("p", null, el("a", { href: "#/", text: "Back to the list" })));
      return;
    }
    put(main, el("p", { class: "status", role: "status", text: "Verifying the document of " + name + "…" }));
    var doc, failure = null;
    try {
      doc = await verifyPlugin(st, name);
    } catch (e) {
      failure = e;
    }
    var now = routeParts();
    // Navigated away meanwhile (another plugin, or another version of this one, whose answer may
    // come first): neither its page nor its failure replaces the one shown now.
    if (now[0] !== "plugin" || now[1] !== name || (now[2] || "") !== (version || "")) return;
    if (failure !== null) {
      if (failure instanceof VerifyError && failure.cls === "not-found") {
        put(main, el("h1", { tabindex: "-1", text: "No plugin " + name }), el("p", null, el("a", { href: "#/", text: "Back to the list" })));
        return;
      }
      showFailure(failure, "The document of this plugin failed verification, so none of it is shown.");
      return;
    }
    var releases = doc.doc.versions;
    if (version && !Object.prototype.hasOwnProperty.call(releases, version)) {
      // A link to a version the signed document does not hold: say so, never show another one.
      put(
        main,
        el("h1", { tabindex: "-1", text: "No version " + version + " of " + name }),
        el("p", null, el("a", { href: "#/plugin/" + encodeURIComponent(name), text: "The releases of " + name }))
      );
      return;
    }
    var versions = Object.keys(releases).sort(function (a, b) {
      return compareVersions(parseVersion(b), parseVersion(a));
    });
    var entry = st.catalog.doc.plugins[name];
    var chosen = version && releases[version] ? version : entry.latest || versions[0];
    var r = releases[chosen];
    // base_url is any string the index key signed: quoted for the shell and for Python, so that
    // a copied command never runs what the string holds ($(...), quotes, a second statement).
    var base = st.top.registry.base_url;
    var cmd = "registry-tool client install " + shellQuote(name + "@" + chosen) + " --registry " + shellQuote(base);
    var perms = (r.permissions || []).length ? ", allow={" + r.permissions.map(pyQuote).join(", ") + "}" : "";
    var trustCmd = "registry-tool client trust " + shellQuote(base) + " --root-fingerprint " + st.pinnedSha256;
    var snippet =
      "from pathlib import Path\nfrom registry_tool.client import Registry, load_plugin_bytes, trust\n\n" +
      "state, plugins = Path(\"trust\"), Path(\"plugins\")\n" +
      "trust(" + pyQuote(base) + ", root_bytes=Path(\"1.root.json\").read_bytes(), state_dir=state)  # once\n" +
      "reg = Registry.open(" + pyQuote(base) + ", state_dir=state)\n" +
      "reg.install(" + pyQuote(name + "@" + chosen) + ", plugins" + perms + ")\n" +
      "wasm = load_plugin_bytes(plugins, " + pyQuote(name) + ")  # verified bytes for your wasm runtime\n";
    document.title = name + " " + chosen + " — " + st.top.registry.name;
    var signerRows = (r.signers || []).map(function (id) {
      var who = maintainersOf(st.root, id, name);
      return [el("code", { text: id }), who.length ? who.join(", ") : el("span", { class: "muted", text: "no maintainer of " + name + " in root v" + st.root.version })];
    });
    var smoke = Array.isArray(r.smoke) ? r.smoke : null;
    put(main, 
      el("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, el("a", { href: "#/", text: "All plugins" }), " / " + name),
      el(
        "article",
        { class: "plugin" },
        el("header", null,
          el("h1", { tabindex: "-1" }, name, el("span", { class: "version", text: " " + chosen })),
          r.yanked ? el("p", { class: "yanked", role: "note", text: "Yanked: " + r.yanked.reason }) : null,
          el("p", { class: "lede", text: r.description || "" }),
          el("p", { class: "docpin", text: "Plugin document " + doc.path + " matched its signed pin (sha256 " + doc.sha256 + ", " + doc.size + " bytes)." })),
        el("section", { "aria-labelledby": "h-install" },
          el("h2", { id: "h-install", text: "Install" }),
          // Commands only for a base URL of printable ASCII without quote or backslash: single quotes
          // then hold it in every shell (fish reads \' inside them), and no control reaches a terminal.
          /^[\x21-\x7e]+$/.test(base) && !/['\\]/.test(base)
            ? [
                codeBlock(cmd, "install command"),
                el("p", { class: "muted" }, "Once per machine, pin the registry's root first. The fingerprint is the " +
                  "SHA-256 of the root this page trusts; compare it with one you got from a source you trust:"),
                codeBlock(trustCmd, "trust command"),
                el("h3", { text: "From a host (Python API)" }),
                codeBlock(snippet, "host API snippet"),
              ]
            : el("p", { class: "failure", role: "note", text: "The registry's base URL holds characters a shell or a " +
                "terminal would read (quotes, spaces, controls or non-ASCII), so no command is offered to copy: " +
                "ask the registry's owners for its address." })),
        el("section", { "aria-labelledby": "h-versions" },
          el("h2", { id: "h-versions", text: "Versions" }),
          table("Every published version, newest first", ["Version", "Published", "Status", "Signed by"], versions.map(function (v) {
            var rv = releases[v];
            return [
              v === chosen ? el("span", { "aria-current": "true", text: v + " (shown)" }) : el("a", { href: "#/plugin/" + name + "/" + v, text: v }),
              el("time", { datetime: rv.published_at, text: rv.published_at }),
              rv.yanked ? el("span", { class: "yanked-tag", text: "yanked: " + rv.yanked.reason }) : v === entry.latest ? "latest" : "available",
              (rv.signers || []).join(", "),
            ];
          }))),
        el("section", { "aria-labelledby": "h-details" },
          el("h2", { id: "h-details", text: "Version " + chosen }),
          dl([
            ["License", r.license || "—"],
            ["ABI", r.abi || "—"],
            ["Host versions", r.host || "any"],
            ["Authors", (r.authors || []).join(", ") || "—"],
            ["Keywords", chips(r.keywords)],
            safeUrl(r.homepage) ? ["Homepage", el("a", { href: safeUrl(r.homepage), rel: "noopener noreferrer", text: r.homepage })] : null,
            safeUrl(r.repository) ? ["Repository", el("a", { href: safeUrl(r.repository), rel: "noopener noreferrer", text: r.repository })] : null,
            ["Published", el("time", { datetime: r.published_at, text: r.published_at })],
            ["Permissions", chips(r.permissions, "chip perm")],
            ["Exports", chips(r.exports, "chip mono")],
            ["Dependencies", isObj(r.dependencies) && Object.keys(r.dependencies).length
              ? chips(Object.keys(r.dependencies).map(function (d) {
                return d + " " + r.dependencies[d];
              }), "chip mono") : el("span", { class: "muted", text: "none" })],
          ]),
          el("h3", { text: "Limits" }),
          dl([
            ["Fuel", num(r.limits && r.limits.fuel)],
            ["Memory", bytesText(r.limits && r.limits.memory)],
            ["Wall time", r.limits && isInt(r.limits.wall_time_ms) ? r.limits.wall_time_ms + " ms" : "—"],
          ]),
          el("h3", { text: "Smoke tests (measured at build)" }),
          smoke && smoke.length
            ? table("Fuel and peak memory per test", ["Test", "Fuel", "Peak memory"], smoke.map(function (s) {
              return [s.name, num(s.fuel), bytesText(s.peak_memory)];
            }))
            : el("p", { class: "muted", text: smoke ? "This release has no tests." : "Built without smoke tests." }),
          el("h3", { text: "Signers" }),
          signerRows.length ? table("Maintainer keys the registry's build verified (the client verifies them again on install)", ["Key id", "Maintainer"], signerRows)
            : el("p", { class: "muted", text: "none listed" }),
          el("h3", { text: "Files" }),
          table("Release files and their digests", ["File", "SHA-256", "Size"], [r.manifest, r.wasm].map(function (f) {
            return [el("a", { href: f.path, text: f.path.split("/").pop() }), el("code", { class: "digest", text: f.sha256 }), bytesText(f.size)];
          }))
        )
      )
    );
    main.querySelector("h1").focus();
  }

  function renderRoot() {
    var st = app.state;
    var root = st.root;
    document.title = "Root — " + st.top.registry.name;
    function keyCell(ids) {
      return el("ul", { class: "plain" }, ids.map(function (id) {
        var k = root.keys[id];
        return el("li", null, el("code", { text: id }), k && k.comment ? " — " + k.comment : "");
      }));
    }
    var d = root.doc;
    put(main, 
      el("h1", { tabindex: "-1", text: "Registry root" }),
      dl([
        ["Registry", root.registry],
        ["Root version", String(root.version) + " (walked from pinned version " + st.pinned.version + ")"],
        ["Root expires", el("time", { datetime: root.expiresText, text: root.expiresText })],
        ["Pinned root sha256", el("code", { class: "digest", text: st.pinnedSha256 })],
        ["Registry version", String(st.top.version)],
        ["Registry signed", el("time", { datetime: st.top.generated_at, text: st.top.generated_at })],
        ["Registry expires", el("time", { datetime: st.top.expires_at, text: st.top.expires_at })],
        ["registry.json signed by", st.topSigners.join(", ")],
        ["Host", st.top.registry.host ? st.top.registry.host.name + " " + st.top.registry.host.versions : "—"],
        ["Base URL", st.top.registry.base_url],
      ]),
      el("h2", { text: "Roles" }),
      table("Keys allowed to sign, and how many must", ["Role", "Keys", "Threshold"], ["root", "index"].map(function (n) {
        return [n, keyCell(d.roles[n].keyids), d.roles[n].threshold + " of " + d.roles[n].keyids.length];
      })),
      el("h2", { text: "Maintainers and delegations" }),
      Object.keys(d.maintainers).length
        ? table("Who may sign releases of which plugins", ["Maintainer", "Keys", "Plugins"], Object.keys(d.maintainers).sort().map(function (id) {
          return [id, keyCell(d.maintainers[id].keyids), chips(d.maintainers[id].plugins, "chip mono")];
        }))
        : el("p", { class: "muted", text: "No maintainers are delegated yet." }),
      Object.keys(d.plugin_thresholds).length
        ? table("Plugins that need more than one maintainer signature", ["Plugin", "Threshold"], Object.keys(d.plugin_thresholds).sort().map(function (p) {
          return [p, String(d.plugin_thresholds[p])];
        }))
        : null,
      el("h2", { text: "Revoked keys" }),
      root.revoked.length
        ? table("Keys that verify nothing any more", ["Key id", "Revoked at", "In version", "Prior releases"], root.revoked.map(function (r) {
          return [el("code", { text: r.key.keyId }), r.entry.revoked_at, String(r.entry.revoked_in_version), r.entry.keep_prior_releases ? "kept" : "invalid"];
        }))
        : el("p", { class: "muted", text: "None." }),
      el("h2", { text: "Chain" }),
      el("ol", { class: "plain" }, st.chain.map(function (r) {
        return el("li", { text: "Version " + r.version + " — expires " + r.expiresText });
      }))
    );
    main.querySelector("h1").focus();
  }

  function verifiedBadge() {
    var st = app.state;
    setBadge(
      true,
      "Verified",
      "root v" + st.root.version + " · registry v" + st.top.version + " · signed by " + st.topSigners.join(", ") +
        " · expires " + st.top.expires_at
    );
  }

  // The hash's parts, each percent-decoded ("" for one that does not decode).
  function routeParts() {
    return location.hash.replace(/^#\/?/, "").split("/").map(function (x) {
      try {
        return decodeURIComponent(x);
      } catch (e) {
        return "";
      }
    });
  }

  function route() {
    if (!app.state) return;
    // A tab left open past registry.json's expiry (or its root's) shows nothing as verified any more.
    var now = Date.now();
    if (now >= app.state.expires || now >= app.state.root.expires) {
      var which = now >= app.state.expires ? "registry.json expired at " + app.state.top.expires_at : "the root expired";
      app.state = null;
      showFailure(new VerifyError("freeze", which + " while this page was open; reload to verify the registry again"));
      return;
    }
    verifiedBadge(); // a plugin page that failed turns it red until the next view
    var h = location.hash.replace(/^#\/?/, "");
    var parts = routeParts();
    document.querySelectorAll("header nav a").forEach(function (a) {
      var here = (a.getAttribute("href") === "#/root") === (parts[0] === "root");
      if (here) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    if (parts[0] === "plugin" && parts[1]) renderPlugin(parts[1], parts[2]);
    else if (parts[0] === "root") renderRoot();
    else {
      renderList();
      var q = document.getElementById("q");
      if (q && h === "") q.focus();
    }
  }

  function pinnedRootBytes() {
    var node = document.getElementById("pinned-root");
    var text = node ? node.textContent.trim() : "";
    if (!text || text.indexOf("@@") >= 0) fail("root-chain", "this page has no pinned root (it was not written by registry-tool build)");
    return b64decode(text, undefined, "the pinned root");
  }

  async function start(source) {
    app.state = null;
    setBadge(null, "Verifying…", "checking signatures and digests");
    try {
      var state = await verifyRegistry(source, pinnedRootBytes(), Date.now());
      app.entries = prepareEntries(state.catalog);
      checkRollback(state);
      app.state = state;
    } catch (e) {
      showFailure(e);
      return;
    }
    document.querySelector(".brand").textContent = app.state.top.registry.name;
    route();
  }

  /**
   * The page's only state: the highest registry version this browser verified for this site and
   * pinned root.  A lower one later is a replayed older registry (FORMAT2-SPEC 6.2 `rollback`);
   * equal is fine.  Without storage (private modes) the check is skipped, as a fresh client would.
   */
  function checkRollback(state) {
    var store = null;
    try {
      store = window.localStorage;
    } catch (e) {
      store = null;
    }
    if (!store) return;
    // Keyed by what the page trusts (the pinned root and the registry's name), never by the URL it
    // was served under: the same files at another path of the origin must not start afresh.  An
    // older page stored the registry version alone under the URL: still honoured.
    var key = "registry-tool catalog " + state.pinnedSha256 + " " + state.root.registry;
    var seen = readSeen(store.getItem(key));
    var older = readSeen(store.getItem("registry-tool catalog " + state.pinnedSha256 + " " + state.source.label));
    if (older.version > seen.version) seen = { version: older.version, root: seen.root };
    if (state.root.version < seen.root)
      fail("rollback", "the root chain ends at version " + state.root.version + ", but this browser already verified " +
        "root version " + seen.root + " of this registry: the server hides the newer root");
    // A step after the root seen that removed an index key (by its public key, as the client
    // compares them) resets the floor: fast-forward recovery, conformance decision 2.
    var recovered = seen.root > 0 && state.chain.some(function (r, i) {
      if (i === 0 || r.version <= seen.root) return false;
      var after = r.roles.index.keys.map(function (k) { return k.rawHex; });
      return state.chain[i - 1].roles.index.keys.some(function (k) { return after.indexOf(k.rawHex) < 0; });
    });
    var floor = recovered ? 0 : seen.version;
    if (state.top.version < floor)
      fail("rollback", "registry.json has version " + state.top.version + ", but this browser already verified version " +
        floor + " of this registry: the server is replaying an older registry");
    if (state.top.version !== seen.version || state.root.version !== seen.root) {
      try {
        store.setItem(key, JSON.stringify({ version: state.top.version, root: state.root.version }));
      } catch (e) {
        /* storage full or refused: nothing to remember */
      }
    }
  }

  /** What checkRollback stored (an older page stored the registry version alone). */
  function readSeen(text) {
    var none = { version: 0, root: 0 };
    if (!text) return none;
    if (/^[0-9]+$/.test(text)) return { version: parseInt(text, 10), root: 0 };
    try {
      var v = JSON.parse(text);
      if (isObj(v) && isInt(v.version) && isInt(v.root)) return { version: v.version, root: v.root };
    } catch (e) {
      /* unreadable: as if nothing was seen */
    }
    return none;
  }

  function folderPicker() {
    var input = el("input", { type: "file", id: "site-folder", webkitdirectory: "", multiple: "" });
    input.addEventListener("change", function () {
      if (input.files.length) start(folderSource(input.files));
    });
    setBadge(null, "Not verified yet", "choose the site folder");
    put(main, 
      el("h1", { tabindex: "-1", text: "Open the registry folder" }),
      el("p", {
        text: "Browsers do not let a page opened from a file read the files next to it. Choose the " +
          "site folder (the one holding this index.html and registry.json) and the catalog verifies " +
          "it here, the same way as when it is served.",
      }),
      el("div", { class: "field" }, el("label", { for: "site-folder", text: "Site folder" }), input)
    );
  }

  function init() {
    main = document.getElementById("main");
    badge = document.getElementById("badge");
    window.addEventListener("hashchange", route);
    // The skip link moves focus to the content; it must not change the hash (the router's).
    var skip = document.querySelector("a.skip");
    if (skip)
      skip.addEventListener("click", function (ev) {
        ev.preventDefault();
        main.setAttribute("tabindex", "-1");
        main.focus();
      });
    document.addEventListener("keydown", function (ev) {
      var t = ev.target;
      if (ev.key === "/" && !(t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement)) {
        var q = document.getElementById("q");
        if (q) {
          ev.preventDefault();
          q.focus();
        }
      }
    });
    if (location.protocol === "file:") folderPicker();
    else start(httpSource());
  }

  // Exposed for the browser tests and for curious users (window.RegistryCatalog in the console).
  window.RegistryCatalog = {
    blake2b512: blake2b512,
    hex: hex,
    parseJson: parseJson,
    parseRange: parseRange,
    parseVersion: parseVersion,
    satisfies: satisfies,
    parseSignature: parseSignature,
    maintainersOf: maintainersOf,
    safeUrl: safeUrl,
    app: app,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
