//! The HTTP API: routes, authentication, the permission rules and the
//! handlers. Every error is JSON `{"code", "message"}` ([`ErrorBody`]).

use crate::metrics::Metrics;
use crate::store::{AlreadyStored, Deleted, Kind, Slot};
use crate::State;
use bytes::{Buf, Bytes};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, Method, StatusCode};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::phash::{check_png, PHASH_BYTES};
use hydrogen_sdk::relay::auth::{AuthError, SignedRequest};
use hydrogen_sdk::relay::{code, frames, ErrorBody};
use hydrogen_sdk::task::{acceptance, args_hash_of};
use hydrogen_sdk::types::{AccountId, TaskId, TaskInfo, TaskStatus};
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError};
use tokio_util::io::StreamReader;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// A refusal: status, stable code, message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn rate_limited(wait: std::time::Duration) -> ApiError {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RATE_LIMITED,
            format!(
                "too many requests from this account; retry in {} ms",
                wait.as_millis().max(1)
            ),
        )
    }
    pub fn task_not_found(id: TaskId) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            code::TASK_NOT_FOUND,
            format!("task {id} does not exist on chain"),
        )
    }
    pub fn behind(id: TaskId) -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::BEHIND,
            format!(
                "the chain's best block allows this request on task {id} but its finalized \
                 block does not yet; retry shortly"
            ),
        )
    }
    pub fn chain_unavailable(error: &dyn std::fmt::Display) -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::CHAIN_UNAVAILABLE,
            format!("the relay cannot read the chain: {error}"),
        )
    }
    fn forbidden(message: String) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }
    fn unauthenticated(error: AuthError) -> ApiError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            error.to_string(),
        )
    }
    fn internal(error: anyhow::Error) -> ApiError {
        tracing::error!(error = format!("{error:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            format!("the relay failed: {error:#}"),
        )
    }
    /// A store failure; another replica's doing (it stored the blob first,
    /// or deleted the task) gets the answer the blob's state calls for.
    fn store(error: anyhow::Error, task: &TaskInfo, what: &str) -> ApiError {
        if error.is::<AlreadyStored>() {
            Self::occupied(task.id, what, Slot::Stored)
        } else if error.is::<Deleted>() {
            absent(task, what)
        } else {
            Self::internal(error)
        }
    }
    fn too_large(message: String) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code::TOO_LARGE, message)
    }
    fn malformed(message: String) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, code::MALFORMED, message)
    }
    fn wrong_images(message: String) -> ApiError {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::WRONG_IMAGES,
            message,
        )
    }
    fn occupied(id: TaskId, what: &str, slot: Slot) -> ApiError {
        let message = match slot {
            Slot::Uploading => format!("an upload of task {id}'s {what} is in progress"),
            _ => format!("task {id}'s {what} are already uploaded"),
        };
        Self::new(StatusCode::CONFLICT, code::ALREADY_UPLOADED, message)
    }

    fn into_response(self) -> Response {
        let mut response = warp::reply::with_status(
            warp::reply::json(&ErrorBody {
                code: self.code.into(),
                message: self.message,
            }),
            self.status,
        )
        .into_response();
        if self.code == code::BEHIND
            || self.code == code::CHAIN_UNAVAILABLE
            || self.code == code::RATE_LIMITED
            || self.code == code::BUSY
        {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

// ---- Permission rules: pure functions of the task and the signer. ----

fn is_node(task: &TaskInfo, who: &AccountId) -> bool {
    task.nodes.contains(who)
}

pub fn may_upload_args(task: &TaskInfo, who: &AccountId) -> Result<(), ApiError> {
    if *who != task.creator {
        return Err(ApiError::forbidden(format!(
            "only task {}'s creator {} may upload its arguments, not {}",
            task.id,
            ss58(&task.creator),
            ss58(who)
        )));
    }
    if task.status.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::WRONG_TASK_STATUS,
            format!(
                "task {} is {:?}: it needs no arguments any more",
                task.id, task.status
            ),
        ));
    }
    Ok(())
}

