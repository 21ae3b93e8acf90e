//! nginx (Debian's `nginx-light`) on loopback, in the foreground, with a
//! configuration of its own folder: a static file server with WebDAV
//! uploads (the relay benchmark's reference), or a load balancer in front
//! of relay replicas (the replica tests and benchmark).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
}

impl Drop for Nginx {
    /// SIGTERM, nginx's fast shutdown: the master stops its workers, then
    /// exits. (SIGKILL would orphan the workers, which keep their ports and
    /// any pipe they inherited, so a `cmd | tee` around the tests would
    /// never end.)
    fn drop(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port free now, for a server about to bind it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `nginx` is on PATH.
pub fn installed() -> bool {
    Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Nginx {
    /// Serves `dir/www` on a free port: `GET /<file>`, and `PUT /up/<name>`
    /// (WebDAV: a temporary file, then a rename).
    pub fn static_files(dir: &Path) -> Nginx {
        std::fs::create_dir_all(dir.join("www/up")).unwrap();
        let site = format!(
            r#"    sendfile on;
    server {{
        listen 127.0.0.1:{{port}};
        root {dir}/www;
        location /up/ {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}"#,
            dir = dir.display()
        );
        Nginx::start(dir, free_port(), &site)
    }

    /// Balances requests over `upstreams` (round robin) on `port`, as a
    /// relay service's front: the client's `Host` goes on (requests are
    /// signed for it), the path is not rewritten, uploads stream through
    /// (an upload reaches the relay as it is sent, so its limits and
    /// back-pressure hold), downloads pass through 1 MiB of memory buffers
    /// per connection (never a temporary file), and connections to the
    /// relays are kept alive.
    pub fn balancer(dir: &Path, port: u16, upstreams: &[SocketAddr]) -> Nginx {
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        let site = format!(
            r#"    upstream relays {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{{port}};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffers 16 64k;
        proxy_busy_buffers_size 256k;
        proxy_max_temp_file_size 0;
        location / {{
            proxy_pass http://relays;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}"#
        );
        Nginx::start(dir, port, &site)
    }

    fn start(dir: &Path, port: u16, site: &str) -> Nginx {
        let site = site.replace("{port}", &port.to_string());
        let conf = format!(
            r#"daemon off;
# Workers write request bodies under a root-only temporary directory
# (ignored, with a warning, when not run as root).
user root;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    client_max_body_size 17m;
{site}
}}
"#,
            dir = dir.display()
        );
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        // Its logs go to files; no process of it holds the tests' output.
        let child = Command::new("nginx")
            .args(["-e", &format!("{}/error.log", dir.display()), "-c"])
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx on PATH (apt-get install -y nginx-light)");
        // Owned at once, so that it is killed and reaped on every path.
        let nginx = Nginx { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not start; see {}/error.log", dir.display());
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
