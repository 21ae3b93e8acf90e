//! A `hydrogen-bridge serve` process of its own on a [`LocalNet`], set up
//! through the bridge's CLI as an operator would (`init-key --import` of the
//! network's funded app account, `keys create`): for `hydrogen-localnet
//! --web` and for the tests that kill a bridge (SIGKILL) and start it again
//! on the same data directory.

use crate::localnet::{bridge_binary, LocalNet, Result};
use hydrogen_sdk::chain::{account_of, ss58};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running bridge process, killed when dropped.
pub struct BridgeProcess {
    child: Child,
    /// `serve`'s arguments, to start it again the same way.
    serve: Vec<String>,
    /// Its data directory (key file, SQLite database, log).
    pub dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    /// An API key `keys create` made for it (name `web`).
    pub api_key: String,
    /// Its database URL.
    pub database: String,
    /// The app account it pays from (SS58).
    pub account: String,
}

impl BridgeProcess {
    /// Imports `net`'s first app account into `dir/key.json`, creates an API
    /// key and serves on `listen` (a fixed port) with `default_model`, on
    /// `database` (default: SQLite in `dir`), with `serve_flags` added to
    /// `serve`'s; returns once `/v1/network` answers (the chain is reached).
    pub async fn start(
        net: &LocalNet,
        dir: &Path,
        listen: SocketAddr,
        default_model: &str,
        database: Option<&str>,
        serve_flags: &[&str],
    ) -> Result<BridgeProcess> {
        std::fs::create_dir_all(dir)?;
        let data_dir = utf8(dir)?;
        let sqlite = format!("sqlite://{data_dir}/bridge.db?mode=rwc");
        let database = database.unwrap_or(&sqlite);
        let key_file = dir.join("key.json");
        let key_path = utf8(&key_file)?;
        let app_suri = format!("//{}/app0", net.options.name);
        let account = ss58(&account_of(&net.apps[0]));
        let written = cli(
            &[
                "--data-dir",
                data_dir,
                "init-key",
                "--import",
                "--key-file",
                key_path,
            ],
            &format!("{app_suri}\n"),
        )
        .await?;
        if !written.contains(&account) {
            return Err(
                format!("the bridge's key is not the app account {account}: {written}").into(),
            );
        }
        let created = cli(
            &[
                "--data-dir",
                data_dir,
                "--database",
                database,
                "keys",
                "create",
                "--name",
                "web",
            ],
            "",
        )
        .await?;
        let api_key = created
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("hyd_"))
            .ok_or_else(|| format!("no API key in: {created}"))?
            .to_owned();
        let contract = ss58(&net.hydrogen.address());
        let serve: Vec<String> = [
            "--data-dir",
            data_dir,
            "--database",
            database,
            "serve",
            "--chain",
            &net.chain_url,
            "--relay",
            &net.relay_url(),
            "--contract",
            &contract,
            "--key-file",
            key_path,
            "--listen",
            &listen.to_string(),
            "--default-model",
            default_model,
        ]
        .iter()
        .chain(serve_flags)
        .map(|s| s.to_string())
        .collect();
        let child = spawn(&serve, dir)?;
        let mut bridge = BridgeProcess {
            child,
            serve,
            dir: dir.to_owned(),
            addr: listen,
            api_key,
            database: database.to_owned(),
            account,
        };
        bridge.wait_ready().await?;
        Ok(bridge)
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its instance id (`<data dir>/instance-id`, written at its first start).
    pub fn instance(&self) -> String {
        std::fs::read_to_string(self.dir.join("instance-id"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bridge.log")).unwrap_or_default()
    }

    /// Waits until `/v1/network` answers 200 (the bridge reached the
    /// chain); returns that answer. Fails when the process exits first or
    /// after 60 s.
    pub async fn wait_ready(&mut self) -> Result<serde_json::Value> {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = http
                .get(format!("{}/v1/network", self.url()))
                .bearer_auth(&self.api_key)
                .send()
                .await
            {
                if response.status().is_success() {
                    return Ok(response.json().await?);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("the bridge exited ({status}); its log:\n{}", self.log()).into(),
                );
            }
            if Instant::now() > until {
                return Err(
                    format!("the bridge did not answer on {} within 60 s", self.url()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits for the process to exit by itself.
    pub async fn exited(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// SIGKILL: no cleanup of any kind, as a crash or an OOM kill.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Starts it again with the same arguments, after [`kill`](Self::kill)
    /// or [`stop`](Self::stop); returns once it answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.child = spawn(&self.serve, &self.dir)?;
        self.wait_ready().await?;
        Ok(())
    }

    /// SIGTERM (the bridge records the tasks in flight, then exits); SIGKILL
    /// after 15 s.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn utf8(path: &Path) -> Result<&str> {
    Ok(path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?)
}

/// `hydrogen-bridge <serve>`, its output appended to `dir/bridge.log`.
fn spawn(serve: &[String], dir: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bridge.log"))?;
    Ok(Command::new(bridge_binary())
        .args(serve)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bridge_binary().display()))?)
}

/// Runs a `hydrogen-bridge` command to completion with `stdin` as its input;
/// returns its standard output.
async fn cli(args: &[&str], stdin: &str) -> Result<String> {
    crate::localnet::run_cli(&bridge_binary(), args, stdin).await
}
