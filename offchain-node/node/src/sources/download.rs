//! One file over HTTP(S), streamed to `<file>.part` and renamed into place
//! once complete and checked. A cut connection leaves the `.part` file: the
//! next attempt (in this call, or a later one) asks for the rest with
//! `Range: bytes=N-`. The caller holds the cache folder's lock.

use super::cache::{partial_path, publish};
use super::check::{check_file, check_prefix, Format, Refusal};
use super::SourceError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Attempts per file while each one makes progress (a flaky connection
/// that keeps cutting); an attempt that gets no byte ends the download.
const MAX_ATTEMPTS: usize = 8;
/// Write buffer: large writes, and at most this much lost on a crash.
const BUFFER: usize = 1 << 20;

/// Downloads files; cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    timeout: Duration,
    max_bytes: u64,
}

/// How one attempt ended, when not with the whole file.
struct Failed {
    error: SourceError,
    /// Whether another attempt is worth it now: this one added bytes to the
    /// `.part` file, or found it unusable and started it over.
    retry: bool,
    /// The server asked us to come back later (429, 5xx): retry after this.
    back_off: Option<Duration>,
}

/// The longest a `Retry-After` is waited for within one call, and how many
/// times: a server busier than that is a failure now (the task is the
/// node's local fault) and a later task's retry, before commit deadlines pass.
const MAX_BACK_OFF: Duration = Duration::from_secs(10);
const MAX_BUSY_RETRIES: u32 = 3;

impl Downloader {
    /// `timeout` bounds connecting and each wait for data, not the whole
    /// download (a large file on a slow link is fine while bytes flow).
    pub fn new(timeout: Duration, max_bytes: u64) -> Downloader {
        let client = reqwest::Client::builder()
            .user_agent(concat!("hydrogen-node/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build()
            .expect("the HTTP client builds (TLS backend present)");
        Downloader {
            client,
            timeout,
            max_bytes,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Fetches `url` into `dest` unless it is there already, checked as
    /// `format`. On an error nothing is at `dest`; a `.part` file is kept
    /// only when the error is a network one (to resume), never for a
    /// refused or oversized file.
    pub async fn fetch(&self, url: &Url, dest: &Path, format: Format) -> Result<(), SourceError> {
        if dest.is_file() {
            return Ok(());
        }
        let part = partial_path(dest);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SourceError::io(parent, e))?;
        }
        tracing::info!(%url, path = %dest.display(), "downloading");
        let started = Instant::now();
        let mut attempt = 1;
        let mut busy = 0;
        loop {
            match self.attempt(url, &part, format).await {
                Ok(()) => break,
                Err(f) if f.retry && attempt < MAX_ATTEMPTS => {
                    tracing::warn!(%url, attempt, error = %f.error, "download cut; resuming");
                    attempt += 1;
                }
                Err(Failed {
                    back_off: Some(wait),
                    error,
                    ..
                }) if busy < MAX_BUSY_RETRIES => {
                    tracing::warn!(%url, attempt, %error, secs = wait.as_secs_f32(), "server busy; trying again");
                    tokio::time::sleep(wait).await;
                    busy += 1;
                }
                Err(f) => {
                    if !f.error.is_transient() {
                        let _ = std::fs::remove_file(&part);
                    }
                    return Err(f.error);
                }
            }
        }
        let (url_text, dest_owned) = (url.to_string(), dest.to_owned());
        let bytes =
            tokio::task::spawn_blocking(move || finish(&url_text, &part, &dest_owned, format))
                .await
                .map_err(|e| SourceError::io(dest, std::io::Error::other(e)))??;
        tracing::info!(%url, path = %dest.display(), bytes, secs = started.elapsed().as_secs(), "downloaded");
        Ok(())
    }

    /// One request: appends to `part` from its current length.
    async fn attempt(&self, url: &Url, part: &Path, format: Format) -> Result<(), Failed> {
        let fail = |error| Failed {
            error,
            retry: false,
            back_off: None,
        };
        let mut offset = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut request = self.client.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| fail(self.network_error(url, e)))?;
        let status = response.status();
        match status {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let start = content_range(&response).map(|(start, _)| start);
                if start != Some(offset) {
                    // Not the rest we asked for: start over from nothing.
                    let _ = std::fs::remove_file(part);
                    return Err(Failed {
                        error: SourceError::Incomplete {
                            url: url.to_string(),
                            got: 0,
                            expected: None,
                        },
                        back_off: None,
                        retry: true,
                    });
                }
            }
            StatusCode::OK => {
                if offset > 0 {
                    tracing::info!(%url, "the server ignored the range; downloading from the start");
                    offset = 0;
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                // `bytes */<len>`: the `.part` file may already be whole.
                let total = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes */"))
                    .and_then(|v| v.parse::<u64>().ok());
                if total == Some(offset) {
                    return Ok(());
                }
                let _ = std::fs::remove_file(part);
                return Err(Failed {
                    error: SourceError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                    },
                    back_off: None,
                    retry: true,
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(fail(SourceError::Missing {
                    url: url.to_string(),
                }))
            }
            _ if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
                // `Retry-After: <seconds>` if the server says, else a short pause.
                let asked = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let wait = asked.unwrap_or(Duration::from_secs(1));
                return Err(Failed {
                    error: SourceError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                    },
                    retry: false,
                    back_off: (wait <= MAX_BACK_OFF).then_some(wait),
                });
            }
            _ => {
                return Err(fail(SourceError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                }))
            }
        }
        let total = response.content_length().map(|len| offset + len);
        if let Some(total) = total.filter(|&t| t > self.max_bytes) {
            return Err(fail(self.too_large(url, total)));
        }

        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(offset > 0)
            .truncate(offset == 0)
            .open(part)
            .await
            .map_err(|e| fail(SourceError::io(part, e)))?;
        let mut out = BufWriter::with_capacity(BUFFER, file);
        let bar = progress_bar(url, total, offset);
        // The first 8 bytes of a safetensors file are its header's length:
        // checked as soon as they are here, so a pickle is refused early.
        let mut head = match format {
            Format::Safetensors if offset == 0 => Some(Vec::new()),
            Format::Safetensors if offset < 8 => std::fs::read(part).ok(),
            _ => None,
        };
        let mut received = 0u64;
        let result = loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Ok(()),
                Err(e) => break Err(self.network_error(url, e)),
            };
            received += chunk.len() as u64;
            if offset + received > self.max_bytes {
                break Err(self.too_large(url, offset + received));
            }
            if let Some(bytes) = head.as_mut() {
                bytes.extend_from_slice(&chunk[..chunk.len().min(8 - bytes.len())]);
                if let Ok(first) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    if let Err(refusal) = check_prefix(&first, total) {
                        break Err(refusal.into_error(url.as_str()));
                    }
                    head = None;
                }
            }
            if let Err(e) = out.write_all(&chunk).await {
                break Err(SourceError::io(part, e));
            }
            bar.inc(chunk.len() as u64);
        };
        bar.finish_and_clear();
        // Whatever arrived is kept on disk, so a resume starts after it.
        let flushed = async {
            out.flush().await?;
            out.get_ref().sync_all().await
        }
        .await
        .map_err(|e| SourceError::io(part, e));
        // A cut after some bytes is worth another attempt at once; a refusal
        // or an oversized file is not.
        let progressed = received > 0;
        result.and(flushed).map_err(|error| Failed {
            back_off: None,
            retry: progressed && error.is_transient(),
            error,
        })?;
        let have = offset + received;
        match total {
            Some(expected) if have != expected => Err(Failed {
                error: SourceError::Incomplete {
                    url: url.to_string(),
                    got: have,
                    expected: Some(expected),
                },
                back_off: None,
                retry: progressed,
            }),
            _ => Ok(()),
        }
    }

    fn too_large(&self, url: &Url, size: u64) -> SourceError {
        SourceError::TooLarge {
            url: url.to_string(),
            size,
            limit: self.max_bytes,
        }
    }

    /// A reqwest error as what it means to an operator: a timeout, or the
    /// connection's failure with its causes (`Connection refused`, a TLS
    /// error).
    fn network_error(&self, url: &Url, error: reqwest::Error) -> SourceError {
        if error.is_timeout() {
            return SourceError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs_f64(),
            };
        }
        let mut detail = if error.is_connect() {
            "cannot connect".to_string()
        } else if error.is_body() || error.is_decode() {
            "the connection broke while downloading".to_string()
        } else {
            "request failed".to_string()
        };
        let mut cause = std::error::Error::source(&error);
        while let Some(c) = cause {
            detail.push_str(": ");
            detail.push_str(&c.to_string());
            cause = c.source();
        }
        SourceError::Connection {
            url: url.to_string(),
            detail,
        }
    }
}

