//! A real PostgreSQL server on loopback for the store's tests: Debian's
//! `postgresql` (the server binaries in `/usr/lib/postgresql/<version>/bin`,
//! installed by `scripts/install.sh`), in a temporary data directory, with
//! trust authentication and `fsync=off`, on a free port of 127.0.0.1 and its
//! socket in that directory. PostgreSQL refuses to run as root, so as root
//! the server runs as `nobody` (the data directory is handed to it).
//!
//! Included by several test crates (`#[path]`), each using part of it.
#![allow(dead_code)]

use sqlx::Connection;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The database every server gets, and its superuser.
const DATABASE: &str = "hydrogen";
const SUPERUSER: &str = "postgres";
/// Whom the server runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";

/// A running PostgreSQL server with an empty database [`DATABASE`],
/// stopped (`pg_ctl stop -m immediate`) and its files removed when dropped.
pub struct Postgres {
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    as_user: Option<&'static str>,
    pub port: u16,
    // Last: removed once the server is stopped.
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Whether the tests must run rather than skip (`HYDROGEN_REQUIRE_CHAIN=1`, CI).
fn required() -> bool {
    std::env::var("HYDROGEN_REQUIRE_CHAIN").is_ok_and(|v| v == "1")
}

/// The directory of `initdb`, `postgres` and `pg_ctl`: `$HYDROGEN_POSTGRES_BIN`,
/// else the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout, not
/// on PATH), else `initdb`'s directory on PATH.
fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "pg_ctl"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("HYDROGEN_POSTGRES_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            complete(&dir),
            "HYDROGEN_POSTGRES_BIN={} lacks initdb, postgres or pg_ctl",
            dir.display()
        );
        return Some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|dir| complete(dir)))
}

impl Postgres {
    /// Starts a server and creates its database, or `None` (the caller
    /// skips) when the server binaries are not installed; with
    /// `HYDROGEN_REQUIRE_CHAIN=1` (CI) missing binaries are a failure.
    pub async fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                !required(),
                "the PostgreSQL server is not installed: run scripts/install.sh \
                 (apt-get install -y postgresql)"
            );
            eprintln!("skipped: no PostgreSQL server (scripts/install.sh installs it)");
            return None;
        };
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let as_user = root.then_some(UNPRIVILEGED);
        let dir = tempfile::Builder::new()
            .prefix("hydrogen-postgres")
            .tempdir()
            .unwrap();
        if let Some(user) = as_user {
            let chowned = Command::new("chown")
                .args([&format!("{user}:"), &dir.path().display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(chowned, "cannot hand {} to {user}", dir.path().display());
        }
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");

        let initdb = run_as(as_user, &bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}/initdb: {e}", bin.display()));
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );

        let port = free_port();
        let log_file = std::fs::File::create(&log).unwrap();
        let child = run_as(as_user, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}/postgres: {e}", bin.display()));
        // Owned at once, so that it is stopped on every path.
        let server = Postgres {
            child,
            bin,
            data,
            as_user,
            port,
            _dir: dir,
        };

        let admin = format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres");
        for _ in 0..200 {
            if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin).await {
                sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                let _ = conn.close().await;
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The whole database as SQL (`pg_dump`): what its files hold.
    pub fn dump(&self) -> String {
        let dump = self
            .command("pg_dump")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, DATABASE])
            .output()
            .expect("pg_dump");
        assert!(
            dump.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
        String::from_utf8(dump.stdout).unwrap()
    }

    /// One of the server's programs, run as the server's user.
    fn command(&self, program: &str) -> Command {
        run_as(self.as_user, &self.bin.join(program))
    }
}

/// `program`, as `user` when given (`setpriv`, which execs it, so the child
/// is the program itself).
fn run_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(user) => {
            // The user's own group (`nogroup` for Debian's `nobody`).
            let group = Command::new("id")
                .args(["-g", user])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| panic!("no user {user}"));
            let mut command = Command::new("setpriv");
            command
                .args([
                    &format!("--reuid={user}"),
                    &format!("--regid={group}"),
                    "--clear-groups",
                ])
                .arg(program);
            command
        }
    }
}

/// A port free now, for a server about to bind it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
