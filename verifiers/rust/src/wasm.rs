//! The import section of a core WebAssembly module: the host modules a plugin imports,
//! checked against the permissions its signed manifest declares (feature `import-check` of
//! the conformance suite). Only the section layout is read; nothing is executed.

/// Host modules gated by a permission, every import of them (registry.toml's vocabulary of the
/// registries this verifier serves; conformance/README.md decision 11.7).
pub const GATED_MODULES: &[(&str, &str)] =
    &[("ferrite:keys", "keys"), ("ferrite:net", "network"), ("extism:host/user", "extism_user")];

/// The Extism host's own HTTP functions (`http_request`, `http_status_code`, `http_headers`: every
/// name starting `http_` of module `extism:host/env`) reach the network as `ferrite:net` does:
/// they need `network`. Every other `extism:host/env` import is ungated.
pub const EXTISM_HTTP: (&str, &str, &str) = ("extism:host/env", "http_", "network");

/// The permission an import of `module`.`name` needs, if any (decision 11.7).
pub fn gated_permission(module: &str, name: &str) -> Option<&'static str> {
    if let Some((_, perm)) = GATED_MODULES.iter().find(|(m, _)| *m == module) {
        return Some(perm);
    }
    let (env, prefix, perm) = EXTISM_HTTP;
    if module == env && name.starts_with(prefix) {
        return Some(perm);
    }
    None
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("unexpected end of module")?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// An unsigned LEB128 integer of at most `bits` bits (32 or 64), bounded as the wasm spec
    /// bounds it: at most ceil(bits / 7) bytes, the unused high bits of the last byte zero.
    fn leb(&mut self, bits: u32) -> Result<u64, String> {
        let mut out = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift + 7 > bits && (b & 0x80 != 0 || (b as u32) >> (bits - shift) != 0) {
                return Err(format!("LEB128 number is too long for u{}", bits));
            }
            out |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
            shift += 7;
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(self.leb(32)? as u32)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len()).ok_or("unexpected end of module")?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn name(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| "an import name is not UTF-8".to_string())
    }

    /// A limits record as the Python client reads it (registry_tool/manifest/binary.py, `_limits`):
    /// flags 0x00-0x0f (0x01 a maximum follows, 0x02 shared, 0x04 64-bit: minimum and maximum are
    /// u64, 0x08 custom-page-sizes: a page size's log2 follows, at most 16, for a memory only: a
    /// table has no pages).
    fn limits(&mut self, memory: bool) -> Result<(), String> {
        let flags = self.byte()?;
        if flags & !0x0f != 0 {
            return Err(format!("unknown limits flags 0x{:02x}", flags));
        }
        let bits = if flags & 0x04 != 0 { 64 } else { 32 };
        self.leb(bits)?;
        if flags & 0x01 != 0 {
            self.leb(bits)?;
        }
        if flags & 0x08 != 0 {
            if !memory {
                return Err("a table's limits have no page size".into());
            }
            if self.u32()? > 16 {
                return Err("unknown page size".into());
            }
        }
        Ok(())
    }

    /// A heap type: an abstract heap type (one byte, 0x69-0x74: exn, array, struct, i31, eq, any,
    /// extern, func, none, noextern, nofunc, noexn) or a type index (a non-negative s33).
    fn heap_type(&mut self) -> Result<(), String> {
        if let Some(0x69..=0x74) = self.peek() {
            self.pos += 1;
            return Ok(());
        }
        for i in 0..5 {
            let b = self.byte()?;
            if b & 0x80 == 0 {
                // non-negative: the sign bit (0x40 below the 5th byte, bit 32 in it) and the
                // 5th byte's sign extension are clear
                if (i < 4 && b & 0x40 != 0) || (i == 4 && b & 0x70 != 0) {
                    return Err("a heap type is neither abstract nor a type index".into());
                }
                return Ok(());
            }
        }
        Err("a heap type's LEB128 is too long".into())
    }

    /// A reference type: an abstract heap type's shorthand, or 0x63/0x64 (ref null?) and a heap type.
    fn ref_type(&mut self) -> Result<(), String> {
        match self.byte()? {
            0x63 | 0x64 => self.heap_type(),
            0x69..=0x74 => Ok(()),
            t => Err(format!("unknown reference type 0x{:02x}", t)),
        }
    }

    /// A value type: i32, i64, f32, f64, v128 or a reference type.
    fn val_type(&mut self) -> Result<(), String> {
        if let Some(0x7b..=0x7f) = self.peek() {
            self.pos += 1;
            return Ok(());
        }
        self.ref_type()
    }
}

