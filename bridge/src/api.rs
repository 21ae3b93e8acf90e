//! The HTTP API under `/v1`: routes, authentication, handlers, and the
//! OpenAPI document generated from them ([`openapi_json`]).
//!
//! Every error is JSON `{"error": {"code", "message", "type", "path"?}}`;
//! `path` is the JSON path of the offending value (`task_config.steps`) or
//! the request field (`steps`) when there is one. The shape is OpenAI's, so
//! its client libraries show the message.
//!
//! Authentication is `Authorization: Bearer <API key>` (keys made with
//! `hydrogen-bridge keys create`): 401 without a valid key. A task that
//! would exceed the key's quota is refused with 429 `quota_exceeded`, as
//! OpenAI answers an exhausted quota. Image URLs
//! (`/v1/tasks/{id}/images/{n}`) need no key: the task id is random (128
//! bits) and the URL is its capability, so OpenAI clients can fetch
//! `url` answers as they are.

use crate::openai::{GenerationRequest, GenerationResponse, ImageData, ResponseFormat};
use crate::store::{ApiKey, KeyLookup, QuotaError, TaskRow, TaskState};
use crate::{events, network, worker, Shared};
use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use hydrogen_sdk::app::AppError;
use hydrogen_sdk::chain::{ss58, ChainError};
use hydrogen_sdk::task::{TaskArgs, TaskArgsError};
use hydrogen_sdk::types::{format_tokens, Error as ContractError, TaskStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use utoipa::{OpenApi, ToSchema};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Largest request body: a task's JSON is a few kilobytes.
const MAX_BODY: u64 = 256 * 1024;

// ---- Errors ----

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_task`, `unauthenticated`, `quota_exceeded`...
    pub code: String,
    /// For people.
    pub message: String,
    /// OpenAI's error class: `invalid_request_error`, `authentication_error`,
    /// `rate_limit_error`, `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The JSON path (`task_config.steps`) or request field the error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A refusal: status, stable code, message, and the path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub path: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            path: None,
        }
    }

    fn at(mut self, path: impl Into<String>) -> ApiError {
        self.path = Some(path.into());
        self
    }

    fn unauthenticated(message: &str) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    fn not_found(what: &str) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    /// An invalid task, at the JSON path of the offending value.
    fn task(e: TaskArgsError) -> ApiError {
        let path = e.path().to_owned();
        let code = match e {
            TaskArgsError::Malformed { .. } => "malformed_task",
            TaskArgsError::Invalid { .. } => "invalid_task",
            TaskArgsError::Unsupported { .. } => "unsupported_task",
        };
        Self::new(StatusCode::BAD_REQUEST, code, e.to_string()).at(path)
    }

    pub(crate) fn not_connected() -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain_unavailable",
            "the bridge has not reached the chain yet; retry shortly",
        )
    }

    fn stopping() -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the bridge is shutting down",
        )
    }

    fn quota(e: QuotaError) -> ApiError {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            e.to_string(),
        )
    }

    /// A failed network call, with what happened to the fee.
    pub(crate) fn app(e: AppError) -> ApiError {
        match e {
            AppError::Task(e) => Self::task(e),
            AppError::Chain(c) if c.is_transport() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unavailable",
                c.to_string(),
            ),
            AppError::Chain(
                c @ ChainError::Contract {
                    error: ContractError::InsufficientBalance,
                    ..
                },
            ) => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_funds",
                format!("the bridge's account cannot pay this fee ({c}); fund it or lower the fee"),
            ),
            AppError::Chain(c @ (ChainError::Contract { .. } | ChainError::Token { .. })) => {
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "chain_refused",
                    c.to_string(),
                )
            }
            e => Self::new(StatusCode::BAD_GATEWAY, "network_error", e.to_string()),
        }
    }

    pub(crate) fn internal(e: anyhow::Error) -> ApiError {
        tracing::error!(error = format!("{e:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the bridge failed: {e:#}"),
        )
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_client_error() => "invalid_request_error",
            _ => "api_error",
        }
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message.clone(),
                kind: self.kind().into(),
                path: self.path.clone(),
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

// ---- Answers ----

/// A task the bridge created on chain and now carries through the network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedTask {
    /// The bridge's id: use it in `/v1/tasks/{id}`.
    pub id: String,
    /// The chain's task id.
    pub task_id: u64,
    /// The fee escrowed, in the token's smallest unit (decimal string).
    pub fee: String,
    pub status: TaskState,
}

