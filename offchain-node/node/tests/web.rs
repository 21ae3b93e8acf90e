//! The status server's web side over real HTTP, without a chain: the page,
//! the log tail, the recent tasks, and the control endpoints' token checks,
//! with a stand-in for the daemon's side of the control channel.

use hydrogen_node::status::control::{Action, Control, Failure};
use hydrogen_node::status::logs::{self, LogBuffer};
use hydrogen_node::status::{Status, Web};
use hydrogen_node::store::{Store, Verdict};
use hydrogen_node::task::{TaskRecord, TaskState};
use serde_json::Value;
use std::net::SocketAddr;
use tracing_subscriber::layer::SubscriberExt;

const TOKEN: &str = "test-control-token-0123456789";

async fn start(web: Web) -> (String, Status) {
    let status = Status::new("5Account".into());
    status.update(|s| {
        s.node_status = Some("Available".into());
        s.gpu = "Test GPU".into();
    });
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bound = status.serve_web(any, web).await.unwrap();
    (format!("http://{bound}"), status)
}

/// What the daemon would do: answer each action with the status it leads to.
fn fake_daemon(token: &str) -> Control {
    let (control, mut requests) = Control::new(token).unwrap();
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let outcome = match request.action {
                Action::Pause => Ok(Some("Paused".to_owned())),
                Action::Resume | Action::Join => Ok(Some("Available".to_owned())),
                Action::Quit => Err(Failure::new(409, "the contract refused: WrongNodeStatus")),
            };
            let _ = request.reply.send(outcome);
        }
    });
    control
}

async fn post(url: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let response = request.send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap())
}

#[tokio::test]
async fn page_logs_tasks_and_control_with_the_token() {
    let buffer = LogBuffer::new(logs::CAPACITY);
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(logs::layer(buffer.clone())),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for id in [3, 9, 5] {
        store.put_task(&TaskRecord::selected(id, 1_000)).unwrap();
    }
    let mut aborted = TaskRecord::selected(7, 1_000);
    aborted.state = TaskState::Aborted("model missing".into());
    store.put_task(&aborted).unwrap();
    store
        .write(|w| w.put_verdict(9, &Verdict::paid(42)))
        .unwrap();
    let (base, _status) = start(Web {
        store: Some(store),
        logs: Some(buffer),
        control: Some(fake_daemon(TOKEN)),
    })
    .await;
    let http = reqwest::Client::new();

    // The page: one document, its script and style inline, locked down by CSP.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>hydrogen-node</title>"), "{html}");
    assert!(html.contains("fetch(\"/control/\"") && html.contains("sessionStorage"));
    assert!(!html.contains("/*APP_JS*/") && !html.contains("__UNIT__"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no CDN"
    );

    // /status still answers as before.
    let status: Value = get_json(&http, &format!("{base}/status")).await;
    assert_eq!(status["gpu"], "Test GPU");

    // The log tail holds what was logged, as plain text.
    tracing::info!(task = 12, "web test marker line");
    tracing::warn!("second marker");
    let logs: Value = get_json(&http, &format!("{base}/logs")).await;
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let at = lines
        .iter()
        .position(|l| l.contains("web test marker line") && l.contains("task=12"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        lines[at + 1].contains("WARN") && lines[at + 1].contains("second marker"),
        "{lines:?}"
    );
    let one: Value = get_json(&http, &format!("{base}/logs?lines=1")).await;
    assert_eq!(one["lines"].as_array().unwrap().len(), 1);

    // Recent tasks: newest first, with the chain's verdict, no secrets.
    let recent: Value = get_json(&http, &format!("{base}/tasks/recent")).await;
    let ids: Vec<u64> = recent
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [9, 7, 5, 3]);
    assert_eq!(recent[0]["verdict"]["verdict"], "paid");
    assert_eq!(recent[1]["detail"], "model missing");
    let two: Value = get_json(&http, &format!("{base}/tasks/recent?limit=2")).await;
    assert_eq!(two.as_array().unwrap().len(), 2);

    // Control: the UI learns it is on; no token or a wrong one is refused.
    let info: Value = get_json(&http, &format!("{base}/control")).await;
    assert_eq!(info["enabled"], true);
    let (code, body) = post(&format!("{base}/control/pause"), None).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["ok"], false);
    let (code, body) = post(
        &format!("{base}/control/pause"),
        Some("Bearer wrong-token-0123456789"),
    )
    .await;
    assert_eq!(code, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("wrong"), "{body}");
    let (code, _) = post(&format!("{base}/control/pause"), Some(TOKEN)).await;
    assert_eq!(code, 401, "the token without the Bearer scheme");
    let unauthorized = http
        .post(format!("{base}/control/pause"))
        .send()
        .await
        .unwrap();
    assert!(unauthorized.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    // With the token the daemon's answer comes back.
    let bearer = format!("Bearer {TOKEN}");
    let (code, body) = post(&format!("{base}/control/pause"), Some(&bearer)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"ok": true, "action": "pause", "node_status": "Paused"})
    );
    let (code, body) = post(&format!("{base}/control/resume"), Some(&bearer)).await;
    assert_eq!(
        (code, body["node_status"].as_str()),
        (200, Some("Available"))
    );
    let (code, body) = post(&format!("{base}/control/quit"), Some(&bearer)).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().contains("WrongNodeStatus"),
        "{body}"
    );
    let (code, body) = post(&format!("{base}/control/reboot"), Some(&bearer)).await;
    assert_eq!(code, 404, "{body}");
    // Control is POST only.
    let get = http
        .get(format!("{base}/control/pause"))
        .send()
        .await
        .unwrap();
    assert_ne!(get.status(), 200);
}

#[tokio::test]
async fn control_is_disabled_without_a_configured_token() {
    let (base, _status) = start(Web::default()).await;
    let http = reqwest::Client::new();
    let info: Value = get_json(&http, &format!("{base}/control")).await;
    assert_eq!(info["enabled"], false);
    for authorization in [None, Some("Bearer anything-at-all-0123456789")] {
        let (code, body) = post(&format!("{base}/control/pause"), authorization).await;
        assert_eq!(code, 403, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("control_token"),
            "{body}"
        );
    }
    // The page and the read-only endpoints still work, empty.
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        200
    );
    let logs: Value = get_json(&http, &format!("{base}/logs")).await;
    assert_eq!(logs["lines"], serde_json::json!([]));
    let recent: Value = get_json(&http, &format!("{base}/tasks/recent")).await;
    assert_eq!(recent, serde_json::json!([]));
    let missing = http.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn a_short_token_is_refused() {
    assert!(Control::new("short").is_err());
}

/// `GET url`, as JSON.
async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}