pub fn may_fetch_args(task: &TaskInfo, who: &AccountId) -> Result<(), ApiError> {
    if *who == task.creator || is_node(task, who) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "only task {}'s creator and selected nodes may fetch its arguments, not {}",
        task.id,
        ss58(who)
    )))
}

pub fn may_upload_images(task: &TaskInfo, who: &AccountId) -> Result<(), ApiError> {
    match &task.uploader {
        Some(uploader) if uploader != who => Err(ApiError::forbidden(format!(
            "only the node the contract designated, {}, may upload task {}'s images, not {}",
            ss58(uploader),
            task.id,
            ss58(who)
        ))),
        None if !is_node(task, who) => Err(ApiError::forbidden(format!(
            "only the node the contract designates after consensus may upload task {}'s \
             images, and {} is not one of its selected nodes",
            task.id,
            ss58(who)
        ))),
        _ if task.status != TaskStatus::Succeeded => Err(ApiError::new(
            StatusCode::CONFLICT,
            code::WRONG_TASK_STATUS,
            format!(
                "task {} is {:?}: images are accepted while it is Succeeded",
                task.id, task.status
            ),
        )),
        _ => Ok(()),
    }
}

pub fn may_download_images(task: &TaskInfo, who: &AccountId) -> Result<(), ApiError> {
    if *who == task.creator {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "only task {}'s creator {} may download its images, not {}",
        task.id,
        ss58(&task.creator),
        ss58(who)
    )))
}

// ---- Routes. ----

/// The parts of a request that authentication needs.
pub struct Req {
    method: Method,
    /// Where the client sent it: the `Host` header (HTTP/1) or the
    /// URI's authority (HTTP/2).
    authority: Option<String>,
    path_and_query: String,
    headers: HeaderMap,
}

type Body = BoxStream<'static, io::Result<Bytes>>;

/// A body-read error, told apart from the frame decoder's own errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BodyError(String);

fn body() -> impl Filter<Extract = (Body,), Error = Rejection> + Clone {
    warp::body::stream().map(|stream: _| {
        let stream = stream_of_bytes(stream);
        stream.boxed()
    })
}

fn stream_of_bytes<S, B>(stream: S) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    stream
        .map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()))
        .map_err(|e| io::Error::other(BodyError(e.to_string())))
}

fn request() -> impl Filter<Extract = (Req,), Error = Infallible> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // A malformed Host header is no authority (refused as such).
    let authority = warp::host::optional().or(warp::any().map(|| None)).unify();
    warp::method()
        .and(authority)
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .map(
            |method,
             authority: Option<warp::host::Authority>,
             path: warp::path::FullPath,
             query: String,
             headers| {
                let mut path_and_query = path.as_str().to_string();
                if !query.is_empty() {
                    path_and_query = format!("{path_and_query}?{query}");
                }
                Req {
                    method,
                    authority: authority.map(|a| a.as_str().to_ascii_lowercase()),
                    path_and_query,
                    headers,
                }
            },
        )
}

