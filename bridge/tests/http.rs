//! The HTTP API without a chain: authentication, validation errors with
//! their JSON paths, and the answers that need the chain while the bridge
//! has not reached it. A real bridge on a real SQLite database (and, for a
//! restart, on a real PostgreSQL server); the chain URL points at a closed
//! port.

#[path = "support/postgres.rs"]
mod postgres;

use hydrogen_bridge::{start, Config, RunningBridge};
use hydrogen_sdk::chain::{account_of, keypair_from_suri, ss58};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Bridge {
    _dir: tempfile::TempDir,
    bridge: RunningBridge,
    key: String,
    http: reqwest::Client,
}

async fn bridge() -> Bridge {
    let dir = tempfile::tempdir().unwrap();
    let contract = ss58(&account_of(&keypair_from_suri("//NoContract").unwrap()));
    let mut config = Config::new(
        "ws://127.0.0.1:1",
        "http://127.0.0.1:1",
        &contract,
        &format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display()),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    let bridge = start(config, keypair_from_suri("//BridgeApp").unwrap())
        .await
        .unwrap();
    let (_, key) = bridge
        .store()
        .create_key("test", Some(5), None)
        .await
        .unwrap();
    Bridge {
        _dir: dir,
        bridge,
        key,
        http: reqwest::Client::new(),
    }
}

impl Bridge {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bridge.url())
    }

    async fn post(&self, path: &str, key: Option<&str>, body: String) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn task() -> Value {
    json!({
        "base_model": "runwayml/stable-diffusion-v1-5",
        "prompt": "a cat",
        "task_config": {"num_images": 1}
    })
}