/// A task as the bridge knows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub status: TaskState,
    /// Where the network is with it, from the chain (`queued`, `running`,
    /// `succeeded` (consensus, images being uploaded), `completed`,
    /// `aborted`) while the bridge carries it, else the status.
    pub stage: String,
    /// The chain's task id, once created.
    pub task_id: Option<u64>,
    /// The fee escrowed, in the token's smallest unit (decimal string).
    pub fee: String,
    /// The fee in tokens, for people (`1.5 HYD`).
    pub fee_tokens: String,
    /// The nodes selected to run it (SS58).
    pub nodes: Vec<String>,
    /// Why it failed or aborted, in words.
    pub error: Option<String>,
    /// The accepted result: each image's pHash, 16 hex digits.
    pub result: Vec<String>,
    /// The images' URLs (once completed).
    pub images: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A key's recent tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
}

// ---- OpenAPI ----

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hydrogen bridge",
        description = "Create Stable Diffusion tasks on the Hydrogen network over HTTP. \
                       The bridge pays from its app account; requests carry an API key.",
        license(name = "Apache-2.0")
    ),
    paths(
        post_task,
        list_tasks,
        get_task,
        get_image,
        cancel_task,
        task_events,
        generations,
        network::network,
        network::models,
        openapi
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        CreatedTask,
        TaskView,
        TaskList,
        network::NetworkView,
        network::NodesView,
        network::CapacityView,
        network::FeesView,
        network::ModelsView,
        network::ModelSeen,
        network::LoraSeen,
        TaskState,
        GenerationRequest,
        GenerationResponse,
        ImageData,
        ResponseFormat,
        events::TaskEvent
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key made with `hydrogen-bridge keys create`."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3 document of this API, pretty JSON with a final newline
/// (what `bridge/openapi.json` holds).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let mut text = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

// ---- Routes ----

/// Every route of the bridge.
pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with = {
        let shared = shared.clone();
        warp::any().map(move || shared.clone())
    };
    let auth = warp::header::optional::<String>("authorization");
    let host = warp::header::optional::<String>("host");
    let body = warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes());

    let post_task = warp::path!("v1" / "tasks")
        .and(warp::post())
        .and(with.clone())
        .and(auth)
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("x-hydrogen-fee"))
        .and(body)
        .then(
            |s, a, q: HashMap<String, String>, f: Option<String>, b| async move {
                let fee = q.get("fee").cloned().or(f);
                answer(post_task(s, a, fee, b).await)
            },
        );
    let list_tasks = warp::path!("v1" / "tasks")
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .and(host)
        .then(|s, a, h| async move { answer(list_tasks(s, a, h).await) });
    let get_task = warp::path!("v1" / "tasks" / String)
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .and(host)
        .then(|id, s, a, h| async move { answer(get_task(s, a, h, id).await) });
    let get_image = warp::path!("v1" / "tasks" / String / "images" / usize)
        .and(warp::get())
        .and(with.clone())
        .then(|id, n, s| async move { answer(get_image(s, id, n).await) });
    let cancel_task = warp::path!("v1" / "tasks" / String / "cancel")
        .and(warp::post())
        .and(with.clone())
        .and(auth)
        .and(host)
        .then(|id, s, a, h| async move { answer(cancel_task(s, a, h, id).await) });
    let task_events = warp::path!("v1" / "tasks" / String / "events")
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .and(host)
        .then(|id, s, a, h| async move { answer(task_events(s, a, h, id).await) });
    let generations = warp::path!("v1" / "images" / "generations")
        .and(warp::post())
        .and(with.clone())
        .and(auth)
        .and(host)
        .and(body)
        .then(|s, a, h, b| async move { answer(generations(s, a, h, b).await) });
    let network = warp::path!("v1" / "network")
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .then(|s, a| async move { answer(network::network(s, a).await) });
    let models = warp::path!("v1" / "models")
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .then(|s, a| async move { answer(network::models(s, a).await) });
    let openapi = warp::path!("v1" / "openapi.json")
        .and(warp::get())
        .map(|| answer(Ok(openapi())));
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok", StatusCode::OK).into_response());

    post_task
        .or(list_tasks)
        .unify()
        .or(get_task)
        .unify()
        .or(get_image)
        .unify()
        .or(cancel_task)
        .unify()
        .or(task_events)
        .unify()
        .or(generations)
        .unify()
        .or(network)
        .unify()
        .or(models)
        .unify()
        .or(openapi)
        .unify()
        .or(healthz)
        .unify()
        .or(crate::web::routes())
        .unify()
        .recover(|rejection: Rejection| async move { Ok::<_, Infallible>(rejected(rejection)) })
        .unify()
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// warp's own refusals (no route, wrong method, body too large) as JSON errors.
fn rejected(rejection: Rejection) -> Response {
    let error = if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this endpoint",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("bad request: {rejection:?}"),
        )
    };
    error.into_response()
}