/// Every route of the relay.
pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let upload = warp::put().or(warp::post()).unify();
    let args = warp::path!("v1" / "tasks" / u64 / "args");
    let images = warp::path!("v1" / "tasks" / u64 / "images");
    let image = warp::path!("v1" / "tasks" / u64 / "images" / usize);

    let put_args = args
        .and(upload)
        .and(request())
        .and(warp::header::optional::<u64>("content-length"))
        .and(body())
        .and(with_state.clone())
        .then(|id, req, length, body, state| {
            timed("put_args", state, move |s| {
                put_args(s, id, req, length, body)
            })
        });
    let get_args = args
        .and(warp::get())
        .and(request())
        .and(with_state.clone())
        .then(|id, req, state| timed("get_args", state, move |s| get_args(s, id, req)));
    let put_images = images
        .and(upload)
        .and(request())
        .and(warp::header::optional::<u64>("content-length"))
        .and(body())
        .and(with_state.clone())
        .then(|id, req, length, body, state| {
            timed("put_images", state, move |s| {
                put_images(s, id, req, length, body)
            })
        });
    let get_images = images
        .and(warp::get())
        .and(request())
        .and(with_state.clone())
        .then(|id, req, state| timed("get_images", state, move |s| get_images(s, id, req)));
    let get_image = image
        .and(warp::get())
        .and(request())
        .and(with_state.clone())
        .then(|id, n, req, state| timed("get_image", state, move |s| get_image(s, id, n, req)));
    let get_receipt = warp::path!("v1" / "tasks" / u64 / "receipt")
        .and(warp::get())
        .and(request())
        .and(with_state.clone())
        .then(|id, req, state| timed("get_receipt", state, move |s| get_receipt(s, id, req)));
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok", StatusCode::OK).into_response());
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: Arc<State>| async move {
            let ready = async {
                state.chain.check().await?;
                state.store.check().await.map_err(ApiError::internal)
            };
            match ready.await {
                Ok(()) => warp::reply::with_status("ready", StatusCode::OK).into_response(),
                Err(mut e) => {
                    e.status = StatusCode::SERVICE_UNAVAILABLE;
                    e.into_response()
                }
            }
        });
    let metrics =
        warp::path!("metrics")
            .and(warp::get())
            .and(with_state)
            .map(|state: Arc<State>| {
                state
                    .metrics
                    .stored_tasks
                    .set(state.store.tasks().len() as i64);
                warp::reply::with_header(
                    state.metrics.render(),
                    "content-type",
                    "text/plain; version=0.0.4",
                )
                .into_response()
            });

    put_args
        .or(get_args)
        .unify()
        .or(put_images)
        .unify()
        .or(get_images)
        .unify()
        .or(get_image)
        .unify()
        .or(get_receipt)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .recover(|rejection: Rejection| async move { Ok::<_, Infallible>(rejected(rejection)) })
        .unify()
}

/// warp's own refusals (no route, wrong method) as JSON errors.
fn rejected(rejection: Rejection) -> Response {
    let error = if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::BAD_REQUEST,
            "method not allowed on this endpoint",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::BAD_REQUEST,
            format!("bad request: {rejection:?}"),
        )
    };
    error.into_response()
}

/// Runs a handler, records its metrics, and turns its error into a response.
async fn timed<F, Fut>(endpoint: &'static str, state: Arc<State>, handler: F) -> Response
where
    F: FnOnce(Arc<State>) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let started = Instant::now();
    let metrics: &Metrics = &state.metrics;
    let response = match handler(state.clone()).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(endpoint, status = %error.status, code = error.code, message = %error.message, "refused");
            error.into_response()
        }
    };
    let metrics = &metrics;
    metrics
        .requests
        .with_label_values(&[endpoint, response.status().as_str()])
        .inc();
    metrics
        .duration
        .with_label_values(&[endpoint])
        .observe(started.elapsed().as_secs_f64());
    response
}

// ---- Handlers. ----

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Checks the signature headers (not yet the body) and refuses a replay.
async fn authenticate(state: &State, req: &Req) -> Result<SignedRequest, ApiError> {
    let signed = SignedRequest::from_headers(&req.headers).map_err(ApiError::unauthenticated)?;
    let now = now_ms();
    signed
        .check_time(now, state.config.auth.max_skew_ms)
        .map_err(ApiError::unauthenticated)?;
    let authority = req.authority.as_deref().unwrap_or_default();
    if !state.authorities.iter().any(|a| a == authority) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            format!(
                "this relay answers requests signed for {}, not for {authority:?} (a proxy in \
                 front of it must pass the client's Host header on)",
                state.authorities.join(", ")
            ),
        ));
    }
    signed
        .verify(authority, req.method.as_str(), &req.path_and_query)
        .map_err(ApiError::unauthenticated)?;
    if let Err(wait) = state.limiter.check(&signed.account) {
        return Err(ApiError::rate_limited(wait));
    }
    if !state
        .replay
        .first_use(&signed.signature, signed.timestamp_ms, now)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "this signature was already used: every request needs a fresh one",
        ));
    }
    Ok(signed)
}

