//! The download cache under `sources.cache_dir`: one folder per source,
//! named by the SHA-256 of what identifies it, so two mirrors or revisions
//! of a repo never mix and a URL never becomes a path:
//!
//! ```text
//! <cache>/url/<sha256(url)>/model.safetensors
//! <cache>/hf/<sha256(mirror \n repo \n revision)>/<file path in the repo>
//! <cache>/{url,hf}/<key>.lock          held by whoever downloads into <key>/
//! <cache>/{url,hf}/<key>/.source.json  what the folder came from (for `models list`)
//! ```
//!
//! A file is in its place only once complete and checked (it is written as
//! `<file>.part`, fsynced, renamed); a base model's folder is complete once
//! its `.complete` marker exists, written last. Downloads into one folder
//! hold an exclusive lock on its lock file (`flock`, so it works between
//! processes and between tasks of one process): a second fetch of the same
//! thing waits, then finds it done.

use super::CachedModel;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The record of what a cache folder holds.
const RECORD: &str = ".source.json";
/// Suffix of a file being downloaded (kept after a cut, to resume).
pub const PARTIAL: &str = ".part";
const KINDS: [&str; 2] = ["hf", "url"];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// What a task names: the repo id or the URL.
    source: String,
    /// Where it is fetched from: the URL, or mirror, repo and revision.
    origin: String,
}

/// One cache folder and its lock.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    lock: PathBuf,
    record: Record,
}

/// The held lock of an [`Entry`]; dropping it releases the lock.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Entry {
    fn new(root: &Path, kind: &str, key: &str, record: Record) -> Entry {
        let key = sha256_hex(key);
        Entry {
            dir: root.join(kind).join(&key),
            lock: root.join(kind).join(format!("{key}.lock")),
            record,
        }
    }

    /// The folder of a file downloaded from `url`.
    pub fn url(root: &Path, url: &Url) -> Entry {
        let record = Record {
            source: url.to_string(),
            origin: url.to_string(),
        };
        Entry::new(root, "url", url.as_str(), record)
    }

    /// The folder of repo `repo` at `revision` on `mirror`.
    pub fn hf(root: &Path, mirror: &Url, repo: &str, revision: &str) -> Entry {
        let base = mirror.as_str().trim_end_matches('/');
        let record = Record {
            source: repo.into(),
            origin: format!("{base}/{repo} @ {revision}"),
        };
        Entry::new(root, "hf", &format!("{base}\n{repo}\n{revision}"), record)
    }

    /// What a task names this source by (for messages).
    pub fn source(&self) -> &str {
        &self.record.source
    }

    /// Takes the folder's exclusive lock, waiting (off the async threads)
    /// while another task or process holds it.
    pub async fn lock(&self) -> io::Result<EntryLock> {
        if let Some(parent) = self.lock.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)?;
        match file.try_lock() {
            Ok(()) => return Ok(EntryLock { _file: file }),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) => {}
        }
        tracing::info!(source = %self.record.source, "waiting for another download of it to finish");
        tokio::task::spawn_blocking(move || file.lock().map(|()| EntryLock { _file: file }))
            .await
            .map_err(io::Error::other)?
    }

    /// Creates the folder with its record (under the lock).
    pub fn create(&self, _lock: &EntryLock) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let record = self.dir.join(RECORD);
        if !record.is_file() {
            let json = serde_json::to_vec_pretty(&self.record).map_err(io::Error::other)?;
            write_atomic(&record, &json)?;
        }
        Ok(())
    }

    /// Marks the folder as just used (its record's modification time), the
    /// order [`evict`] goes by. Best effort: a read-only cache still works.
    pub fn touch(&self) {
        let record = self.dir.join(RECORD);
        if let Ok(file) = OpenOptions::new().write(true).open(&record) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// After a failed download: removes the folder if it holds nothing worth
    /// keeping (no complete file and no partial one to resume).
    pub fn prune_if_empty(&self, _lock: &EntryLock) {
        if let Ok(false) = has_data(&self.dir) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn has_data(dir: &Path) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if has_data(&path)? {
                return Ok(true);
            }
        } else if entry.file_name() != RECORD {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes `bytes` to `path` so that `path` is either absent or complete:
/// a temporary file, fsynced, renamed over, then the folder fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = partial_path(path);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    publish(&tmp, path)
}

/// `<path>.part`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(PARTIAL);
    path.with_file_name(name)
}

/// Renames a complete, fsynced `tmp` to `path` and makes the rename durable.
pub fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Every folder of the cache under `root`.
pub fn list(root: &Path) -> io::Result<Vec<CachedModel>> {
    let mut found = Vec::new();
    for kind in KINDS {
        let dir = root.join(kind);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let record: Option<Record> = std::fs::read(path.join(RECORD))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let (source, origin) = match record {
                Some(r) => (r.source, r.origin),
                None => ("(unknown)".into(), String::new()),
            };
            let (bytes, partial) = usage(&path)?;
            found.push(CachedModel {
                source,
                origin,
                path,
                bytes,
                partial,
            });
        }
    }
    found.sort_by(|a, b| (&a.source, &a.origin).cmp(&(&b.source, &b.origin)));
    Ok(found)
}

/// Removes the least recently used folders (by [`Entry::touch`]) until the
/// cache holds at most `max_bytes`, never `keep` (what a task is about to
/// use) nor a folder being downloaded into; returns what it removed.
pub fn evict(root: &Path, max_bytes: u64, keep: &Path) -> io::Result<Vec<CachedModel>> {
    let mut models = list(root)?;
    let mut total: u64 = models.iter().map(|m| m.bytes).sum();
    let last_used = |m: &CachedModel| {
        std::fs::metadata(m.path.join(RECORD))
            .and_then(|md| md.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    };
    models.sort_by_key(|m| last_used(m));
    let mut removed = Vec::new();
    for model in models {
        if total <= max_bytes {
            break;
        }
        if model.path == keep || keep.starts_with(&model.path) {
            continue;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(model.path.with_extension("lock"))?;
        if lock.try_lock().is_err() {
            continue; // being downloaded into
        }
        std::fs::remove_dir_all(&model.path)?;
        total = total.saturating_sub(model.bytes);
        removed.push(model);
    }
    Ok(removed)
}

/// Bytes under `dir`, and whether some file there is partial.
fn usage(dir: &Path) -> io::Result<(u64, bool)> {
    let (mut bytes, mut partial) = (0, false);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let (b, p) = usage(&entry.path())?;
            bytes += b;
            partial |= p;
        } else if entry.file_name() != RECORD {
            bytes += entry.metadata()?.len();
            partial |= entry.file_name().to_string_lossy().ends_with(PARTIAL);
        }
    }
    Ok((bytes, partial))
}

/// Removes every folder whose source (repo id or URL), origin or path is
/// `source`. A folder being downloaded into is not removed: the error says so.
pub fn remove(root: &Path, source: &str) -> io::Result<bool> {
    let normalized = Url::parse(source).map(|u| u.to_string()).ok();
    let mut removed = false;
    for model in list(root)? {
        let matches = model.source == source
            || Some(&model.source) == normalized.as_ref()
            || model.origin == source
            || model.path == Path::new(source);
        if !matches {
            continue;
        }
        let lock_path = model.path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::other(format!(
                    "{} ({}) is being downloaded now; remove it once that is done",
                    model.source,
                    model.path.display()
                )))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // The lock file stays: deleting it while another process waits on it
        // would let a third lock a new file and both write at once.
        std::fs::remove_dir_all(&model.path)?;
        removed = true;
    }
    Ok(removed)
}
