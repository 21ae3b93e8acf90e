//! [`RelayClient`]: signed requests to a relay over HTTP(S).

use super::auth::{authority_of, SignedRequest};
use super::error::RelayError;
use super::frames;
use crate::types::{Receipt, TaskId};
use reqwest::{Method, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subxt_signer::sr25519::Keypair;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for ten 16 MiB images over a slow link.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A relay at one base URL, signing every request with one chain key.
/// Cheap to clone (clones share the connection pool).
#[derive(Clone)]
pub struct RelayClient {
    base: reqwest::Url,
    http: reqwest::Client,
    signer: Keypair,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.base.as_str())
            .field(
                "account",
                &crate::chain::ss58(&crate::chain::account_of(&self.signer)),
            )
            .finish_non_exhaustive()
    }
}

impl RelayClient {
    /// A client of the relay at `base_url` (`http://127.0.0.1:8700`, the relay's default; a path
    /// prefix such as `https://host/relay` is kept) signing as `signer`.
    pub fn new(base_url: &str, signer: Keypair) -> Result<RelayClient, RelayError> {
        let invalid = |reason: String| RelayError::InvalidUrl {
            url: base_url.into(),
            reason,
        };
        let mut base = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("expected an http:// or https:// URL".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(RelayClient { base, http, signer })
    }

    /// Gives up on a request after `timeout` (default 300 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<RelayClient, RelayError> {
        self.http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| RelayError::Unreachable(e.to_string()))?;
        Ok(self)
    }

    /// The relay's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Uploads a task's arguments: the exact bytes whose Blake2b-256 is the
    /// task's on-chain `args_hash`. Only the task's creator may.
    pub async fn upload_args(&self, task: TaskId, args: &[u8]) -> Result<(), RelayError> {
        let path = format!("v1/tasks/{task}/args");
        self.send(Method::PUT, &path, args.to_vec(), "application/json")
            .await
            .map(drop)
    }

    /// A task's arguments, as uploaded (hash them before parsing). For the
    /// creator and the task's selected nodes.
    pub async fn fetch_args(&self, task: TaskId) -> Result<Vec<u8>, RelayError> {
        self.get(&format!("v1/tasks/{task}/args")).await
    }

    /// Uploads a task's images, PNG files in result order. Only the node
    /// the contract designated may, once the task has succeeded; the relay
    /// requires their pHashes to be the accepted result.
    pub async fn upload_images(&self, task: TaskId, pngs: &[Vec<u8>]) -> Result<(), RelayError> {
        let path = format!("v1/tasks/{task}/images");
        self.send(
            Method::PUT,
            &path,
            frames::encode(pngs),
            frames::CONTENT_TYPE,
        )
        .await
        .map(drop)
    }

    /// The relay's receipt for a task's stored images (see
    /// [`receipt`](super::receipt)), or `None` when the relay signs none.
    pub async fn receipt(&self, task: TaskId) -> Result<Option<Receipt>, RelayError> {
        match self.get(&format!("v1/tasks/{task}/receipt")).await {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body);
                let bytes = hex::decode(text.trim().trim_start_matches("0x"))
                    .map_err(|e| RelayError::Protocol(format!("receipt: {e}")))?;
                let receipt = Receipt::try_from(bytes.as_slice())
                    .map_err(|_| RelayError::Protocol("receipt: not 65 bytes".into()))?;
                Ok(Some(receipt))
            }
            Err(RelayError::Refused { code, .. }) if code == super::code::NO_RECEIPTS => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Image `index` (0-based) of a task, PNG. For the creator only.
    pub async fn download_image(&self, task: TaskId, index: u8) -> Result<Vec<u8>, RelayError> {
        self.get(&format!("v1/tasks/{task}/images/{index}")).await
    }

    /// Every image of a task, in order. For the creator only.
    pub async fn download_images(&self, task: TaskId) -> Result<Vec<Vec<u8>>, RelayError> {
        let body = self.get(&format!("v1/tasks/{task}/images")).await?;
        frames::decode(&body).map_err(|e| RelayError::Protocol(e.to_string()))
    }

    /// Whether the relay answers and is ready (storage and chain reachable).
    pub async fn health(&self) -> Result<(), RelayError> {
        let url = self.url("readyz")?;
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        check(response).await.map(drop)
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, RelayError> {
        self.send(Method::GET, path, Vec::new(), "").await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Vec<u8>, RelayError> {
        let url = self.url(path)?;
        let mut path_and_query = url.path().to_string();
        if let Some(query) = url.query() {
            path_and_query = format!("{path_and_query}?{query}");
        }
        let signed = SignedRequest::sign(
            &self.signer,
            &authority_of(&url),
            method.as_str(),
            &path_and_query,
            &body,
            now_ms(),
        );
        let mut headers = reqwest::header::HeaderMap::new();
        signed.write_headers(&mut headers);
        let mut request = self.http.request(method, url).headers(headers);
        if !content_type.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request.send().await.map_err(unreachable)?;
        check(response).await
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, RelayError> {
        self.base.join(path).map_err(|e| RelayError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }
}

/// The body of a success, or the error the answer describes.
async fn check(response: reqwest::Response) -> Result<Vec<u8>, RelayError> {
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if status.is_success() {
        return Ok(Vec::from(body));
    }
    if status == StatusCode::NOT_FOUND && body.is_empty() {
        return Err(RelayError::Refused {
            status: status.as_u16(),
            code: String::new(),
            message: "no such endpoint".into(),
        });
    }
    Err(RelayError::from_response(status.as_u16(), &body))
}

fn unreachable(error: reqwest::Error) -> RelayError {
    // Walk the sources: reqwest's own message ("error sending request")
    // hides the cause that matters (connection refused, timed out).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    RelayError::Unreachable(message)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::keypair_from_suri;

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let alice = keypair_from_suri("//Alice").unwrap();
        let client = RelayClient::new("https://relay.example/prefix", alice.clone()).unwrap();
        assert_eq!(
            client.url("v1/tasks/1/args").unwrap().as_str(),
            "https://relay.example/prefix/v1/tasks/1/args"
        );
        let err = RelayClient::new("ftp://relay.example", alice.clone()).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an http:// or https:// URL"),
            "{err}"
        );
        assert!(RelayClient::new("not a url", alice).is_err());
    }

    #[tokio::test]
    async fn no_listener_is_unreachable_and_retryable() {
        // Bind, then drop, so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let alice = keypair_from_suri("//Alice").unwrap();
        let client = RelayClient::new(&format!("http://127.0.0.1:{port}"), alice).unwrap();
        let err = client.fetch_args(1).await.unwrap_err();
        assert!(matches!(err, RelayError::Unreachable(_)), "{err}");
        assert!(err.is_retryable());
    }
}