fn count_bytes(state: &State, endpoint: &str, direction: &str, n: usize) {
    state
        .metrics
        .bytes
        .with_label_values(&[endpoint, direction])
        .inc_by(n as u64);
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

async fn put_args(
    state: Arc<State>,
    id: TaskId,
    req: Req,
    length: Option<u64>,
    mut body: Body,
) -> Result<Response, ApiError> {
    let signed = authenticate(&state, &req).await?;
    let task = state
        .chain
        .authorize_fresh(id, |t| may_upload_args(t, &signed.account))
        .await?;
    let limit = state.config.limits.max_args_bytes;
    let too_large = || ApiError::too_large(format!("task arguments are limited to {}", mib(limit)));
    if length.is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    // Another replica may have stored it: the store knows.
    state.store.seen(id).await.map_err(ApiError::internal)?;
    let upload = state
        .store
        .reserve(id, Kind::Args)
        .map_err(|slot| ApiError::occupied(id, "arguments", slot))?;
    // Small enough to hold: read it whole, refusing as soon as it is too big.
    let mut received = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::malformed(format!("the body could not be read to its end: {e}"))
            })?;
            if (received.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            received.extend_from_slice(&chunk);
        }
        Ok(())
    };
    let checked = match read.await {
        Ok(()) => check_args(&signed, &task, &received),
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        upload.abandon().await;
        return Err(e);
    }
    count_bytes(&state, "put_args", "in", received.len());
    upload
        .put_args(Bytes::from(received))
        .await
        .map_err(|e| ApiError::store(e, &task, "arguments"))?;
    tracing::info!(task = id, "arguments stored");
    Ok(StatusCode::CREATED.into_response())
}

fn check_args(signed: &SignedRequest, task: &TaskInfo, body: &[u8]) -> Result<(), ApiError> {
    signed
        .check_body(&args_hash_of(body))
        .map_err(ApiError::unauthenticated)?;
    match acceptance::accept(task, body) {
        Ok(_) => Ok(()),
        Err(e @ acceptance::Rejection::HashMismatch { .. }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::ARGS_HASH_MISMATCH,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::INVALID_ARGS,
            e.to_string(),
        )),
    }
}

async fn get_args(state: Arc<State>, id: TaskId, req: Req) -> Result<Response, ApiError> {
    let signed = authenticate(&state, &req).await?;
    let task = state
        .chain
        .authorize(id, |t| may_fetch_args(t, &signed.account))
        .await?;
    // An audit re-executes another task: it runs that task's arguments.
    let blobs = task.audit_of.unwrap_or(id);
    if state
        .store
        .seen(blobs)
        .await
        .map_err(ApiError::internal)?
        .args
        != Slot::Stored
    {
        return Err(absent(&task, "arguments"));
    }
    let args = state
        .store
        .args(blobs)
        .await
        .map_err(|e| ApiError::store(e, &task, "arguments"))?;
    count_bytes(&state, "get_args", "out", args.len());
    Ok(warp::reply::with_header(args.to_vec(), "content-type", "application/json").into_response())
}

