//! The web pages in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver, against a local network
//! (dev chain, contract, relay, `hydrogen-node` daemons on the trained
//! shapes model).
//!
//! - The bridge's Image Generator (`/`): opened with the API key in the URL's
//!   fragment, it refuses an invalid task with the error's JSON path, then
//!   generates an image whose pHash matches the one the nodes agreed on.
//! - A node's web UI: with the control token entered, Pause and Resume
//!   change the node's status on chain.
//!
//! Screenshots go to `$CARGO_TARGET_DIR/browser-screenshots/` (or
//! `target/browser-screenshots/`). Without Chromium the tests skip with a
//! message, unless `HYDROGEN_REQUIRE_CHAIN=1` (CI), where they fail.
//! `HYDROGEN_CHROMIUM` and `HYDROGEN_CHROMEDRIVER` override the binaries'
//! paths (`/usr/bin/chromium`, `/usr/bin/chromedriver`).

mod support;

use base64::Engine as _;
use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::types::NodeStatus;
use hydrogen_tests::localnet::{self, LocalNet, Options};
use hydrogen_tests::{bundle_path, chain_required, shared_node};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::bridge::start_bridge;

/// One browser at a time: each test also runs a network, and the machine
/// may have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a page may take to show what a test waits for (a diffusion
/// task on a busy CPU included).
const PAGE_WAIT: Duration = Duration::from_secs(30);
const TASK_WAIT: Duration = Duration::from_secs(300);

fn binary(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/browser-screenshots`, else
/// the workspace's `target/browser-screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("browser-screenshots")
}