/// The key an `Authorization: Bearer` header names: 401 when it is
/// missing, unknown or revoked.
pub(crate) async fn authenticate(
    shared: &Shared,
    header: Option<String>,
) -> Result<ApiKey, ApiError> {
    let Some(header) = header else {
        return Err(ApiError::unauthenticated(
            "missing API key: send `Authorization: Bearer <key>`",
        ));
    };
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be `Bearer <key>`")
        })?;
    match shared.store.authenticate(secret).await? {
        KeyLookup::Valid(key) => Ok(key),
        KeyLookup::Revoked => Err(ApiError::unauthenticated("this API key was revoked")),
        KeyLookup::Unknown => Err(ApiError::unauthenticated("unknown API key")),
    }
}

/// The key's task `id`, or 404 (another key's task is not found either).
async fn task_of(shared: &Shared, key: &ApiKey, id: &str) -> Result<TaskRow, ApiError> {
    match shared.store.task(id).await? {
        Some(row) if row.api_key_id == key.id => Ok(row),
        _ => Err(ApiError::not_found(&format!("task {id}"))),
    }
}

fn base_url(shared: &Shared, host: Option<String>) -> String {
    match (&shared.config.public_url, host) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(host)) => format!("http://{host}"),
        (None, None) => format!("http://{}", shared.config.listen),
    }
}

fn parse_fee(fee: Option<String>) -> Result<Option<u128>, ApiError> {
    fee.map(|f| {
        f.trim().parse::<u128>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_fee",
                format!("fee must be a whole number of the token's smallest unit, got {f:?}"),
            )
            .at("fee")
        })
    })
    .transpose()
}

/// Writes the task's `submitting` row, sends `create_task`, records the
/// chain's task id and starts the task's driver.
pub(crate) async fn submit(
    shared: &Arc<Shared>,
    key: &ApiKey,
    args: &TaskArgs,
    fee: Option<u128>,
) -> Result<TaskRow, ApiError> {
    args.validate().map_err(ApiError::task)?;
    let client = shared.client.get().ok_or_else(ApiError::not_connected)?;
    let fee = match fee {
        Some(fee) => fee,
        None => client.default_fee(args).await.map_err(ApiError::app)?,
    };
    let gate = shared.submitting.read().await;
    if shared.stopping.load(Ordering::SeqCst) {
        return Err(ApiError::stopping());
    }
    shared
        .store
        .reserve(&key.id, fee)
        .await?
        .map_err(ApiError::quota)?;
    let canonical = String::from_utf8(args.to_canonical_json())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("canonical JSON is not UTF-8: {e}")))?;
    // Where a restarted bridge looks for this create_task should it stop
    // before the answer is recorded.
    let after = match client.finalized_block().await {
        Ok(after) => after,
        Err(e) => {
            let _ = shared.store.release(&key.id, fee).await;
            return Err(ApiError::app(e));
        }
    };
    let mut row = TaskRow::submitting(&key.id, canonical, fee, after);
    if let Err(e) = shared.store.insert_task(&row).await {
        let _ = shared.store.release(&key.id, fee).await;
        return Err(e.into());
    }
    let pending = worker::create(shared, client, &row, args)
        .await
        .map_err(|e| {
            let mut error = ApiError::app(e);
            error.message = format!("task {}: {}", row.id, error.message);
            error
        })?;
    drop(gate);
    row.task_id = Some(pending.task_id);
    row.created_in = Some(pending.created_in);
    row.state = TaskState::Created;
    tracing::info!(
        id = row.id,
        task_id = pending.task_id,
        fee,
        key = key.id,
        "task created"
    );
    shared.drive(row.clone());
    Ok(row)
}