async fn put_images(
    state: Arc<State>,
    id: TaskId,
    req: Req,
    length: Option<u64>,
    body: Body,
) -> Result<Response, ApiError> {
    let signed = authenticate(&state, &req).await?;
    let task = state
        .chain
        .authorize_fresh(id, |t| may_upload_images(t, &signed.account))
        .await?;
    let limits = state.config.limits;
    let most = u64::from(task.num_images.min(limits.max_images));
    if length.is_some_and(|l| l > most * (limits.max_image_bytes + 4)) {
        return Err(ApiError::too_large(format!(
            "task {id}'s images are limited to {most} of {} each",
            mib(limits.max_image_bytes)
        )));
    }
    // Admitted, or refused before a byte of the body is read.
    let _admitted = state.uploads.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::BUSY,
            format!(
                "{} image uploads are being checked or queued; retry shortly",
                state.config.limits.uploads()
            ),
        )
    })?;
    // Another replica may have stored it: the store knows.
    state.store.seen(id).await.map_err(ApiError::internal)?;
    let mut upload = state
        .store
        .reserve(id, Kind::Images)
        .map_err(|slot| ApiError::occupied(id, "images", slot))?;
    match receive_images(&state, &signed, &task, body, &mut upload).await {
        Ok(sizes) => {
            count_bytes(
                &state,
                "put_images",
                "in",
                sizes.iter().sum::<u64>() as usize,
            );
            upload
                .commit_images(sizes)
                .await
                .map_err(|e| ApiError::store(e, &task, "images"))?;
            tracing::info!(task = id, images = task.num_images, "images stored");
            Ok(StatusCode::CREATED.into_response())
        }
        Err(e) => {
            upload.abandon().await;
            Err(e)
        }
    }
}

/// Reads the framed images as they stream in, checks each against the
/// accepted result and stores it (not yet visible). The signed body hash is
/// checked before any verdict on the images, so a body altered on the way
/// is reported as such.
async fn receive_images(
    state: &State,
    signed: &SignedRequest,
    task: &TaskInfo,
    body: Body,
    upload: &mut crate::store::Upload,
) -> Result<Vec<u64>, ApiError> {
    let limits = state.config.limits;
    let expected = usize::from(task.num_images);
    let result = task.result.clone().unwrap_or_default();
    let mut hasher = blake2b_simd::Params::new().hash_length(32).to_state();
    let mut sizes = Vec::new();
    let mut refusal: Option<ApiError> = None;
    let mut received = 0usize;
    {
        let hashed = body.inspect_ok(|chunk| {
            hasher.update(chunk);
        });
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(limits.max_image_bytes as usize)
            .new_codec();
        let mut images = FramedRead::new(StreamReader::new(hashed), codec);
        while let Some(frame) = images.next().await {
            let png = frame.map_err(|e| frame_error(e, received, limits.max_image_bytes))?;
            let n = received;
            received += 1;
            if received > usize::from(limits.max_images) {
                return Err(ApiError::too_large(format!(
                    "at most {} images per task",
                    limits.max_images
                )));
            }
            if refusal.is_some() {
                continue;
            }
            if n >= expected {
                refusal = Some(ApiError::wrong_images(format!(
                    "task {} has {expected} images; image {n} is one too many",
                    task.id
                )));
                continue;
            }
            let want: [u8; PHASH_BYTES] = result
                .get(n * PHASH_BYTES..(n + 1) * PHASH_BYTES)
                .and_then(|s| s.try_into().ok())
                .unwrap_or_default();
            let png = png.freeze();
            match check_image(state, png.clone(), n, want).await {
                Ok(()) => {
                    sizes.push(png.len() as u64);
                    upload.put_image(n, png).await.map_err(ApiError::internal)?;
                }
                Err(e) => refusal = Some(e),
            }
        }
    }
    let hash: [u8; 32] = hasher
        .finalize()
        .as_bytes()
        .try_into()
        .expect("a 32-byte hash");
    signed
        .check_body(&hash)
        .map_err(ApiError::unauthenticated)?;
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    if received != expected {
        return Err(ApiError::wrong_images(format!(
            "task {} has {expected} images, the body holds {received}",
            task.id
        )));
    }
    Ok(sizes)
}

fn frame_error(error: io::Error, index: usize, max: u64) -> ApiError {
    let inner = error.get_ref();
    if inner.is_some_and(|e| e.is::<LengthDelimitedCodecError>()) {
        ApiError::too_large(format!("image {index} is larger than {}", mib(max)))
    } else if inner.is_some_and(|e| e.is::<BodyError>()) {
        ApiError::malformed(format!("the body could not be read to its end: {error}"))
    } else {
        ApiError::malformed(format!(
            "the body ends inside image {index} (each image is a 4-byte big-endian length, \
             then its bytes)"
        ))
    }
}

