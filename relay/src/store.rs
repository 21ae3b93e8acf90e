//! Blobs in an object store, and an in-memory index of what each task has.
//!
//! Layout under the store's root:
//!
//! ```text
//! tasks/<id>/args.json                 the task arguments, as uploaded
//! tasks/<id>/images/<upload>/<n>.png   image n (0-based) of one upload
//! tasks/<id>/images.json               {"sizes": [...], "upload": "<upload>"}:
//!                                      written after every image, so the set
//!                                      exists only once it is complete
//! tasks/<id>/finished.json             {"finished_at_ms": ...}: when a relay
//!                                      first saw the task finished
//! replay/<minute>/<signature>          an accepted request signature, until
//!                                      the minute its timestamp goes stale
//! ```
//!
//! Each `put` is atomic in `object_store` (a temporary file renamed into
//! place on local disk; one `PutObject` on S3), so no blob is ever seen
//! half-written. The first writes that several replicas may race on —
//! `args.json`, `images.json`, `finished.json`, a replay entry — are
//! conditional (`PutMode::Create`: a hard link on disk, `If-None-Match: *`
//! on S3): exactly one wins, the others learn what it wrote. Each image
//! upload writes into a folder of its own, so a losing or cut upload never
//! overwrites or exposes an image of the set that `images.json` names; what
//! it leaves behind is invisible and goes with its task. The index is
//! rebuilt from a listing at start.

use crate::config::StorageConfig;
use anyhow::Context;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use hydrogen_sdk::types::TaskId;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Chunk size of a streamed local file: large enough that a 1 MiB image
/// takes four reads (`object_store`'s own 8 KiB chunks cost a blocking-pool
/// round trip each, 40 ms per MiB), small enough to bound memory per download.
const FILE_CHUNK: usize = 256 << 10;

/// `range` of a local file in [`FILE_CHUNK`] reads, each straight into the
/// chunk it yields (`pread` on the blocking pool: one copy, where
/// `tokio::fs::File` copies through a buffer of its own).
fn file_chunks(
    file: Arc<std::fs::File>,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures::stream::try_unfold(range, move |range| {
        let file = file.clone();
        async move {
            if range.start >= range.end {
                return Ok(None);
            }
            let n = (range.end - range.start).min(FILE_CHUNK as u64) as usize;
            let at = range.start;
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut chunk = vec![0; n];
                file.read_exact_at(&mut chunk, at)
                    .map(|()| Bytes::from(chunk))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|read| read)
            .map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?;
            Ok(Some((chunk, at + n as u64..range.end)))
        }
    })
    .boxed()
}

/// A stored blob, or the asked part of it, as a stream of chunks: a local
/// file in [`FILE_CHUNK`] reads, S3's response body as it arrives, so
/// serving it never holds the blob whole in memory.
pub struct BlobStream {
    /// The whole blob's size.
    pub size: u64,
    /// The bytes of the blob this stream carries.
    pub range: std::ops::Range<u64>,
    /// The store's entity tag, where it has one.
    pub e_tag: Option<String>,
    pub chunks: BoxStream<'static, object_store::Result<Bytes>>,
}

/// Whether one of a task's blobs exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    #[default]
    Absent,
    /// An upload holds the slot; a second one is refused until it ends.
    Uploading,
    Stored,
}

/// What the relay holds for one task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskBlobs {
    pub args: Slot,
    pub images: Slot,
    /// Sizes of the stored images, in order.
    pub image_sizes: Vec<u64>,
    /// The folder of the stored image set (`None`: the images lie directly
    /// in `images/`, as relays before replicas wrote them).
    pub image_upload: Option<String>,
    pub finished_at_ms: Option<u64>,
}

impl TaskBlobs {
    fn is_empty(&self) -> bool {
        self.args == Slot::Absent && self.images == Slot::Absent
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    sizes: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<String>,
}

/// Another upload — through another replica — stored this blob first.
#[derive(Debug, thiserror::Error)]
#[error("another upload stored it first")]
pub struct AlreadyStored;

/// The index knew the blob but the store no longer has it: another replica's
/// retention sweep deleted its task.
#[derive(Debug, thiserror::Error)]
#[error("deleted from the store")]
pub struct Deleted;

/// How long one replay-guard folder spans: a sweep deletes whole folders.
const REPLAY_BUCKET_MS: u64 = 60_000;

#[derive(Serialize, Deserialize)]
struct Finished {
    finished_at_ms: u64,
}

/// Which blob of a task an upload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Args,
    Images,
}

