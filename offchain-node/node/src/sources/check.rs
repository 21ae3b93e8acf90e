//! What a downloaded file must be before it enters the cache: weights are
//! safetensors (a JSON header, then raw tensor bytes; nothing in them runs),
//! configs are JSON. Pickles and zips of pickles (PyTorch's `.ckpt`, `.pt`,
//! `.bin`) are recognised to say so in the error, and are never opened as
//! anything but bytes.

use safetensors::tensor::Metadata;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The safetensors crate's own bound on a header (it refuses larger ones).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A pickle or a zip of pickles: named by what it looks like.
    Pickle(&'static str),
    NotSafetensors(String),
    NotJson(String),
}

/// What a file is checked as, by its name in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    Json,
    /// `merges.txt`: read by the tokenizer as text, nothing to check.
    Text,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Format::Safetensors,
            Some("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

/// What the first bytes of a non-safetensors file look like, if they look
/// like a pickle (protocol byte `0x80` then the protocol number) or a zip
/// (`PK\x03\x04`, how `torch.save` has written checkpoints since 1.6).
fn sniff(head: &[u8]) -> Option<&'static str> {
    match head {
        [0x80, 1..=5, ..] => Some("the file is a Python pickle"),
        [b'P', b'K', 3, 4, ..] => Some("the file is a zip archive (a PyTorch checkpoint)"),
        _ => None,
    }
}

/// Checks the first 8 bytes of a file meant to be safetensors, as soon as
/// they arrive, so a multi-GB pickle is refused after its first chunk: they
/// are the header's length, which must fit the file.
pub fn check_prefix(head: &[u8; 8], total: Option<u64>) -> Result<(), Refusal> {
    let n = u64::from_le_bytes(*head);
    let fits = n <= MAX_HEADER_BYTES && total.is_none_or(|t| n.saturating_add(8) <= t);
    if fits {
        return Ok(());
    }
    Err(sniff(head).map(Refusal::Pickle).unwrap_or_else(|| {
        Refusal::NotSafetensors(format!("its header length {n} does not fit the file"))
    }))
}

/// Checks a complete file as `format`.
pub fn check_file(path: &Path, format: Format) -> std::io::Result<Result<(), Refusal>> {
    match format {
        Format::Safetensors => check_safetensors(path),
        Format::Json => {
            let reader = BufReader::new(File::open(path)?);
            Ok(serde_json::from_reader::<_, serde::de::IgnoredAny>(reader)
                .map(|_| ())
                .map_err(|e| Refusal::NotJson(e.to_string())))
        }
        Format::Text => Ok(Ok(())),
    }
}

/// Parses the safetensors header (offsets, dtypes, shapes: what
/// `SafeTensors::deserialize` checks) and that the tensors fill the rest of
/// the file exactly, without reading the tensors themselves.
fn check_safetensors(path: &Path) -> std::io::Result<Result<(), Refusal>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 8];
    if len < 8 {
        let mut short = Vec::new();
        file.read_to_end(&mut short)?;
        return Ok(Err(sniff(&short).map(Refusal::Pickle).unwrap_or_else(
            || Refusal::NotSafetensors(format!("{len} bytes is too short")),
        )));
    }
    file.read_exact(&mut head)?;
    if let Err(refusal) = check_prefix(&head, Some(len)) {
        return Ok(Err(refusal));
    }
    let n = u64::from_le_bytes(head);
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)?;
    let metadata: Metadata = match serde_json::from_slice(&header) {
        Ok(m) => m,
        Err(e) => {
            let refusal = sniff(&head).map(Refusal::Pickle).unwrap_or_else(|| {
                Refusal::NotSafetensors(format!("its header does not parse: {e}"))
            });
            return Ok(Err(refusal));
        }
    };
    let data = len - 8 - n;
    if metadata.data_len() as u64 != data {
        return Ok(Err(Refusal::NotSafetensors(format!(
            "its header describes {} bytes of tensors, the file holds {data}",
            metadata.data_len()
        ))));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn safetensors_pass_pickles_and_zips_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let data = [0u8; 16];
        let view = TensorView::new(Dtype::F32, vec![2, 2], &data).unwrap();
        let good = safetensors::serialize([("w", view)], None).unwrap();
        let path = write(dir.path(), "a.safetensors", &good);
        assert_eq!(check_file(&path, Format::Safetensors).unwrap(), Ok(()));

        let cut = write(dir.path(), "b.safetensors", &good[..good.len() - 1]);
        assert!(matches!(
            check_file(&cut, Format::Safetensors).unwrap(),
            Err(Refusal::NotSafetensors(_))
        ));

        let mut pickle = vec![0x80, 0x04, 0x95];
        pickle.extend_from_slice(&[0x11; 64]);
        let path = write(dir.path(), "c.safetensors", &pickle);
        assert!(matches!(
            check_file(&path, Format::Safetensors).unwrap(),
            Err(Refusal::Pickle(_))
        ));
        let head: [u8; 8] = pickle[..8].try_into().unwrap();
        assert!(matches!(check_prefix(&head, None), Err(Refusal::Pickle(_))));

        let path = write(
            dir.path(),
            "d.safetensors",
            b"PK\x03\x04archive/data.pkl....",
        );
        assert!(matches!(
            check_file(&path, Format::Safetensors).unwrap(),
            Err(Refusal::Pickle(_))
        ));

        let path = write(dir.path(), "e.json", b"<html>rate limited</html>");
        assert!(matches!(
            check_file(&path, Format::Json).unwrap(),
            Err(Refusal::NotJson(_))
        ));
    }
}