/// Decodes the PNG and compares its pHash with the accepted one, off the
/// async threads (a 1 MiB PNG takes milliseconds to decode), at most
/// `image_checks` at a time: an upload waiting here stops reading its body,
/// so its client is slowed down rather than the relay's memory filled.
async fn check_image(
    state: &State,
    png: Bytes,
    n: usize,
    want: [u8; PHASH_BYTES],
) -> Result<(), ApiError> {
    let permit = state
        .checks
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("image checks closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        check_png(&png, n, want).map_err(ApiError::wrong_images)
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("pHash task: {e}")))?
}

/// A blob the relay does not hold: not yet, or (the task being over) no
/// more, which a client must not wait for.
fn absent(task: &TaskInfo, what: &str) -> ApiError {
    if task.status.is_final() {
        ApiError::new(
            StatusCode::GONE,
            code::GONE,
            format!(
                "task {} is {:?} and its {what} are not on the relay: deleted after the \
                 retention period, or never uploaded",
                task.id, task.status
            ),
        )
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::NOT_UPLOADED_YET,
            format!("task {}'s {what} have not been uploaded yet", task.id),
        )
    }
}

async fn stored_images(
    state: &State,
    id: TaskId,
    req: &Req,
) -> Result<(TaskInfo, Vec<u64>), ApiError> {
    let signed = authenticate(state, req).await?;
    let task = state
        .chain
        .authorize(id, |t| may_download_images(t, &signed.account))
        .await?;
    let blobs = state.store.seen(id).await.map_err(ApiError::internal)?;
    if blobs.images != Slot::Stored {
        return Err(absent(&task, "images"));
    }
    Ok((task, blobs.image_sizes))
}

async fn get_image(
    state: Arc<State>,
    id: TaskId,
    n: usize,
    req: Req,
) -> Result<Response, ApiError> {
    let (task, sizes) = stored_images(&state, id, &req).await?;
    if n >= sizes.len() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!(
                "task {id} has {} images; there is no image {n}",
                sizes.len()
            ),
        ));
    }
    let size = sizes[n];
    let range = match byte_range(header_str(&req, "range"), size) {
        Ok(range) => range,
        Err(()) => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                code::BAD_REQUEST,
                format!("image {n} of task {id} has {size} bytes"),
            )
            .into_response();
            set_header(&mut response, "content-range", &format!("bytes */{size}"));
            return Ok(response);
        }
    };
    let blob = state
        .store
        .image_stream(id, n, range.clone())
        .await
        .map_err(|e| ApiError::store(e, &task, "images"))?;
    let e_tag = blob.e_tag.as_deref().map(quoted_tag);
    if let (Some(tag), Some(wanted)) = (&e_tag, header_str(&req, "if-none-match")) {
        if none_match_hits(wanted, tag) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            set_header(&mut response, "etag", tag);
            return Ok(response);
        }
    }
    let length = blob.range.end - blob.range.start;
    count_bytes(&state, "get_image", "out", length as usize);
    let mut response = stream_body(blob.chunks).into_response();
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!(
            "bytes {}-{}/{}",
            blob.range.start,
            blob.range.end - 1,
            blob.size
        );
        set_header(&mut response, "content-range", &content_range);
    }
    set_header(&mut response, "content-type", "image/png");
    set_header(&mut response, "content-length", &length.to_string());
    set_header(&mut response, "accept-ranges", "bytes");
    if let Some(tag) = &e_tag {
        set_header(&mut response, "etag", tag);
    }
    Ok(response)
}

