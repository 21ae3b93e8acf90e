//! A `hydrogen-relay` process of its own, started from a configuration
//! file: for tests that kill a relay (SIGKILL) and for the benchmark, which
//! reads the relay's memory apart from its clients'.

use hydrogen_relay::Config;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running relay process, killed when dropped.
pub struct RelayProcess {
    child: Child,
    config_file: PathBuf,
    log: PathBuf,
    /// The address it listens on (`config.listen`, which must name a port).
    pub addr: std::net::SocketAddr,
}

impl RelayProcess {
    /// Writes `config` to `dir/<name>.toml` and starts the relay on it;
    /// returns once `/readyz` answers. Its log goes to `dir/<name>.log`.
    pub async fn start(dir: &Path, name: &str, config: &Config) -> RelayProcess {
        assert_ne!(
            config.listen.port(),
            0,
            "a relay process needs a fixed port"
        );
        let config_file = dir.join(format!("{name}.toml"));
        std::fs::write(&config_file, toml::to_string(config).expect("TOML")).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = spawn(&config_file, &log);
        let relay = RelayProcess {
            child,
            config_file,
            log,
            addr: config.listen,
        };
        relay.wait_ready().await;
        relay
    }

    async fn wait_ready(&self) {
        let ready = format!("{}/readyz", self.url());
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the relay did not get ready; its log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no cleanup of any kind, as a crash or an OOM kill.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill the relay");
        self.child.wait().await.expect("reap the relay");
    }

    /// Starts it again on the same configuration, after [`kill`](Self::kill).
    pub async fn restart(&mut self) {
        self.child = spawn(&self.config_file, &self.log);
        self.wait_ready().await;
    }

    /// Resident memory now (`VmRSS`) or at its peak since
    /// [`reset_peak`](Self::reset_peak) (`VmHWM`), KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Resets `VmHWM` to the current resident size (Linux's `clear_refs` 5).
    pub fn reset_peak(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }
}

fn spawn(config_file: &Path, log: &Path) -> Child {
    let binary = crate::localnet::relay_binary();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the relay's log file");
    Command::new(&binary)
        .arg("--config")
        .arg(config_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (cargo build -p hydrogen-relay, --release for the bench): {e}",
                binary.display()
            )
        })
}