/// `Content-Range: bytes <start>-<end>/<len>`, as (start, end).
fn content_range(response: &reqwest::Response) -> Option<(u64, u64)> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?.split('/').next()?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// Checks the complete `part` and renames it to `dest`; a refused file is
/// deleted. Returns its size.
fn finish(url: &str, part: &Path, dest: &Path, format: Format) -> Result<u64, SourceError> {
    let checked = check_file(part, format).map_err(|e| SourceError::io(part, e))?;
    if let Err(refusal) = checked {
        let _ = std::fs::remove_file(part);
        return Err(refusal.into_error(url));
    }
    let bytes = std::fs::metadata(part)
        .map_err(|e| SourceError::io(part, e))?
        .len();
    publish(part, dest).map_err(|e| SourceError::io(dest, e))?;
    Ok(bytes)
}

impl Refusal {
    fn into_error(self, url: &str) -> SourceError {
        match self {
            Refusal::Pickle(why) => SourceError::Pickle {
                what: url.into(),
                why: why.into(),
            },
            Refusal::NotSafetensors(reason) => SourceError::NotSafetensors {
                url: url.into(),
                reason,
            },
            Refusal::NotJson(reason) => SourceError::NotJson {
                url: url.into(),
                reason,
            },
        }
    }
}

/// A progress bar on a terminal; nothing (logs only) under systemd or in CI.
fn progress_bar(url: &Url, total: Option<u64>, position: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    let name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or(url.as_str());
    bar.set_message(name.to_string());
    bar.set_position(position);
    bar
}