/// Every image of the task in one framed body, streamed image by image
/// from the store: at most one chunk of one image is in memory at a time.
async fn get_images(state: Arc<State>, id: TaskId, req: Req) -> Result<Response, ApiError> {
    let (task, sizes) = stored_images(&state, id, &req).await?;
    let length: u64 = sizes.iter().map(|s| s + 4).sum();
    // The first image is opened before answering, so that a set another
    // replica deleted meanwhile is refused (410) rather than cut short.
    let mut first = match sizes.first() {
        Some(_) => Some(
            state
                .store
                .image_stream(id, 0, None)
                .await
                .map_err(|e| ApiError::store(e, &task, "images"))?,
        ),
        None => None,
    };
    count_bytes(&state, "get_images", "out", length as usize);
    let store = state.store.clone();
    let frames = futures::stream::iter(sizes.into_iter().enumerate()).then(move |(n, size)| {
        let store = store.clone();
        let opened = if n == 0 { first.take() } else { None };
        async move {
            let header = futures::stream::once(futures::future::ready(Ok(Bytes::copy_from_slice(
                &u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes(),
            ))));
            let blob = match opened {
                Some(blob) => Ok(blob),
                None => store.image_stream(id, n, None).await,
            };
            let image = match blob {
                Ok(blob) => blob.chunks.map_err(io::Error::other).boxed(),
                Err(e) => {
                    futures::stream::once(futures::future::ready(Err(io::Error::other(e)))).boxed()
                }
            };
            header.chain(image)
        }
    });
    let mut response = stream_body(frames.flatten().boxed()).into_response();
    set_header(&mut response, "content-type", frames::CONTENT_TYPE);
    set_header(&mut response, "content-length", &length.to_string());
    Ok(response)
}

/// A response body that streams `chunks` as they come.
fn stream_body<E>(chunks: BoxStream<'static, Result<Bytes, E>>) -> impl Reply
where
    E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    warp::reply::stream(sync_wrapper::SyncStream::new(chunks))
}

fn header_str<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = warp::http::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The store's entity tag as an HTTP one (quoted; S3's already are).
fn quoted_tag(tag: &str) -> String {
    format!("\"{}\"", tag.trim_matches('"'))
}

/// Whether an `If-None-Match` list names `tag` (weak comparison, `*` matches).
fn none_match_hits(header: &str, tag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

/// The one byte range a `Range: bytes=…` header asks of a `size`-byte
/// blob: `Ok(None)` serves it whole (no header, another unit, several
/// ranges, or a malformed one, as RFC 9110 allows); `Err(())` when the
/// range lies past the end (416).
fn byte_range(header: Option<&str>, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match parse(last) {
            Some(0) => return Err(()),
            Some(n) => size.saturating_sub(n)..size,
            None => return Ok(None),
        },
        // bytes=a-: from a to the end.
        (false, true) => match parse(first) {
            Some(a) => a..size,
            None => return Ok(None),
        },
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => a..(b + 1).min(size),
            _ => return Ok(None),
        },
        (true, true) => return Ok(None),
    };
    if range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

