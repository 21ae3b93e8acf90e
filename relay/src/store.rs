//! Blobs in an object store, and an in-memory index of what each task has.
//!
//! Layout under the store's root:
//!
//! ```text
//! tasks/<id>/args.json        the task arguments, as uploaded
//! tasks/<id>/images/<n>.png   image n (0-based)
//! tasks/<id>/images.json      {"sizes": [...]}: written after every image,
//!                             so the set exists only once it is complete
//! tasks/<id>/finished.json    {"finished_at_ms": ...}: when the relay first
//!                             saw the task finished (retention's clock)
//! ```
//!
//! Each `put` is atomic in `object_store` (a temporary file renamed into
//! place on local disk; one `PutObject` on S3), so no blob is ever seen
//! half-written. The index is rebuilt from a listing at start, which also
//! deletes image files that never got their `images.json` (an upload cut
//! short by a crash).

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
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Chunk size of a streamed local file: large enough that a 1 MiB image
/// takes four reads (`object_store`'s own 8 KiB chunks cost a blocking-pool
/// round trip each, 40 ms per MiB), small enough to bound memory per download.
const FILE_CHUNK: usize = 256 << 10;

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
}

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
fn image_path(id: TaskId, n: usize) -> Path {
    Path::from(format!("tasks/{id}/images/{n}.png"))
}
fn manifest_path(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}/images.json"))
}
fn finished_path(id: TaskId) -> Path {
    Path::from(format!("tasks/{id}/finished.json"))
}

impl Store {
    /// Opens the configured store and indexes what it holds.
    pub async fn open(config: &StorageConfig) -> anyhow::Result<Store> {
        let objects: Arc<dyn ObjectStore> = match config {
            StorageConfig::Local { path } => {
                std::fs::create_dir_all(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(path)
                        .with_context(|| format!("cannot use {}", path.display()))?,
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
            if paths.contains(&manifest_path(id)) {
                let manifest: Manifest = self.read_json(&manifest_path(id)).await?;
                blobs.images = Slot::Stored;
                blobs.image_sizes = manifest.sizes;
            } else {
                for path in paths.iter().filter(|p| p.as_ref().contains("/images/")) {
                    tracing::warn!(task = id, %path, "deleting an image of an unfinished upload");
                    self.delete(path).await?;
                }
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
                    }
                }),
                Err(e)
                    if e.downcast_ref::<object_store::Error>()
                        .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) => {}
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
            written: Vec::new(),
            done: false,
        })
    }

    /// The stored arguments of `id`.
    pub async fn args(&self, id: TaskId) -> anyhow::Result<Bytes> {
        Ok(self.objects.get(&args_path(id)).await?.bytes().await?)
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
        let got = self.objects.get_opts(&image_path(id, n), options).await?;
        let (size, range, e_tag) = (got.meta.size, got.range.clone(), got.meta.e_tag.clone());
        let chunks = match got.payload {
            GetResultPayload::File(file, _) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::from_std(file);
                file.seek(std::io::SeekFrom::Start(range.start)).await?;
                let part = file.take(range.end - range.start);
                tokio_util::io::ReaderStream::with_capacity(part, FILE_CHUNK)
                    .map_err(|e| object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    })
                    .boxed()
            }
            GetResultPayload::Stream(stream) => stream,
        };
        Ok(BlobStream {
            size,
            range,
            e_tag,
            chunks,
        })
    }

    /// Records when `id` was first seen finished; returns the recorded time.
    pub async fn mark_finished(&self, id: TaskId, now_ms: u64) -> anyhow::Result<u64> {
        if let Some(at) = self.blobs(id).finished_at_ms {
            return Ok(at);
        }
        let body = serde_json::to_vec(&Finished {
            finished_at_ms: now_ms,
        })?;
        self.objects.put(&finished_path(id), body.into()).await?;
        if let Some(blobs) = self.index.lock().unwrap().get_mut(&id) {
            blobs.finished_at_ms = Some(now_ms);
        }
        Ok(now_ms)
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
    written: Vec<Path>,
    done: bool,
}

impl Upload {
    /// Stores the arguments; they are visible at once.
    pub async fn put_args(mut self, body: Bytes) -> anyhow::Result<()> {
        debug_assert_eq!(self.kind, Kind::Args);
        let path = args_path(self.id);
        self.written.push(path.clone());
        self.store
            .objects
            .put(&path, PutPayload::from_bytes(body))
            .await?;
        self.finish(|blobs| blobs.args = Slot::Stored);
        Ok(())
    }

    /// Stores image `n`, not yet visible.
    pub async fn put_image(&mut self, n: usize, png: Bytes) -> anyhow::Result<()> {
        let path = image_path(self.id, n);
        self.written.push(path.clone());
        self.store
            .objects
            .put(&path, PutPayload::from_bytes(png))
            .await?;
        Ok(())
    }

    /// Makes the stored images visible, as one set.
    pub async fn commit_images(mut self, sizes: Vec<u64>) -> anyhow::Result<()> {
        let path = manifest_path(self.id);
        let body = serde_json::to_vec(&Manifest {
            sizes: sizes.clone(),
        })?;
        self.written.push(path.clone());
        self.store.objects.put(&path, body.into()).await?;
        self.finish(|blobs| {
            blobs.images = Slot::Stored;
            blobs.image_sizes = sizes;
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
        assert_eq!(files(dir.path()), ["tasks/7/images/0.png"]);
        upload.abandon().await;
        assert!(files(dir.path()).is_empty());
        assert_eq!(store.blobs(7), TaskBlobs::default());
        assert!(store.reserve(7, Kind::Images).is_ok());
    }

    #[tokio::test]
    async fn the_index_survives_a_restart_and_drops_unfinished_image_sets() {
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
        let expected = TaskBlobs {
            args: Slot::Stored,
            images: Slot::Stored,
            image_sizes: vec![1, 2],
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
        assert!(!files(dir.path()).iter().any(|f| f.starts_with("tasks/2")));

        assert!(reopened.delete_task(1).await.unwrap());
        assert!(files(dir.path()).is_empty());
        assert!(reopened.tasks().is_empty());
    }
}