async fn view(shared: &Shared, row: TaskRow, base: &str) -> Result<TaskView, ApiError> {
    let mut nodes = row.nodes.clone();
    let mut stage = row.state.as_str().to_owned();
    if let (false, Some(task_id), Some(client)) =
        (row.state.is_final(), row.task_id, shared.client.get())
    {
        // Best effort: the chain's view of a task in flight.
        if let Ok(Ok(task)) =
            tokio::time::timeout(Duration::from_secs(5), client.task(task_id)).await
        {
            stage = match task.status {
                TaskStatus::Queued => "queued",
                TaskStatus::Running => "running",
                TaskStatus::Succeeded => "succeeded",
                TaskStatus::Completed => "completed",
                TaskStatus::Aborted(_) => "aborted",
            }
            .into();
            if !task.nodes.is_empty() {
                nodes = task.nodes.iter().map(ss58).collect();
            }
        }
    }
    let images = if row.state == TaskState::Completed {
        let count = shared.store.image_count(&row.id).await?;
        (0..count)
            .map(|n| format!("{base}/v1/tasks/{}/images/{n}", row.id))
            .collect()
    } else {
        Vec::new()
    };
    Ok(TaskView {
        result: row.phashes(),
        id: row.id,
        status: row.state,
        stage,
        task_id: row.task_id,
        fee: row.fee.to_string(),
        fee_tokens: format_tokens(row.fee),
        nodes,
        error: row.error,
        images,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub(crate) fn json(value: &impl Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

// ---- Handlers ----

/// Create a task from the reference task JSON; the bridge pays its fee.
///
/// Answers once `create_task` is in a block; the bridge then uploads the
/// arguments, follows the task and stores its images in the background.
#[utoipa::path(
    post,
    path = "/v1/tasks",
    request_body(
        content = Object,
        description = "A Stable Diffusion task in the reference format: the JSON Schema \
                       sdk/schema/stable-diffusion-task.schema.json",
        content_type = "application/json"
    ),
    params(
        ("fee" = Option<String>, Query, description = "The fee to escrow, smallest unit; the contract's minimum per image when absent"),
        ("x-hydrogen-fee" = Option<String>, Header, description = "The fee, when not in the query")
    ),
    responses(
        (status = 201, description = "Created on chain", body = CreatedTask),
        (status = 400, description = "Invalid task; `path` is the JSON path", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = ErrorBody),
        (status = 402, description = "The bridge's account cannot pay the fee (`insufficient_funds`)", body = ErrorBody),
        (status = 422, description = "The contract refused (e.g. the fee is below the minimum)", body = ErrorBody),
        (status = 429, description = "The API key's quota would be exceeded", body = ErrorBody),
        (status = 503, description = "The chain is unreachable", body = ErrorBody)
    )
)]
async fn post_task(
    shared: Arc<Shared>,
    auth: Option<String>,
    fee: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_task",
            "the body is not UTF-8",
        )
        .at("")
    })?;
    let args = TaskArgs::from_json(text).map_err(ApiError::task)?;
    let fee = parse_fee(fee)?;
    let row = submit(&shared, &key, &args, fee).await?;
    Ok(json(
        &CreatedTask {
            id: row.id,
            task_id: row.task_id.unwrap_or_default(),
            fee: row.fee.to_string(),
            status: row.state,
        },
        StatusCode::CREATED,
    ))
}

/// The API key's 50 most recent tasks.
#[utoipa::path(
    get,
    path = "/v1/tasks",
    responses(
        (status = 200, body = TaskList),
        (status = 401, body = ErrorBody)
    )
)]
async fn list_tasks(
    shared: Arc<Shared>,
    auth: Option<String>,
    host: Option<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let base = base_url(&shared, host);
    let mut tasks = Vec::new();
    for row in shared.store.tasks_of(&key.id, 50).await? {
        tasks.push(view(&shared, row, &base).await?);
    }
    Ok(json(&TaskList { tasks }, StatusCode::OK))
}

/// A task: status, stage, chain task id, nodes, fee, error, result, image URLs.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}",
    params(("id" = String, Path, description = "The bridge's task id")),
    responses(
        (status = 200, body = TaskView),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such task for this API key", body = ErrorBody)
    )
)]
async fn get_task(
    shared: Arc<Shared>,
    auth: Option<String>,
    host: Option<String>,
    id: String,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let row = task_of(&shared, &key, &id).await?;
    let base = base_url(&shared, host);
    Ok(json(&view(&shared, row, &base).await?, StatusCode::OK))
}

