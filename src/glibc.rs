//! The glibc floor of a binary: the highest `GLIBC_x.y` symbol version its ELF needs (its
//! `.gnu.version_r` entries), i.e. the oldest glibc it starts on. Read with goblin.
//!
//! Static binaries (musl) and non-ELF files have no floor.

use std::path::Path;

use goblin::elf::Elf;

use crate::config::GlibcVersion;
use crate::error::{Error, Result};

/// `None` when the file needs no glibc (static, musl, not ELF).
pub fn floor(path: &Path) -> Result<Option<GlibcVersion>> {
    let bytes = std::fs::read(path).map_err(Error::io("cannot read", path))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = Elf::parse(&bytes).map_err(|e| {
        Error::Build(format!(
            "{}: not a readable ELF file ({e}), so its glibc floor is unknown",
            path.display()
        ))
    })?;
    let Some(verneed) = &elf.verneed else {
        return Ok(None);
    };
    let mut highest = None;
    for need in verneed.iter() {
        for aux in need.iter() {
            let version = elf
                .dynstrtab
                .get_at(aux.vna_name)
                .and_then(|name| name.strip_prefix("GLIBC_"))
                .and_then(GlibcVersion::parse);
            highest = highest.max(version);
        }
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles `source` with the system C compiler; `None` when there is none.
    fn compile(dir: &Path, name: &str, source: &str) -> std::path::PathBuf {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, source).unwrap();
        let out = dir.join(name);
        let status = std::process::Command::new("cc")
            .arg(&c)
            .arg("-o")
            .arg(&out)
            .status()
            .expect("a C compiler (cc) links the test programs");
        assert!(status.success());
        out
    }

    #[test]
    fn a_newer_symbol_raises_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let old = compile(
            dir.path(),
            "old",
            "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
        );
        // arc4random arrived in glibc 2.36.
        let new = compile(
            dir.path(),
            "new",
            "#include <stdlib.h>\n#include <stdio.h>\nint main(void) { printf(\"%u\\n\", arc4random()); return 0; }\n",
        );
        let old_floor = floor(&old)
            .unwrap()
            .expect("a dynamic glibc binary has a floor");
        let new_floor = floor(&new).unwrap().unwrap();
        assert_eq!(new_floor.to_string(), "2.36");
        assert!(old_floor < new_floor, "{old_floor} < {new_floor}");
    }

    #[test]
    fn files_without_glibc_have_no_floor() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("script.sh");
        std::fs::write(&text, "#!/bin/sh\n").unwrap();
        assert_eq!(floor(&text).unwrap(), None);
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"\x7fELF\x02\x01").unwrap();
        assert!(floor(&bad).is_err(), "a truncated ELF fails closed");
    }
}
