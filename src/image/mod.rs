//! Container images of the release: one multi-arch FROM-scratch image per bin, made from the
//! release's own static binaries, kept as OCI image layouts under `dist/<tag>/oci/<bin>/`.
//!
//! `IMAGES` (listed in SHA256SUMS, so the release's signature covers it) says which image
//! belongs to the release: one line per bin, `<bin> <repository>:<tag>@sha256:<hex>`, sorted.

pub mod config;
pub mod layout;
pub mod referrers;
pub mod registry;

/// The signed list of the release's images.
pub const IMAGES_FILE: &str = "IMAGES";
/// The directory of the release that holds one OCI layout per image.
pub const OCI_DIR: &str = "oci";

/// One line of `IMAGES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bin: String,
    pub repository: String,
    pub tag: String,
    /// `sha256:<hex>` of the image index.
    pub digest: String,
}

impl Entry {
    /// `repository:tag@digest`, the reference `docker pull` and `cosign verify` accept.
    pub fn reference(&self) -> String {
        format!("{}:{}@{}", self.repository, self.tag, self.digest)
    }
}

pub fn format(entries: &[Entry]) -> String {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {}\n", e.bin, e.reference()))
        .collect();
    lines.sort();
    lines.concat()
}

pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    for (n, line) in text.split_terminator('\n').enumerate() {
        let bad = || {
            format!(
                "IMAGES line {}: `{line}` is not `<bin> <repository>:<tag>@sha256:<hex>`",
                n + 1
            )
        };
        let (bin, reference) = line.split_once(' ').ok_or_else(bad)?;
        let (name, digest) = reference.split_once('@').ok_or_else(bad)?;
        let (repository, tag) = name.rsplit_once(':').ok_or_else(bad)?;
        let hex_ok = digest.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if bin.is_empty()
            || bin.contains(['/', '.'])
            || repository.contains('@')
            || tag.contains('/')
            || !hex_ok
        {
            return Err(bad());
        }
        if entries.iter().any(|e| e.bin == bin) {
            return Err(format!("IMAGES lists `{bin}` twice"));
        }
        entries.push(Entry {
            bin: bin.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: digest.into(),
        });
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("IMAGES: the last line has no newline".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_lines_round_trip_and_are_strict() {
        let e = Entry {
            bin: "app".into(),
            repository: "127.0.0.1:5000/o/r".into(),
            tag: "1.0.0".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        };
        let text = format(std::slice::from_ref(&e));
        assert_eq!(
            text,
            format!("app 127.0.0.1:5000/o/r:1.0.0@sha256:{}\n", "a".repeat(64))
        );
        assert_eq!(parse(&text).unwrap(), vec![e]);
        for bad in [
            "app ghcr.io/o/r:1@sha256:abc\n",
            "app\n",
            "../x ghcr.io/o/r:1@sha256:aa\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse(&format!("{}{}", text, text))
                .unwrap_err()
                .contains("twice")
        );
    }
}