/// The position of each known section id in a module (the wasm spec's order: tag (13) between
/// memory and global, data count (12) between element and code); custom sections (0) go anywhere.
fn section_order(id: u8) -> Option<u8> {
    const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
    ORDER.iter().position(|x| *x == id).map(|p| p as u8 + 1)
}

/// Is `module` a component, not a core module? Read from the header alone (magic, then version
/// 0x0d and layer 1), as the Python client's `is_component` reads it.
pub fn is_component(module: &[u8]) -> bool {
    module.len() >= 8 && &module[0..4] == b"\0asm" && module[4..8] == [0x0d, 0, 1, 0]
}

/// Module names of every import of a core module; `None` for a component (another layout).
/// Bytes that are neither (another version or layer) are an error, as is a module whose sections
/// overrun its end, repeat or come out of order, or whose import section has bytes after its
/// imports.
pub fn import_modules(module: &[u8]) -> Result<Option<Vec<String>>, String> {
    Ok(imports(module)?.map(|all| all.into_iter().map(|(m, _)| m).collect()))
}

/// `(module, name)` of every import of a core module; `None` for a component. Errors as
/// [`import_modules`].
pub fn imports(module: &[u8]) -> Result<Option<Vec<(String, String)>>, String> {
    if module.len() < 8 || &module[0..4] != b"\0asm" {
        return Err("not a WebAssembly binary".into());
    }
    if is_component(module) {
        return Ok(None);
    }
    if module[4..8] != [1, 0, 0, 0] {
        return Err(format!("unknown WebAssembly version/layer {:02x?}", &module[4..8]));
    }
    let mut r = Reader { data: module, pos: 8 };
    let mut out = Vec::new();
    let mut last = 0;
    while r.pos < module.len() {
        let id = r.byte()?;
        let size = r.u32()? as usize;
        let body = r.bytes(size).map_err(|_| format!("section {} runs past the end of the module", id))?;
        if id == 0 {
            continue;
        }
        let order = section_order(id).ok_or_else(|| format!("unknown section id {}", id))?;
        if order <= last {
            return Err(format!("section {} is repeated or out of order", id));
        }
        last = order;
        if id == 2 {
            out = read_imports(body)?;
        }
    }
    Ok(Some(out))
}