/// The blob store and its index. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    index: Arc<Mutex<BTreeMap<TaskId, TaskBlobs>>>,
}

fn task_prefix(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}"))
}
fn args_path(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}/args.json"))
}
fn image_path(id: TaskId, upload: Option<&str>, n: usize) -> Path {
    match upload {
        Some(upload) => Path::from(format!("tasks/{id}/images/{upload}/{n}.png")),
        None => Path::from(format!("tasks/{id}/images/{n}.png")),
    }
}
fn manifest_path(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}/images.json"))
}
fn finished_path(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}/finished.json"))
}
fn replay_path(signature: &[u8; 64], expires_ms: u64) -> Path {
    Path::from(format!(
        "replay/{}/{}",
        expires_ms / REPLAY_BUCKET_MS,
        hex::encode(signature)
    ))
}

/// A name for one upload's folder, unique across replicas and restarts.
fn upload_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{nanos}/{}/{}/{:?}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::thread::current().id()
    );
    hex::encode(&hydrogen_sdk::types::blake2_256(seed.as_bytes())[..8])
}

fn is_already_exists(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::AlreadyExists { .. })
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<object_store::Error>()
        .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }))
}

/// Writes `path` unless it exists; false if it did.
async fn create(
    objects: &dyn ObjectStore,
    path: &Path,
    body: PutPayload,
) -> object_store::Result<bool> {
    match objects.put_opts(path, body, PutMode::Create.into()).await {
        Ok(_) => Ok(true),
        Err(e) if is_already_exists(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens the configured store and indexes what it holds.
    pub async fn open(config: &StorageConfig) -> anyhow::Result<Store> {
        let objects: Arc<dyn ObjectStore> = match config {
            StorageConfig::Local { path } => {
                std::fs::create_dir_all(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                // Automatic cleanup removes the folders deletes empty (one
                // per task, one per minute of replay guard).
                Arc::new(
                    LocalFileSystem::new_with_prefix(path)
                        .with_context(|| format!("cannot use {}", path.display()))?
                        .with_automatic_cleanup(true),
                )
            }
            StorageConfig::S3 {
                url,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_allow_http(*allow_http);
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(key) = access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                Arc::new(builder.build().with_context(|| format!("S3 store {url}"))?)
            }
        };
        Store::with_objects(objects).await
    }

    /// A store on any `ObjectStore`; indexes what it holds.
    pub async fn with_objects(objects: Arc<dyn ObjectStore>) -> anyhow::Result<Store> {
        let store = Store {
            objects,
            index: Arc::default(),
        };
        store.rebuild_index().await?;
        Ok(store)
    }

    async fn rebuild_index(&self) -> anyhow::Result<()> {
        let listed: Vec<_> = self
            .objects
            .list(Some(&Path::from("tasks")))
            .try_collect()
            .await
            .context("cannot list the store")?;
        let mut paths: HashMap<TaskId, Vec<Path>> = HashMap::new();
        for meta in listed {
            let id = meta
                .location
                .parts()
                .nth(1)
                .and_then(|p| p.as_ref().parse().ok());
            match id {
                Some(id) => paths.entry(id).or_default().push(meta.location),
                None => {
                    tracing::warn!(path = %meta.location, "ignoring an object outside the layout")
                }
            }
        }
        let mut index = BTreeMap::new();
        for (id, paths) in paths {
            let mut blobs = TaskBlobs::default();
            if paths.contains(&args_path(id)) {
                blobs.args = Slot::Stored;
            }
            // Images without an `images.json` (an upload in progress through
            // another replica, or cut by a crash) stay invisible; retention
            // deletes them with their task.
            if paths.contains(&manifest_path(id)) {
                let manifest: Manifest = self.read_json(&manifest_path(id)).await?;
                blobs.images = Slot::Stored;
                blobs.image_sizes = manifest.sizes;
                blobs.image_upload = manifest.upload;
            }
            if paths.contains(&finished_path(id)) {
                let finished: Finished = self.read_json(&finished_path(id)).await?;
                blobs.finished_at_ms = Some(finished.finished_at_ms);
            }
            if !blobs.is_empty() {
                index.insert(id, blobs);
            }
        }
        tracing::info!(tasks = index.len(), "indexed the store");
        *self.index.lock().unwrap() = index;
        Ok(())
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> anyhow::Result<T> {
        let bytes = self.objects.get(path).await?.bytes().await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{path} is not what the relay wrote"))
    }

    async fn delete(&self, path: &Path) -> anyhow::Result<()> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete {path}")),
        }
    }

    /// What the store holds for `id`, looking in the store itself for what
    /// the index does not have yet: another relay on the same store may
    /// have stored it (replicas), and this one learns it here. A slot being
    /// uploaded through this relay is left as it is.
    pub async fn seen(&self, id: TaskId) -> anyhow::Result<TaskBlobs> {
        let known = self.blobs(id);
        if known.args == Slot::Absent {
            match self.objects.head(&args_path(id)).await {
                Ok(_) => self.learn(id, |b| {
                    if b.args == Slot::Absent {
                        b.args = Slot::Stored;
                    }
                }),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if known.images == Slot::Absent {
            match self.read_json::<Manifest>(&manifest_path(id)).await {
                Ok(manifest) => self.learn(id, |b| {
                    if b.images == Slot::Absent {
                        b.images = Slot::Stored;
                        b.image_sizes = manifest.sizes;
                        b.image_upload = manifest.upload;
                    }
                }),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.blobs(id))
    }

    fn learn(&self, id: TaskId, f: impl FnOnce(&mut TaskBlobs)) {
        f(self.index.lock().unwrap().entry(id).or_default());
    }

    /// What the relay holds for `id`.
    pub fn blobs(&self, id: TaskId) -> TaskBlobs {
        self.index
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every task with blobs, in id order.
    pub fn tasks(&self) -> Vec<(TaskId, TaskBlobs)> {
        let index = self.index.lock().unwrap();
        index.iter().map(|(id, b)| (*id, b.clone())).collect()
    }

    /// Takes the `kind` slot of task `id` for an upload, or says what holds it.
    pub fn reserve(&self, id: TaskId, kind: Kind) -> Result<Upload, Slot> {
        let mut index = self.index.lock().unwrap();
        let blobs = index.entry(id).or_default();
        let slot = match kind {
            Kind::Args => &mut blobs.args,
            Kind::Images => &mut blobs.images,
        };
        if *slot != Slot::Absent {
            return Err(*slot);
        }
        *slot = Slot::Uploading;
        Ok(Upload {
            store: self.clone(),
            id,
            kind,
            name: upload_name(),
            written: Vec::new(),
            done: false,
        })
    }

    /// The index said `id` had a blob the store no longer has: another
    /// replica deleted the task. Forgets it, and says so as [`Deleted`].
    fn vanished(&self, id: TaskId, e: object_store::Error) -> anyhow::Error {
        if matches!(e, object_store::Error::NotFound { .. }) {
            self.index.lock().unwrap().remove(&id);
            anyhow::Error::new(Deleted)
        } else {
            e.into()
        }
    }

    /// The stored arguments of `id`.
    pub async fn args(&self, id: TaskId) -> anyhow::Result<Bytes> {
        let got = self
            .objects
            .get(&args_path(id))
            .await
            .map_err(|e| self.vanished(id, e))?;
        Ok(got.bytes().await?)
    }

    /// Stored image `n` of `id` as a stream: all of it, or the bytes in
    /// `range` (within the image).
    pub async fn image_stream(
        &self,
        id: TaskId,
        n: usize,
        range: Option<std::ops::Range<u64>>,
    ) -> anyhow::Result<BlobStream> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let upload = self.blobs(id).image_upload;
        let got = self
            .objects
            .get_opts(&image_path(id, upload.as_deref(), n), options)
            .await
            .map_err(|e| self.vanished(id, e))?;
        let (size, range, e_tag) = (got.meta.size, got.range.clone(), got.meta.e_tag.clone());
        let chunks = match got.payload {
            GetResultPayload::File(file, _) => file_chunks(Arc::new(file), range.clone()),
            GetResultPayload::Stream(stream) => stream,
        };
        Ok(BlobStream {
            size,
            range,
            e_tag,
            chunks,
        })
    }

    /// Records when `id` was first seen finished, by this relay or another
    /// on the same store; returns the recorded time, or `None` when another
    /// replica's sweep deleted the task meanwhile (nothing left to keep).
    pub async fn mark_finished(&self, id: TaskId, now_ms: u64) -> anyhow::Result<Option<u64>> {
        if let Some(at) = self.blobs(id).finished_at_ms {
            return Ok(Some(at));
        }
        let body = serde_json::to_vec(&Finished {
            finished_at_ms: now_ms,
        })?;
        let path = finished_path(id);
        let at = if create(self.objects.as_ref(), &path, body.into()).await? {
            now_ms
        } else {
            match self.read_json::<Finished>(&path).await {
                Ok(finished) => finished.finished_at_ms,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        if let Some(blobs) = self.index.lock().unwrap().get_mut(&id) {
            blobs.finished_at_ms = Some(at);
        }
        Ok(Some(at))
    }

    /// Every task the store holds blobs of, this relay's or another's, in
    /// id order: what a retention sweep walks.
    pub async fn stored_tasks(&self) -> anyhow::Result<Vec<TaskId>> {
        let listed = self
            .objects
            .list_with_delimiter(Some(&Path::from("tasks")))
            .await
            .context("cannot list the store")?;
        let mut ids: Vec<TaskId> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|name| name.parse().ok()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Remembers an accepted request signature in the store until
    /// `expires_ms`; false if it was already there (a replay, through any
    /// replica sharing the store).
    pub async fn claim_signature(
        &self,
        signature: &[u8; 64],
        expires_ms: u64,
    ) -> anyhow::Result<bool> {
        let path = replay_path(signature, expires_ms);
        Ok(create(self.objects.as_ref(), &path, PutPayload::new()).await?)
    }

    /// Deletes the remembered signatures whose timestamps are stale at
    /// `now_ms`; returns how many.
    pub async fn forget_signatures(&self, now_ms: u64) -> anyhow::Result<usize> {
        let listed = self
            .objects
            .list_with_delimiter(Some(&Path::from("replay")))
            .await
            .context("cannot list the replay guard")?;
        let mut forgotten = 0;
        for folder in listed.common_prefixes {
            let minute: u64 = match folder.filename().and_then(|m| m.parse().ok()) {
                Some(minute) => minute,
                None => continue,
            };
            // Every signature in the folder expires before its end.
            if (minute + 1) * REPLAY_BUCKET_MS > now_ms {
                continue;
            }
            let stale: Vec<_> = self.objects.list(Some(&folder)).try_collect().await?;
            for meta in stale {
                self.delete(&meta.location).await?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Deletes every blob of `id`, unless an upload holds one of its slots;
    /// returns whether it did.
    pub async fn delete_task(&self, id: TaskId) -> anyhow::Result<bool> {
        {
            let index = self.index.lock().unwrap();
            match index.get(&id) {
                Some(b) if b.args == Slot::Uploading || b.images == Slot::Uploading => {
                    return Ok(false)
                }
                _ => {}
            }
        }
        // Out of the index first: a download that races the deletion gets
        // "not uploaded" rather than a half-deleted set.
        self.index.lock().unwrap().remove(&id);
        let listed: Vec<_> = self
            .objects
            .list(Some(&task_prefix(id)))
            .try_collect()
            .await
            .with_context(|| format!("cannot list task {id}"))?;
        for meta in listed {
            self.delete(&meta.location).await?;
        }
        Ok(true)
    }

    /// Whether the store answers.
    pub async fn check(&self) -> anyhow::Result<()> {
        match self.objects.head(&Path::from("readiness-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// An upload in progress: holds its slot, and deletes what it wrote and
/// frees the slot unless [`commit`](Upload::commit)ted — also when the
/// request is dropped half-way (the client went away).
pub struct Upload {
    store: Store,
    id: TaskId,
    kind: Kind,
    /// The folder this upload's images go to.
    name: String,
    written: Vec<Path>,
    done: bool,
}

impl Upload {
    /// Stores the arguments; they are visible at once. [`AlreadyStored`]
    /// if another replica stored them first (then nothing was written).
    pub async fn put_args(mut self, body: Bytes) -> anyhow::Result<()> {
        debug_assert_eq!(self.kind, Kind::Args);
        let path = args_path(self.id);
        let objects = self.store.objects.clone();
        let created = create(objects.as_ref(), &path, PutPayload::from_bytes(body)).await?;
        // Stored either way: by this upload, or by another replica's.
        self.finish(|blobs| blobs.args = Slot::Stored);
        if created {
            Ok(())
        } else {
            Err(AlreadyStored.into())
        }
    }

    /// Stores image `n` in this upload's folder, not yet visible.
    pub async fn put_image(&mut self, n: usize, png: Bytes) -> anyhow::Result<()> {
        let path = image_path(self.id, Some(&self.name), n);
        self.written.push(path.clone());
        self.store
            .objects
            .put(&path, PutPayload::from_bytes(png))
            .await?;
        Ok(())
    }

    /// Makes the stored images visible, as one set. [`AlreadyStored`] if
    /// another replica's upload made its set visible first; this upload's
    /// images are then deleted and the other set stays as it was.
    pub async fn commit_images(mut self, sizes: Vec<u64>) -> anyhow::Result<()> {
        let path = manifest_path(self.id);
        let body = serde_json::to_vec(&Manifest {
            sizes: sizes.clone(),
            upload: Some(self.name.clone()),
        })?;
        let objects = self.store.objects.clone();
        if !create(objects.as_ref(), &path, body.into()).await? {
            let (store, id) = (self.store.clone(), self.id);
            self.abandon().await;
            // Learn the winner's set, so this relay serves it.
            store.seen(id).await?;
            return Err(AlreadyStored.into());
        }
        let name = self.name.clone();
        self.finish(|blobs| {
            blobs.images = Slot::Stored;
            blobs.image_sizes = sizes;
            blobs.image_upload = Some(name);
        });
        Ok(())
    }

    fn finish(&mut self, update: impl FnOnce(&mut TaskBlobs)) {
        self.done = true;
        let mut index = self.store.index.lock().unwrap();
        update(index.entry(self.id).or_default());
    }

    /// Deletes what this upload wrote and frees its slot.
    pub async fn abandon(mut self) {
        self.done = true;
        let written = std::mem::take(&mut self.written);
        self.store.release(self.id, self.kind);
        for path in written {
            if let Err(e) = self.store.delete(&path).await {
                tracing::error!(task = self.id, error = %e, "cannot delete a refused upload's blob");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped without commit or abandon: the request was cancelled.
        let written = std::mem::take(&mut self.written);
        let (store, id, kind) = (self.store.clone(), self.id, self.kind);
        let cleanup = async move {
            for path in written {
                if let Err(e) = store.delete(&path).await {
                    tracing::error!(task = id, error = %e, "cannot delete a cancelled upload's blob");
                }
            }
            store.release(id, kind);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(cleanup)),
            Err(_) => tracing::error!(task = id, "no runtime to clean up a cancelled upload"),
        }
    }
}

impl Store {
    fn release(&self, id: TaskId, kind: Kind) {
        let mut index = self.index.lock().unwrap();
        if let Some(blobs) = index.get_mut(&id) {
            match kind {
                Kind::Args => blobs.args = Slot::Absent,
                Kind::Images => blobs.images = Slot::Absent,
            }
            if blobs.is_empty() {
                index.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn local(dir: &std::path::Path) -> Store {
        Store::open(&StorageConfig::Local { path: dir.into() })
            .await
            .unwrap()
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn an_abandoned_upload_leaves_nothing_and_frees_the_slot() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path()).await;
        let mut upload = store.reserve(7, Kind::Images).unwrap();
        assert_eq!(store.reserve(7, Kind::Images).err(), Some(Slot::Uploading));
        upload
            .put_image(0, Bytes::from_static(b"png"))
            .await
            .unwrap();
        let staged = format!("tasks/7/images/{}/0.png", upload.name);
        assert_eq!(files(dir.path()), [staged]);
        upload.abandon().await;
        assert!(files(dir.path()).is_empty());
        assert_eq!(store.blobs(7), TaskBlobs::default());
        assert!(store.reserve(7, Kind::Images).is_ok());
    }

    #[tokio::test]
    async fn the_index_survives_a_restart_and_hides_unfinished_image_sets() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path()).await;
        store
            .reserve(1, Kind::Args)
            .unwrap()
            .put_args(Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mut images = store.reserve(1, Kind::Images).unwrap();
        images.put_image(0, Bytes::from_static(b"a")).await.unwrap();
        images
            .put_image(1, Bytes::from_static(b"bc"))
            .await
            .unwrap();
        images.commit_images(vec![1, 2]).await.unwrap();
        store.mark_finished(1, 42).await.unwrap();
        // Task 2: an image written, then the process died before the manifest.
        let mut cut = store.reserve(2, Kind::Images).unwrap();
        cut.put_image(0, Bytes::from_static(b"a")).await.unwrap();
        std::mem::forget(cut);

        let reopened = local(dir.path()).await;
        let mut upload = reopened.blobs(1).image_upload;
        assert!(upload.is_some());
        let expected = TaskBlobs {
            args: Slot::Stored,
            images: Slot::Stored,
            image_sizes: vec![1, 2],
            image_upload: upload.take(),
            finished_at_ms: Some(42),
        };
        assert_eq!(reopened.tasks(), vec![(1, expected)]);
        let blob = reopened.image_stream(1, 1, None).await.unwrap();
        assert_eq!((blob.size, blob.range), (2, 0..2));
        let bytes: Vec<Bytes> = blob.chunks.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"bc");
        let tail = reopened.image_stream(1, 1, Some(1..2)).await.unwrap();
        let bytes: Vec<Bytes> = tail.chunks.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"c");
        // The cut upload's image is invisible, and goes with its task.
        assert_eq!(reopened.blobs(2), TaskBlobs::default());
        assert_eq!(reopened.stored_tasks().await.unwrap(), [1, 2]);
        assert!(reopened.delete_task(2).await.unwrap());

        assert!(reopened.delete_task(1).await.unwrap());
        assert!(files(dir.path()).is_empty());
        assert!(reopened.tasks().is_empty());
    }

    #[tokio::test]
    async fn racing_first_writes_on_one_store_leave_the_first_set_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (local(dir.path()).await, local(dir.path()).await);
        // Both replicas take the slot: neither knows of the other's upload.
        let mut first = a.reserve(3, Kind::Images).unwrap();
        let mut second = b.reserve(3, Kind::Images).unwrap();
        first
            .put_image(0, Bytes::from_static(b"first"))
            .await
            .unwrap();
        second
            .put_image(0, Bytes::from_static(b"second"))
            .await
            .unwrap();
        first.commit_images(vec![5]).await.unwrap();
        let err = second.commit_images(vec![6]).await.unwrap_err();
        assert!(err.is::<AlreadyStored>(), "{err}");
        // The loser learned the winner's set and serves it.
        for store in [&a, &b] {
            let blob = store.image_stream(3, 0, None).await.unwrap();
            let bytes: Vec<Bytes> = blob.chunks.try_collect().await.unwrap();
            assert_eq!(bytes.concat(), b"first");
        }
        assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));

        let args_a = a.reserve(3, Kind::Args).unwrap();
        let args_b = b.reserve(3, Kind::Args).unwrap();
        args_a.put_args(Bytes::from_static(b"{}")).await.unwrap();
        let err = args_b
            .put_args(Bytes::from_static(b"{ }"))
            .await
            .unwrap_err();
        assert!(err.is::<AlreadyStored>(), "{err}");
        assert_eq!(b.args(3).await.unwrap(), Bytes::from_static(b"{}"));

        // The first replica to see the task finished sets the clock for both.
        assert_eq!(a.mark_finished(3, 100).await.unwrap(), Some(100));
        assert_eq!(b.mark_finished(3, 200).await.unwrap(), Some(100));

        // One replica deletes the task; the other says so instead of failing.
        assert!(a.delete_task(3).await.unwrap());
        let err = b.args(3).await.unwrap_err();
        assert!(err.is::<Deleted>(), "{err}");
        assert!(
            b.delete_task(3).await.unwrap(),
            "deleting twice is harmless"
        );
    }

    #[tokio::test]
    async fn a_signature_is_claimed_once_per_store_until_it_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (local(dir.path()).await, local(dir.path()).await);
        let expires = 10 * REPLAY_BUCKET_MS + 5;
        assert!(a.claim_signature(&[1; 64], expires).await.unwrap());
        assert!(!b.claim_signature(&[1; 64], expires).await.unwrap());
        assert!(!local(dir.path())
            .await
            .claim_signature(&[1; 64], expires)
            .await
            .unwrap());
        assert!(b.claim_signature(&[2; 64], expires).await.unwrap());
        // Not stale yet: kept.
        assert_eq!(a.forget_signatures(expires - 1).await.unwrap(), 0);
        assert_eq!(a.forget_signatures(11 * REPLAY_BUCKET_MS).await.unwrap(), 2);
        assert!(files(dir.path()).is_empty());
    }
}