/// Image `n` of a completed task, PNG. Needs no API key: the task id is the
/// capability.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/images/{n}",
    params(
        ("id" = String, Path, description = "The bridge's task id"),
        ("n" = usize, Path, description = "The image's index, from 0")
    ),
    responses(
        (status = 200, content_type = "image/png", body = Vec<u8>),
        (status = 404, body = ErrorBody)
    ),
    security(())
)]
async fn get_image(shared: Arc<Shared>, id: String, n: usize) -> Result<Response, ApiError> {
    let png = shared
        .store
        .image(&id, n)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("image {n} of task {id}")))?;
    let mut response = Response::new(png.into());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("image/png"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// Cancel a task: a queued one at once (its fee comes back less 1 %), a
/// started one only past its deadline.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/cancel",
    params(("id" = String, Path, description = "The bridge's task id")),
    responses(
        (status = 202, description = "Cancelled on chain; the status follows", body = TaskView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Finished, still submitting, or started and not past its deadline", body = ErrorBody)
    )
)]
async fn cancel_task(
    shared: Arc<Shared>,
    auth: Option<String>,
    host: Option<String>,
    id: String,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let row = task_of(&shared, &key, &id).await?;
    if row.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_final",
            format!("task {id} is already {}", row.state.as_str()),
        ));
    }
    let Some(task_id) = row.task_id else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "submitting",
            format!("task {id} is still being submitted; retry shortly"),
        ));
    };
    let client = shared.client.get().ok_or_else(ApiError::not_connected)?;
    client.cancel(task_id).await.map_err(|e| match e {
        AppError::Chain(c @ ChainError::Contract { .. }) => ApiError::new(
            StatusCode::CONFLICT,
            "cannot_cancel",
            format!(
                "{c} (a queued task can be cancelled at once, a started one only past its \
                 deadline)"
            ),
        ),
        e => ApiError::app(e),
    })?;
    let base = base_url(&shared, host);
    let row = task_of(&shared, &key, &id).await?;
    Ok(json(
        &view(&shared, row, &base).await?,
        StatusCode::ACCEPTED,
    ))
}

/// The task's progress as Server-Sent Events, in order, ending with a
/// terminal event (`completed`, `aborted`, `cancelled` or `failed`).
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/events",
    params(("id" = String, Path, description = "The bridge's task id")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "Events named by their `type`, data a TaskEvent", body = events::TaskEvent),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
async fn task_events(
    shared: Arc<Shared>,
    auth: Option<String>,
    host: Option<String>,
    id: String,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let row = task_of(&shared, &key, &id).await?;
    let base = base_url(&shared, host);
    Ok(events::reply(shared, row.id, base))
}

/// OpenAI-compatible image generation: creates a task, waits for its
/// images and answers as OpenAI's images API does.
#[utoipa::path(
    post,
    path = "/v1/images/generations",
    request_body = GenerationRequest,
    responses(
        (status = 200, body = GenerationResponse),
        (status = 400, description = "Invalid request; `path` names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 402, description = "The bridge's account cannot pay the fee", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, description = "The network did not deliver (aborted, failed)", body = ErrorBody),
        (status = 504, description = "Not done within the bridge's generation timeout; the task goes on", body = ErrorBody)
    )
)]
async fn generations(
    shared: Arc<Shared>,
    auth: Option<String>,
    host: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authenticate(&shared, auth).await?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let request: GenerationRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            e.inner().to_string(),
        )
        .at(if path == "." { String::new() } else { path })
    })?;
    let args = request
        .to_task_args(&shared.config.default_model)
        .map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.message).at(e.param)
        })?;
    let fee = parse_fee(request.fee.clone())?;
    let row = submit(&shared, &key, &args, fee).await?;
    let until = Instant::now() + shared.config.generation_timeout;
    let row = loop {
        let now = shared
            .store
            .task(&row.id)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("task {}", row.id)))?;
        if now.state.is_final() {
            break now;
        }
        if Instant::now() > until || shared.stopping.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "task {} is not done yet; follow it at /v1/tasks/{}",
                    row.id, row.id
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if row.state != TaskState::Completed {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "task_not_completed",
            format!(
                "task {} {}: {}",
                row.id,
                row.state.as_str(),
                row.error.as_deref().unwrap_or("no reason recorded")
            ),
        ));
    }
    let base = base_url(&shared, host);
    let count = shared.store.image_count(&row.id).await?;
    let mut data = Vec::with_capacity(count);
    for n in 0..count {
        data.push(
            match request.response_format.unwrap_or(ResponseFormat::Url) {
                ResponseFormat::Url => ImageData {
                    url: Some(format!("{base}/v1/tasks/{}/images/{n}", row.id)),
                    b64_json: None,
                },
                ResponseFormat::B64Json => {
                    let png = shared.store.image(&row.id, n).await?.unwrap_or_default();
                    ImageData {
                        url: None,
                        b64_json: Some(base64::engine::general_purpose::STANDARD.encode(png)),
                    }
                }
            },
        );
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json(&GenerationResponse { created, data }, StatusCode::OK))
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")),
    security(())
)]
fn openapi() -> Response {
    let mut response = Response::new(openapi_json().into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