/// An import section's contents, which must end exactly with its last import.
fn read_imports(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut s = Reader { data: body, pos: 0 };
    let mut out = Vec::new();
    for _ in 0..s.u32()? {
        let module_name = s.name()?.to_owned();
        let field = s.name()?.to_owned();
        match s.byte()? {
            0 => {
                s.u32()?;
            }
            1 => {
                s.ref_type()?;
                s.limits(false)?;
            }
            2 => s.limits(true)?,
            3 => {
                s.val_type()?;
                let mutability = s.byte()?;
                if mutability & !0x03 != 0 {
                    return Err(format!("unknown global mutability 0x{:02x}", mutability));
                }
            }
            4 => {
                let attribute = s.byte()?;
                if attribute != 0 {
                    return Err(format!("unknown tag attribute 0x{:02x}", attribute));
                }
                s.u32()?;
            }
            k => return Err(format!("unknown import kind {}", k)),
        }
        out.push((module_name, field));
    }
    if s.pos != body.len() {
        return Err("the import section has bytes after its imports".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_module_names_are_read_from_the_import_section() {
        // (module (import "ferrite:keys" "get" (func)) (import "env" "mem" (memory 1 2)))
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section: one func type [] -> []
        let mut imports = vec![2u8];
        imports.extend_from_slice(&[12]);
        imports.extend_from_slice(b"ferrite:keys");
        imports.extend_from_slice(&[3]);
        imports.extend_from_slice(b"get");
        imports.extend_from_slice(&[0, 0]);
        imports.extend_from_slice(&[3]);
        imports.extend_from_slice(b"env");
        imports.extend_from_slice(&[3]);
        imports.extend_from_slice(b"mem");
        imports.extend_from_slice(&[2, 1, 1, 2]);
        m.push(2);
        m.push(imports.len() as u8);
        m.extend_from_slice(&imports);
        assert_eq!(import_modules(&m).unwrap().unwrap(), vec!["ferrite:keys".to_string(), "env".to_string()]);
        assert!(import_modules(&m[..m.len() - 1]).is_err());
        assert!(import_modules(b"\0asm\x0d\0\x01\0").unwrap().is_none());
        assert!(import_modules(b"not wasm").is_err());
    }

    fn name(s: &str) -> Vec<u8> {
        let mut out = vec![s.len() as u8];
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id, body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    fn import(module: &str, field: &str, desc: &[u8]) -> Vec<u8> {
        let mut out = name(module);
        out.extend(name(field));
        out.extend_from_slice(desc);
        out
    }

    fn imports(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![entries.len() as u8];
        entries.iter().for_each(|e| body.extend_from_slice(e));
        section(2, &body)
    }

    fn module(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        sections.iter().for_each(|s| out.extend_from_slice(s));
        out
    }

    /// Decision 11.7: extism:host/env http_* needs network, the rest of extism:host/env nothing.
    #[test]
    fn extism_http_imports_need_network() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("extism:host/env", "http_request", Some("network")),
            ("extism:host/env", "http_status_code", Some("network")),
            ("extism:host/env", "http_headers", Some("network")),
            ("extism:host/env", "http_", Some("network")),
            ("extism:host/env", "config_get", None),
            ("extism:host/env", "HTTP_request", None),
            ("extism:host/env", "xhttp_request", None),
            ("extism:host/user", "anything", Some("extism_user")),
            ("ferrite:keys", "get", Some("keys")),
            ("env", "http_request", None),
        ];
        for (module, name, want) in cases {
            assert_eq!(gated_permission(module, name), *want, "{}.{}", module, name);
        }
        let m = module(&[section(1, &[1, 0x60, 0, 0]), imports(&[import("extism:host/env", "http_request", &[0, 0])])]);
        assert_eq!(imports_of(&m), vec![("extism:host/env".to_string(), "http_request".to_string())]);
    }

    fn imports_of(m: &[u8]) -> Vec<(String, String)> {
        super::imports(m).unwrap().unwrap()
    }

    /// What a module is called, its bytes, and the import modules read (`None`: an error).
    type Case = (&'static str, Vec<u8>, Option<Vec<String>>);

    /// The reader against the wasm spec's encoding: typed references, every limits flag the Python
    /// client reads, LEB128 bounds, the header, and the section layout.
    #[test]
    fn import_reader_follows_the_spec_encoding() {
        let types = section(1, &[1, 0x60, 0, 0]);
        let keys = import("ferrite:keys", "get", &[0, 0]);
        let keys_only = imports(std::slice::from_ref(&keys));
        let then_keys = |desc: &[u8]| module(&[types.clone(), imports(&[import("env", "x", desc), keys.clone()])]);
        let raw_imports = |body: &[u8]| {
            let mut b = body.to_vec();
            b.extend_from_slice(&keys);
            module(&[types.clone(), section(2, &b)])
        };
        let with_keys = Some(vec!["env".to_string(), "ferrite:keys".to_string()]);
        let only_keys = Some(vec!["ferrite:keys".to_string()]);
        let cases: Vec<Case> = vec![
            ("global (ref null func)", then_keys(&[3, 0x63, 0x70, 0]), with_keys.clone()),
            ("global (ref 0)", then_keys(&[3, 0x64, 0x00, 1]), with_keys.clone()),
            ("global (ref 200)", then_keys(&[3, 0x63, 0xc8, 0x01, 0]), with_keys.clone()),
            ("global v128", then_keys(&[3, 0x7b, 0]), with_keys.clone()),
            ("global anyref", then_keys(&[3, 0x6e, 0]), with_keys.clone()),
            ("global negative heap type", then_keys(&[3, 0x63, 0x40, 0]), None),
            ("global unknown type", then_keys(&[3, 0x00, 0]), None),
            ("global mutability 4", then_keys(&[3, 0x7f, 4]), None),
            ("table (ref func)", then_keys(&[1, 0x64, 0x70, 0, 1]), with_keys.clone()),
            ("table i32", then_keys(&[1, 0x7f, 0, 1]), None),
            ("memory page size 1", then_keys(&[2, 0x08, 1, 0]), with_keys.clone()),
            ("memory page size 64 KiB with max", then_keys(&[2, 0x09, 1, 2, 16]), with_keys.clone()),
            ("memory page size 2^17", then_keys(&[2, 0x08, 1, 17]), None),
            ("table with a page size", then_keys(&[1, 0x70, 0x08, 1, 0]), None),
            ("memory limits flags 0x10", then_keys(&[2, 0x10, 1]), None),
            (
                "memory64 minimum 2^42",
                then_keys(&[2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
                with_keys.clone(),
            ),
            ("memory32 minimum 2^35", then_keys(&[2, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None),
            (
                "memory64 11-byte minimum",
                then_keys(&[2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0]),
                None,
            ),
            (
                "memory64 minimum 2^64",
                then_keys(&[2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]),
                None,
            ),
            ("tag", then_keys(&[4, 0, 0]), with_keys.clone()),
            ("tag attribute 1", then_keys(&[4, 1, 0]), None),
            ("count 1 in 5 bytes", raw_imports(&[0x81, 0x80, 0x80, 0x80, 0x00]), only_keys.clone()),
            ("count 2^32+1", raw_imports(&[0x81, 0x80, 0x80, 0x80, 0x10]), None),
            ("count 1 in 6 bytes", raw_imports(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x00]), None),
            ("bytes after the imports", raw_imports(&[1, 3, b'e', b'n', b'v', 1, b'x', 0, 0]), None),
            (
                "two import sections",
                module(&[types.clone(), imports(&[import("env", "x", &[0, 0])]), keys_only.clone()]),
                None,
            ),
            ("import after function", module(&[types.clone(), section(3, &[0]), keys_only.clone()]), None),
            (
                "custom sections anywhere",
                module(&[
                    section(0, &name("a")),
                    types.clone(),
                    section(0, &name("b")),
                    keys_only.clone(),
                    section(13, &[0]),
                    section(6, &[0]),
                ]),
                only_keys.clone(),
            ),
            ("unknown section", module(&[types.clone(), keys_only.clone(), section(14, &[])]), None),
            ("section past the end", module(&[types.clone(), keys_only.clone(), vec![0, 5, 1, b'a']]), None),
            ("version 2", b"\0asm\x02\0\0\0\x01\x04\x01\x60\0\0".to_vec(), None),
            ("version 0x0d layer 0", b"\0asm\x0d\0\0\0".to_vec(), None),
            ("header only", module(&[]), Some(vec![])),
            ("name not UTF-8", then_keys(&[0, 0]).iter().map(|b| if *b == b'v' { 0xff } else { *b }).collect(), None),
        ];
        for (what, wasm, want) in cases {
            match (import_modules(&wasm), want) {
                (Ok(got), Some(want)) => assert_eq!(got, Some(want), "{}", what),
                (Err(_), None) => {}
                (got, want) => panic!("{}: read {:?}, want {:?}", what, got, want),
            }
        }
    }
}