fn error(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap(),
        body["error"]["path"].as_str().unwrap_or("<none>"),
    )
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let b = bridge().await;
    let (status, body) = b.post("/v1/tasks", None, task().to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error(&body).0, "unauthenticated");
    assert_eq!(body["error"]["type"], "authentication_error");

    let (status, _) = b
        .post("/v1/tasks", Some("hyd_wrong"), task().to_string())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = b.get("/v1/network", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = b
        .post(
            "/v1/images/generations",
            None,
            json!({"prompt": "x"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (revoked, secret) = b
        .bridge
        .store()
        .create_key("old", None, None)
        .await
        .unwrap();
    b.bridge.store().revoke_key(&revoked.id).await.unwrap();
    let (status, body) = b.get("/v1/tasks", Some(&secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));

    let (status, body) = b.get("/v1/tasks", Some(&b.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tasks"], json!([]));
    b.bridge.shutdown().await;
}

#[tokio::test]
async fn invalid_tasks_are_refused_with_the_json_path() {
    let b = bridge().await;
    let key = Some(b.key.as_str());
    let mut steps = task();
    steps["task_config"]["steps"] = json!(0);
    let mut unknown = task();
    unknown["task_config"]["sampler"] = json!("ddim");
    let mut sdxl = task();
    sdxl["base_model"] = json!("stabilityai/stable-diffusion-xl-base-1.0");
    for (body, code, path) in [
        (steps.to_string(), "invalid_task", "task_config.steps"),
        (unknown.to_string(), "malformed_task", "task_config.sampler"),
        (sdxl.to_string(), "unsupported_task", "base_model"),
        ("not json".to_owned(), "malformed_task", ""),
    ] {
        let (status, answer) = b.post("/v1/tasks", key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(error(&answer), (code, path), "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
    }
    let (status, answer) = b.post("/v1/tasks", key, steps.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"]["message"],
        "task_config.steps: must be between 1 and 100, got 0"
    );

    // A valid task with a bad fee, then a valid one the bridge cannot pay
    // for while it has not reached the chain: nothing is recorded.
    let (status, answer) = b.post("/v1/tasks?fee=lots", key, task().to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&answer), ("invalid_fee", "fee"));
    let (status, answer) = b.post("/v1/tasks?fee=1000", key, task().to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(error(&answer).0, "chain_unavailable");
    let (_, list) = b.get("/v1/tasks", key).await;
    assert_eq!(list["tasks"], json!([]));
    b.bridge.shutdown().await;
}

#[tokio::test]
async fn openai_requests_are_checked_field_by_field() {
    let b = bridge().await;
    let key = Some(b.key.as_str());
    for (body, path) in [
        (json!({"prompt": "a fox", "steps": 0}), "steps"),
        (json!({"prompt": "a fox", "size": "500x512"}), "size"),
        (json!({"prompt": "a fox", "n": 99}), "n"),
        (
            json!({"prompt": "a fox", "response_format": "gif"}),
            "response_format",
        ),
        (json!({"prompt": "a fox", "sampler": "ddim"}), "sampler"),
        (json!({"n": 1}), ""),
    ] {
        let (status, answer) = b
            .post("/v1/images/generations", key, body.to_string())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(error(&answer).1, path, "{body}: {answer}");
    }
    b.bridge.shutdown().await;
}

#[tokio::test]
async fn unknown_tasks_routes_and_images_answer_json_404() {
    let b = bridge().await;
    let key = Some(b.key.as_str());
    let (status, body) = b.get("/v1/tasks/task_nope", key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body).0, "not_found");
    let (status, _) = b.get("/v1/tasks/task_nope/images/0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = b
        .post("/v1/tasks/task_nope/cancel", key, String::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = b.get("/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = b.get("/v1/network", key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error(&body).0, "chain_unavailable");

    let (status, doc) = b.get("/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let generated: Value = serde_json::from_str(&hydrogen_bridge::openapi_json()).unwrap();
    assert_eq!(doc, generated);
    b.bridge.shutdown().await;
}

#[tokio::test]
async fn a_task_left_submitting_waits_for_the_chain_to_be_settled() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());
    left_submitting_waits_for_the_chain(&url).await;
}

/// The same on a real PostgreSQL server (skipped when none is installed,
/// unless `HYDROGEN_REQUIRE_CHAIN=1`).
#[tokio::test]
async fn a_task_left_submitting_waits_for_the_chain_on_postgres() {
    if let Some(server) = postgres::Postgres::start().await {
        left_submitting_waits_for_the_chain(&server.url()).await;
    }
}

/// A row a stopped bridge left `submitting` is settled against the chain
/// (`tests/tests/bridge.rs`); while the chain is unreachable it stays as it
/// is: neither failed (it may have been paid) nor sent again.
async fn left_submitting_waits_for_the_chain(url: &str) {
    let store = hydrogen_bridge::Store::open(url).await.unwrap();
    let (key, secret) = store.create_key("app", None, None).await.unwrap();
    let row = hydrogen_bridge::store::TaskRow::submitting(&key.id, task().to_string(), 7, 3);
    store.insert_task(&row).await.unwrap();
    store.close().await;

    let contract = ss58(&account_of(&keypair_from_suri("//NoContract").unwrap()));
    let mut config = Config::new("ws://127.0.0.1:1", "http://127.0.0.1:1", &contract, url);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let bridge = start(config, keypair_from_suri("//BridgeApp").unwrap())
        .await
        .unwrap();
    let body: Value = reqwest::Client::new()
        .get(format!("{}/v1/tasks/{}", bridge.url(), row.id))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "submitting");
    assert_eq!(body["task_id"], Value::Null);
    assert_eq!(body["error"], Value::Null);
    bridge.shutdown().await;
}

#[tokio::test]
async fn the_image_generator_is_served_with_its_files_and_a_strict_policy() {
    let b = bridge().await;
    let page = b.http.get(b.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("Hydrogen Image Generator"));
    // Every file the page names is served, none from another origin.
    for path in ["/app/app.js", "/app/style.css"] {
        assert!(html.contains(path), "the page links {path}");
        let file = b.http.get(b.url(path)).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert!(!file.text().await.unwrap().is_empty(), "{path}");
    }
    for outside in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!html.contains(outside), "the page loads {outside}…");
    }
}