/// The relay's signed word that it stores `id`'s images and that they hash
/// to the accepted result: what `confirm_upload` needs to pay the uploader.
async fn get_receipt(state: Arc<State>, id: TaskId, req: Req) -> Result<Response, ApiError> {
    authenticate(&state, &req).await?;
    let Some(key) = &state.receipts else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::NO_RECEIPTS,
            "this relay signs no upload receipts (no receipt_key configured)",
        ));
    };
    // Anyone may ask: a receipt reveals nothing the chain does not.
    let task = state.chain.authorize(id, |_| Ok(())).await?;
    if state
        .store
        .seen(id)
        .await
        .map_err(ApiError::internal)?
        .images
        != Slot::Stored
    {
        return Err(absent(&task, "images"));
    }
    let Some(result) = &task.result else {
        return Err(absent(&task, "images"));
    };
    let receipt = hydrogen_sdk::relay::receipt::sign(key, id, result);
    Ok(warp::reply::with_header(
        format!("0x{}", hex::encode(receipt)),
        "content-type",
        "text/plain",
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        let r = |h: &str| byte_range(Some(h), 1000);
        assert_eq!(byte_range(None, 1000), Ok(None));
        assert_eq!(r("bytes=0-99"), Ok(Some(0..100)));
        assert_eq!(r("bytes=900-"), Ok(Some(900..1000)));
        assert_eq!(r("bytes=-100"), Ok(Some(900..1000)));
        assert_eq!(
            r("bytes=-5000"),
            Ok(Some(0..1000)),
            "a suffix longer than the blob"
        );
        assert_eq!(
            r("bytes=990-5000"),
            Ok(Some(990..1000)),
            "an end past the blob"
        );
        assert_eq!(r("bytes=1000-"), Err(()), "starts past the end: 416");
        assert_eq!(r("bytes=-0"), Err(()));
        // Served whole: another unit, several ranges, nonsense.
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("bytes=5-1"), Ok(None));
        assert_eq!(r("bytes=x-y"), Ok(None));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = quoted_tag("abc-12");
        assert_eq!(tag, "\"abc-12\"");
        assert_eq!(quoted_tag("\"s3tag\""), "\"s3tag\"");
        assert!(none_match_hits("\"abc-12\"", &tag));
        assert!(none_match_hits("\"x\", W/\"abc-12\"", &tag));
        assert!(none_match_hits("*", &tag));
        assert!(!none_match_hits("\"abc-13\"", &tag));
    }
    use hydrogen_sdk::types::TaskType;

    const CREATOR: AccountId = AccountId([1; 32]);
    const NODES: [AccountId; 3] = [AccountId([2; 32]), AccountId([3; 32]), AccountId([4; 32])];
    const STRANGER: AccountId = AccountId([9; 32]);

    fn task(status: TaskStatus, uploader: Option<AccountId>) -> TaskInfo {
        TaskInfo {
            id: 5,
            creator: CREATOR,
            task_type: TaskType::StableDiffusion,
            args_hash: [0; 32],
            min_vram_gb: 8,
            num_images: 1,
            fee: 1,
            status,
            created_at: 0,
            deadline: 0,
            nodes: NODES.to_vec(),
            result: None,
            uploader,
            distance_threshold: 10,
            audit_of: None,
            audit: None,
        }
    }

    #[test]
    fn image_uploads_need_the_designated_node_and_a_succeeded_task() {
        let succeeded = task(TaskStatus::Succeeded, Some(NODES[1]));
        assert!(may_upload_images(&succeeded, &NODES[1]).is_ok());
        for who in [CREATOR, NODES[0], NODES[2], STRANGER] {
            assert_eq!(
                may_upload_images(&succeeded, &who).unwrap_err().status,
                StatusCode::FORBIDDEN
            );
        }
        let running = task(TaskStatus::Running, None);
        assert_eq!(
            may_upload_images(&running, &NODES[0]).unwrap_err().code,
            code::WRONG_TASK_STATUS
        );
        assert_eq!(
            may_upload_images(&running, &STRANGER).unwrap_err().code,
            code::FORBIDDEN
        );
        let completed = task(TaskStatus::Completed, Some(NODES[1]));
        assert_eq!(
            may_upload_images(&completed, &NODES[1]).unwrap_err().code,
            code::WRONG_TASK_STATUS
        );
    }

    #[test]
    fn args_rules() {
        let running = task(TaskStatus::Running, None);
        assert!(may_upload_args(&running, &CREATOR).is_ok());
        assert_eq!(
            may_upload_args(&running, &NODES[0]).unwrap_err().code,
            code::FORBIDDEN
        );
        let completed = task(TaskStatus::Completed, None);
        assert_eq!(
            may_upload_args(&completed, &CREATOR).unwrap_err().code,
            code::WRONG_TASK_STATUS
        );
        for who in [CREATOR, NODES[0], NODES[1], NODES[2]] {
            assert!(may_fetch_args(&running, &who).is_ok());
        }
        assert_eq!(
            may_fetch_args(&running, &STRANGER).unwrap_err().code,
            code::FORBIDDEN
        );
        assert!(may_download_images(&running, &CREATOR).is_ok());
        assert_eq!(
            may_download_images(&running, &NODES[0]).unwrap_err().code,
            code::FORBIDDEN
        );
    }
}
