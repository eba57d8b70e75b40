//! The import section of a core WebAssembly module: the host modules a plugin imports,
//! checked against the permissions its signed manifest declares (feature `import-check` of
//! the conformance suite). Only the section layout is read; nothing is executed.

/// Host modules gated by a permission (registry.toml's vocabulary of the registries this
/// verifier serves; conformance/README.md decision 11.7).
pub const GATED_MODULES: &[(&str, &str)] =
    &[("ferrite:keys", "keys"), ("ferrite:net", "network"), ("extism:host/user", "extism_user")];

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

    fn leb(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift < 64 {
                out |= ((b & 0x7f) as u64) << shift;
            }
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("LEB128 number is too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len()).ok_or("unexpected end of module")?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn name(&mut self) -> Result<&'a str, String> {
        let n = self.leb()? as usize;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| "an import name is not UTF-8".to_string())
    }

    fn limits(&mut self) -> Result<(), String> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 != 0 {
            self.leb()?;
        }
        Ok(())
    }

    fn ref_or_val_type(&mut self) -> Result<(), String> {
        let t = self.byte()?;
        if t == 0x63 || t == 0x64 {
            self.leb()?; // (ref null? heaptype)
        }
        Ok(())
    }
}

/// Is `module` a component, not a core module? Read from the header alone (magic, then version
/// 0x0d and layer 1), as the Python client's `is_component` reads it.
pub fn is_component(module: &[u8]) -> bool {
    module.len() >= 8 && &module[0..4] == b"\0asm" && module[4..8] == [0x0d, 0, 1, 0]
}

/// Module names of every import of a core module; `None` for a component (another layout).
pub fn import_modules(module: &[u8]) -> Result<Option<Vec<String>>, String> {
    if module.len() < 8 || &module[0..4] != b"\0asm" {
        return Err("not a WebAssembly binary".into());
    }
    if module[4..8] != [1, 0, 0, 0] {
        return Ok(None);
    }
    let mut r = Reader { data: module, pos: 8 };
    let mut out = Vec::new();
    while r.pos < module.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        let body = r.bytes(size)?;
        if id != 2 {
            continue;
        }
        let mut s = Reader { data: body, pos: 0 };
        for _ in 0..s.leb()? {
            let module_name = s.name()?.to_owned();
            s.name()?;
            match s.byte()? {
                0 => {
                    s.leb()?;
                }
                1 => {
                    s.ref_or_val_type()?;
                    s.limits()?;
                }
                2 => s.limits()?,
                3 => {
                    s.ref_or_val_type()?;
                    s.byte()?;
                }
                4 => {
                    s.byte()?;
                    s.leb()?;
                }
                k => return Err(format!("unknown import kind {}", k)),
            }
            out.push(module_name);
        }
    }
    Ok(Some(out))
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
}