/// Headless Chromium behind its own chromedriver.
struct Browser {
    client: WebDriver,
    driver: tokio::process::Child,
    /// The profile (`--user-data-dir`) and chromedriver's log.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session; `None` (the
    /// test should return) when Chromium is not installed and
    /// [`chain_required`] is not set; panics if it is.
    async fn start() -> Option<Browser> {
        let chromium = binary("HYDROGEN_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("HYDROGEN_CHROMEDRIVER", "/usr/bin/chromedriver");
        for path in [&chromium, &chromedriver] {
            if !path.exists() {
                let why = format!(
                    "no {} (install Debian's chromium and chromium-driver: scripts/install.sh)",
                    path.display()
                );
                assert!(!chain_required(), "{why}");
                eprintln!("skipped: {why}");
                return None;
            }
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log file");
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // Its own process group, so that Drop can stop Chromium with it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = match http.get(format!("{webdriver}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|s| s["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < until,
                "chromedriver did not answer on {webdriver}: {}",
                std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = dir.path().join("profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Without the background-networking switches Chromium keeps
                // calling Google's services, and on a closed network its
                // connections are refused.
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session: {e}\n{}",
                    std::fs::read_to_string(dir.path().join("chromedriver.log"))
                        .unwrap_or_default()
                )
            });
        Some(Browser {
            client,
            driver,
            _dir: dir,
        })
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Replaces an input's value as a person would: clear, then type.
    async fn fill(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap_or_else(|e| panic!("{css}: {e}"));
        input
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    async fn script(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Polls `check` (a script's value) until it is `Some`, for up to
    /// `within`; panics with `what` and the page's text otherwise.
    async fn wait_until<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl AsyncFnMut(&Browser) -> Option<T>,
    ) -> T {
        let until = Instant::now() + within;
        loop {
            if let Some(value) = check(self).await {
                return value;
            }
            if Instant::now() > until {
                let page = self.text("body").await;
                let name: String = what
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .take(60)
                    .collect();
                self.screenshot(&format!("failed-{name}")).await;
                panic!("{what}: not within {within:?}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves the page as `<screenshot dir>/<name>.png`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot");
        eprintln!("screenshot {}", path.display());
        path
    }

    /// Ends the session (chromedriver stops Chromium), then chromedriver.
    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    /// A test that panicked never called `close`: stop chromedriver's whole
    /// process group, Chromium with it.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            if pid > 1 {
                // SAFETY: kill(2) has no memory effects; -pid names the
                // process group the driver was started in (its own).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
    }
}

async fn wait_text(browser: &Browser, css: &str, want: &str, within: Duration) -> String {
    let what = format!("{css} shows {want:?}");
    browser
        .wait_until(&what, within, async |b| {
            let text = b.find(css).await.text().await.ok()?;
            text.contains(want).then_some(text)
        })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_generator_page_generates_a_verified_image() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = Options::new("browser/generator", dir.path(), 3);
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));
    let (bridge, _, key) = start_bridge(&net, dir.path(), "browser").await;

    // The key comes in the fragment, as `scripts/run.sh --web` prints it;
    // the page keeps it and drops it from the address bar.
    browser.goto(&format!("{}/#key={key}", bridge.url())).await;
    let account = ss58(&hydrogen_sdk::chain::account_of(&net.apps[0]));
    wait_text(&browser, "#account", &account, PAGE_WAIT).await;
    // The network's state beside it: the three nodes, none busy yet.
    wait_text(&browser, "#account", "3 of 3 nodes free", PAGE_WAIT).await;
    let address = browser.client.current_url().await.unwrap();
    assert_eq!(address.fragment(), None, "{address}");
    assert!(!browser
        .find("#key-section")
        .await
        .is_displayed()
        .await
        .unwrap());
    browser.screenshot("generator-start").await;

    // A width that is not a multiple of 8: the browser's own form
    // validation stops it before any request.
    browser.fill("#width", "60").await;
    browser.click("#generate").await;
    let valid = browser
        .script("return document.getElementById('width').checkValidity()")
        .await;
    assert_eq!(valid, json!(false));
    assert!(!browser
        .find("#progress")
        .await
        .is_displayed()
        .await
        .unwrap());
    browser.fill("#width", "64").await;

    // The same task sent by hand shows the bridge's error and its JSON path.
    let answer = browser
        .script(
            "const t = buildTask(); t.task_config.image_width = 60; \
             return api('POST', '/v1/tasks', t).then(() => 'created', (e) => { showError(e); return e.path; });",
        )
        .await;
    assert_eq!(answer, json!("task_config.image_width"));
    let error = wait_text(
        &browser,
        "#error",
        "(at task_config.image_width)",
        PAGE_WAIT,
    )
    .await;
    assert!(error.starts_with("The task is invalid:"), "{error}");
    assert!(error.contains("multiple of 8"), "{error}");
    browser.screenshot("generator-invalid-width").await;

    // A model the network cannot run yet, through the form itself.
    browser
        .fill("#base-model", "stabilityai/stable-diffusion-xl-base-1.0")
        .await;
    browser.click("#generate").await;
    let error = wait_text(&browser, "#error", "(at base_model.name)", PAGE_WAIT).await;
    assert!(
        error.starts_with("The network cannot run this task yet:"),
        "{error}"
    );
    assert!(!browser
        .find("#progress")
        .await
        .is_displayed()
        .await
        .unwrap());
    browser.screenshot("generator-unsupported-model").await;

    // The real thing: the form's defaults (the shapes model, 64x64, one
    // image), few steps.
    browser.fill("#base-model", localnet::SHAPES_MODEL).await;
    browser.fill("#steps", "4").await;
    browser.fill("#seed", "7").await;
    browser.fill("#num-images", "1").await;
    browser.click("#generate").await;
    assert!(!browser.find("#error").await.is_displayed().await.unwrap());
    // The stage list follows the task: each stage done in turn.
    let mut furthest = 0;
    let mut screenshot_taken = false;
    let figure = browser
        .wait_until("a verified image in the gallery", TASK_WAIT, async |b| {
            if let Ok(figure) = b.client.find(Locator::Css("figure.result")).await {
                return Some(figure);
            }
            let error = b.find("#error").await;
            if error.is_displayed().await.unwrap_or(false) {
                panic!(
                    "the page shows an error: {}\n{}",
                    error.text().await.unwrap_or_default(),
                    net.logs()
                );
            }
            let done = b
                .client
                .find_all(Locator::Css("#stages li.done"))
                .await
                .map_or(0, |l| l.len());
            furthest = furthest.max(done);
            if done >= 1 && !screenshot_taken {
                screenshot_taken = true;
                b.screenshot("generator-progress").await;
            }
            None
        })
        .await;
    let stages = browser
        .client
        .find_all(Locator::Css("#stages li.done"))
        .await
        .unwrap();
    assert_eq!(stages.len(), 4, "every stage done");
    assert!(furthest >= 1, "progress was shown before the image");
    let status = browser.text("#status-line").await;
    assert!(status.starts_with("completed"), "{status}");
    let nodes = browser
        .client
        .find_all(Locator::Css("#nodes li"))
        .await
        .unwrap();
    assert_eq!(nodes.len(), 3, "the three selected nodes are listed");

    let phash = figure
        .attr("data-phash")
        .await
        .unwrap()
        .expect("data-phash");
    assert_eq!(phash.len(), 16, "{phash}");
    // The bridge's record of the task, and the PNG it serves at the URL the
    // page downloaded.
    let tasks: Value = reqwest::Client::new()
        .get(format!("{}/v1/tasks", bridge.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = &tasks["tasks"][0];
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"], json!([phash]), "{task}");
    let png = reqwest::get(task["images"][0].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let image = image::load_from_memory(&png).expect("a PNG");
    assert_eq!(
        hex::encode(hydrogen_sdk::phash::phash_dynamic(&image)),
        phash
    );
    // The page shows those pixels: its <img> (a blob: URL) drawn on a
    // canvas and read back.
    let shown = browser
        .script(
            "const img = document.querySelector('figure.result img');
             if (!img.complete || img.naturalWidth === 0) return null;
             const canvas = document.createElement('canvas');
             canvas.width = img.naturalWidth;
             canvas.height = img.naturalHeight;
             const context = canvas.getContext('2d');
             context.drawImage(img, 0, 0);
             const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
             let s = '';
             for (const b of rgba) s += String.fromCharCode(b);
             return [canvas.width, canvas.height, btoa(s)];",
        )
        .await;
    assert_eq!(shown[0], 64, "{shown}");
    assert_eq!(shown[1], 64, "{shown}");
    let rgba = base64::engine::general_purpose::STANDARD
        .decode(shown[2].as_str().expect("base64"))
        .expect("base64");
    let expected = image.to_rgba8().into_raw();
    let off = rgba
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a.abs_diff(**b) > 1)
        .count();
    assert_eq!(rgba.len(), expected.len());
    assert_eq!(off, 0, "the page's pixels differ from the PNG's");
    let caption = browser.text("figure.result figcaption").await;
    assert!(caption.contains(&phash), "{caption}");
    let download = browser
        .find("figure.result a[download]")
        .await
        .attr("download")
        .await
        .unwrap();
    assert_eq!(
        download,
        Some(format!("hydrogen-{}-0.png", task["task_id"])),
        "{task}"
    );
    browser.screenshot("generator-done").await;

    browser.close().await;
    bridge.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_web_ui_pauses_and_resumes_the_node() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let token = "browser-control-token-0123456789";
    let mut options = Options::new("browser/node-ui", dir.path(), 1);
    options.apps = 0;
    options.web_ui = Some(token.into());
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));
    let daemon = &net.daemons[0];
    let node = daemon.account();
    let on_chain = async || {
        net.hydrogen
            .node_info(node)
            .await
            .expect("node")
            .expect("joined")
            .status
    };
    let page = daemon.web_url().expect("a web UI");

    browser.goto(&page).await;
    wait_text(&browser, "#node-status", "Available", PAGE_WAIT).await;
    wait_text(&browser, "#daemon", "running", PAGE_WAIT).await;
    assert_eq!(browser.text("#account").await, ss58(&node));
    // Control is on, read-only until the token is entered.
    browser
        .wait_until("the control section", PAGE_WAIT, async |b| {
            b.find("#control-on")
                .await
                .is_displayed()
                .await
                .unwrap_or(false)
                .then_some(())
        })
        .await;
    let pause = "button[data-action=pause]";
    assert!(!browser.find(pause).await.is_enabled().await.unwrap());
    browser.screenshot("node-read-only").await;

    browser.fill("#token", token).await;
    browser.click("#token-save").await;
    assert!(browser.find(pause).await.is_enabled().await.unwrap());
    assert_eq!(on_chain().await, NodeStatus::Available);

    for (action, expected) in [("pause", "Paused"), ("resume", "Available")] {
        browser
            .click(&format!("button[data-action={action}]"))
            .await;
        let result = wait_text(
            &browser,
            "#control-result",
            &format!("{action}: done"),
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(
            result,
            format!("{action}: done; node status {expected}"),
            "{}",
            net.logs()
        );
        wait_text(&browser, "#node-status", expected, PAGE_WAIT).await;
        assert_eq!(format!("{:?}", on_chain().await), expected, "{action}");
        browser.screenshot(&format!("node-{action}d")).await;
    }

    browser.close().await;
    net.shutdown().await;
}
