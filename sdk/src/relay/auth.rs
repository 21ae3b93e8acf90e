//! Signed relay requests.
//!
//! Every request to the relay carries four headers that prove which chain
//! account sent it, when, and with which body:
//!
//! | header | value |
//! |---|---|
//! | `X-Hydrogen-Account` | the signer's account: `0x` + 64 hex digits (an SS58 address is accepted too) |
//! | `X-Hydrogen-Timestamp` | milliseconds since the Unix epoch, decimal |
//! | `X-Hydrogen-Body-Hash` | `0x` + hex of Blake2b-256 of the request body (of no bytes for a `GET`) |
//! | `X-Hydrogen-Signature` | `0x` + hex of the 64-byte sr25519 signature |
//!
//! The signature is made with the account's sr25519 key, in Substrate's
//! signing context (`b"substrate"`, as `subxt_signer` and polkadot.js sign),
//! over the **canonical message**: seven lines joined by `\n` (0x0A), with no
//! trailing newline:
//!
//! ```text
//! hydrogen-relay-request-v2
//! <authority>                 the relay service, as the URL names it: host, and
//!                             :port unless the scheme's default (the Host header)
//! <METHOD>                    upper case: GET, PUT, POST
//! <path and query>            exactly as sent: /v1/tasks/7/args
//! 0x<64 hex digits>           Blake2b-256 of the body
//! <timestamp>                 the X-Hydrogen-Timestamp value, decimal
//! 0x<64 hex digits>           the signer's 32-byte account
//! ```
//!
//! Hex digits are lower case. The first line separates these signatures from
//! any other message the same key signs (a transaction payload can never
//! start with it). The authority names the relay service the request is
//! for, so a request signed for one relay (or a proxy posing as one) is
//! refused by every other: a relay accepts only the authorities it is
//! configured to answer for. The body's hash travels in a header so that the relay can
//! check the signature before it reads a large body, then compares the
//! body it received with the signed hash.
//!
//! The relay accepts a timestamp within ±60 s of its own clock and remembers
//! each accepted signature for that long, in the store its replicas share,
//! so a captured request cannot be sent again to any of them, also after a
//! restart. A proxy in front of the relay must not rewrite the path.

use crate::types::{blake2_256, AccountId, Hash};
use http::{HeaderMap, HeaderValue};
use subxt_signer::sr25519::{self, Keypair, PublicKey, Signature};

/// First line of every canonical message.
pub const DOMAIN: &str = "hydrogen-relay-request-v2";
/// The signer's account.
pub const ACCOUNT_HEADER: &str = "x-hydrogen-account";
/// When the request was signed, in ms since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-hydrogen-timestamp";
/// Blake2b-256 of the body.
pub const BODY_HASH_HEADER: &str = "x-hydrogen-body-hash";
/// The sr25519 signature of the canonical message.
pub const SIGNATURE_HEADER: &str = "x-hydrogen-signature";
/// How far a request's timestamp may be from the relay's clock.
pub const DEFAULT_MAX_SKEW_MS: u64 = 60_000;

/// Why a request's signature headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("malformed header {header}: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error("timestamp {timestamp} ms is {skew_ms} ms away from the relay's clock (at most {max_skew_ms} ms allowed)")]
    Stale {
        timestamp: u64,
        skew_ms: u64,
        max_skew_ms: u64,
    },
    #[error("the signature does not match the request and account")]
    BadSignature,
    #[error("the body does not match its signed hash")]
    BodyMismatch,
}

/// The authority a client addressing `url` signs: its host, and `:port`
/// when the port is not the scheme's default — what an HTTP client sends
/// as the `Host` header.
pub fn authority_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The canonical message for a request; see the [module docs](self).
pub fn canonical_message(
    authority: &str,
    method: &str,
    path_and_query: &str,
    body_hash: &Hash,
    timestamp_ms: u64,
    account: &AccountId,
) -> Vec<u8> {
    format!(
        "{DOMAIN}\n{}\n{}\n{path_and_query}\n0x{}\n{timestamp_ms}\n0x{}",
        authority.to_ascii_lowercase(),
        method.to_ascii_uppercase(),
        hex::encode(body_hash),
        hex::encode(account.0),
    )
    .into_bytes()
}

/// The authentication part of one request: who, when, which body, and the
/// signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub account: AccountId,
    pub timestamp_ms: u64,
    pub body_hash: Hash,
    pub signature: [u8; 64],
}

impl SignedRequest {
    /// Signs a request to the relay at `authority` (see [`authority_of`])
    /// for `body` at `timestamp_ms`.
    pub fn sign(
        signer: &Keypair,
        authority: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        timestamp_ms: u64,
    ) -> SignedRequest {
        let account = crate::chain::account_of(signer);
        let body_hash = blake2_256(body);
        let message = canonical_message(
            authority,
            method,
            path_and_query,
            &body_hash,
            timestamp_ms,
            &account,
        );
        SignedRequest {
            account,
            timestamp_ms,
            body_hash,
            signature: signer.sign(&message).0,
        }
    }

    /// Reads the four headers; checks their syntax only.
    pub fn from_headers(headers: &HeaderMap) -> Result<SignedRequest, AuthError> {
        let account = header(headers, ACCOUNT_HEADER)?;
        let account = crate::chain::parse_account(account).map_err(|e| AuthError::Malformed {
            header: ACCOUNT_HEADER,
            reason: e.to_string(),
        })?;
        let timestamp = header(headers, TIMESTAMP_HEADER)?;
        let timestamp_ms = timestamp.parse().map_err(|_| AuthError::Malformed {
            header: TIMESTAMP_HEADER,
            reason: format!("{timestamp:?} is not a whole number of milliseconds"),
        })?;
        Ok(SignedRequest {
            account,
            timestamp_ms,
            body_hash: hex_bytes(headers, BODY_HASH_HEADER)?,
            signature: hex_bytes(headers, SIGNATURE_HEADER)?,
        })
    }

    /// Adds the four headers to `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let value = |s: String| HeaderValue::from_str(&s).expect("ASCII header value");
        headers.insert(
            ACCOUNT_HEADER,
            value(format!("0x{}", hex::encode(self.account.0))),
        );
        headers.insert(TIMESTAMP_HEADER, value(self.timestamp_ms.to_string()));
        headers.insert(
            BODY_HASH_HEADER,
            value(format!("0x{}", hex::encode(self.body_hash))),
        );
        headers.insert(
            SIGNATURE_HEADER,
            value(format!("0x{}", hex::encode(self.signature))),
        );
    }

    /// Refuses a timestamp more than `max_skew_ms` away from `now_ms`.
    pub fn check_time(&self, now_ms: u64, max_skew_ms: u64) -> Result<(), AuthError> {
        let skew_ms = now_ms.abs_diff(self.timestamp_ms);
        if skew_ms > max_skew_ms {
            return Err(AuthError::Stale {
                timestamp: self.timestamp_ms,
                skew_ms,
                max_skew_ms,
            });
        }
        Ok(())
    }

    /// Checks the signature over the authority the request was sent to, the
    /// request line and the signed body hash. The body itself is checked
    /// with [`check_body`](Self::check_body) once it has been read.
    pub fn verify(
        &self,
        authority: &str,
        method: &str,
        path_and_query: &str,
    ) -> Result<(), AuthError> {
        let message = canonical_message(
            authority,
            method,
            path_and_query,
            &self.body_hash,
            self.timestamp_ms,
            &self.account,
        );
        if sr25519::verify(
            &Signature(self.signature),
            message,
            &PublicKey(self.account.0),
        ) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// Compares the received body's Blake2b-256 with the signed one.
    pub fn check_body(&self, body_hash: &Hash) -> Result<(), AuthError> {
        if *body_hash == self.body_hash {
            Ok(())
        } else {
            Err(AuthError::BodyMismatch)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    let value = headers.get(name).ok_or(AuthError::Missing(name))?;
    value.to_str().map_err(|_| AuthError::Malformed {
        header: name,
        reason: "not ASCII".into(),
    })
}

fn hex_bytes<const N: usize>(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<[u8; N], AuthError> {
    let text = header(headers, name)?;
    let malformed = || AuthError::Malformed {
        header: name,
        reason: format!("expected 0x and {} hex digits", 2 * N),
    };
    let digits = text.strip_prefix("0x").ok_or_else(malformed)?;
    let bytes = hex::decode(digits).map_err(|_| malformed())?;
    bytes.try_into().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::keypair_from_suri;

    const NOW: u64 = 1_700_000_000_000;
    const RELAY: &str = "relay.example.org";

    fn alice() -> Keypair {
        keypair_from_suri("//Alice").unwrap()
    }

    fn signed() -> SignedRequest {
        SignedRequest::sign(&alice(), RELAY, "PUT", "/v1/tasks/7/args", b"{}", NOW)
    }

    fn roundtrip(request: &SignedRequest) -> SignedRequest {
        let mut headers = HeaderMap::new();
        request.write_headers(&mut headers);
        SignedRequest::from_headers(&headers).unwrap()
    }

    #[test]
    fn canonical_message_is_the_documented_text() {
        let message = canonical_message(
            "Relay.Example.org:8700",
            "get",
            "/v1/tasks/7/args?x=1",
            &[0xab; 32],
            42,
            &[1; 32].into(),
        );
        let expected = format!(
            "hydrogen-relay-request-v2\nrelay.example.org:8700\nGET\n/v1/tasks/7/args?x=1\n0x{}\n42\n0x{}",
            "ab".repeat(32),
            "01".repeat(32)
        );
        assert_eq!(String::from_utf8(message).unwrap(), expected);
    }

    #[test]
    fn a_signed_request_verifies_after_travelling_as_headers() {
        let request = roundtrip(&signed());
        assert_eq!(request, signed_with_same_signature(&request));
        request.verify(RELAY, "PUT", "/v1/tasks/7/args").unwrap();
        request.check_body(&blake2_256(b"{}")).unwrap();
        request
            .check_time(NOW + 60_000, DEFAULT_MAX_SKEW_MS)
            .unwrap();
        request
            .check_time(NOW - 60_000, DEFAULT_MAX_SKEW_MS)
            .unwrap();
    }

    fn signed_with_same_signature(request: &SignedRequest) -> SignedRequest {
        SignedRequest {
            account: crate::chain::account_of(&alice()),
            timestamp_ms: NOW,
            body_hash: blake2_256(b"{}"),
            signature: request.signature,
        }
    }

    #[test]
    fn any_change_to_the_signed_parts_breaks_the_signature() {
        let request = signed();
        assert_eq!(
            request.verify(RELAY, "POST", "/v1/tasks/7/args"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            request.verify(RELAY, "PUT", "/v1/tasks/8/args"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            request.verify(RELAY, "PUT", "/v1/tasks/7/args?a=1"),
            Err(AuthError::BadSignature)
        );
        let changed = [
            SignedRequest {
                timestamp_ms: NOW + 1,
                ..request.clone()
            },
            SignedRequest {
                body_hash: blake2_256(b"{ }"),
                ..request.clone()
            },
            SignedRequest {
                account: crate::chain::account_of(&keypair_from_suri("//Bob").unwrap()),
                ..request.clone()
            },
        ];
        for changed in changed {
            assert_eq!(
                changed.verify(RELAY, "PUT", "/v1/tasks/7/args"),
                Err(AuthError::BadSignature)
            );
        }
        assert_eq!(
            request.check_body(&blake2_256(b"{ }")),
            Err(AuthError::BodyMismatch)
        );
    }

    #[test]
    fn a_request_signed_for_one_relay_is_refused_by_another() {
        assert_eq!(
            signed().verify("relay.example.org:8443", "PUT", "/v1/tasks/7/args"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            signed().verify("evil.example.org", "PUT", "/v1/tasks/7/args"),
            Err(AuthError::BadSignature)
        );
        signed()
            .verify("RELAY.example.ORG", "PUT", "/v1/tasks/7/args")
            .unwrap();
    }

    #[test]
    fn the_authority_is_what_the_host_header_carries() {
        let of = |url: &str| authority_of(&reqwest::Url::parse(url).unwrap());
        assert_eq!(of("https://Relay.example.org/relay/"), "relay.example.org");
        assert_eq!(of("https://relay.example.org:443/"), "relay.example.org");
        assert_eq!(of("http://127.0.0.1:8700/"), "127.0.0.1:8700");
        assert_eq!(of("http://127.0.0.1:80/"), "127.0.0.1");
        assert_eq!(of("http://[::1]:8700/"), "[::1]:8700");
    }

    #[test]
    fn method_case_does_not_matter() {
        signed().verify(RELAY, "put", "/v1/tasks/7/args").unwrap();
    }

    #[test]
    fn a_timestamp_beyond_the_skew_is_stale() {
        let err = signed()
            .check_time(NOW + 60_001, DEFAULT_MAX_SKEW_MS)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timestamp 1700000000000 ms is 60001 ms away from the relay's clock (at most 60000 ms allowed)"
        );
        assert!(signed()
            .check_time(NOW - 60_001, DEFAULT_MAX_SKEW_MS)
            .is_err());
    }

    #[test]
    fn headers_are_checked_for_presence_and_shape() {
        let mut headers = HeaderMap::new();
        signed().write_headers(&mut headers);
        let without = |name: &str| {
            let mut h = headers.clone();
            h.remove(name);
            SignedRequest::from_headers(&h).unwrap_err()
        };
        assert_eq!(
            without(SIGNATURE_HEADER),
            AuthError::Missing(SIGNATURE_HEADER)
        );
        assert_eq!(without(ACCOUNT_HEADER), AuthError::Missing(ACCOUNT_HEADER));
        let with = |name: &'static str, value: &'static str| {
            let mut h = headers.clone();
            h.insert(name, HeaderValue::from_static(value));
            SignedRequest::from_headers(&h)
        };
        assert_eq!(
            with(SIGNATURE_HEADER, "0xabcd").unwrap_err().to_string(),
            "malformed header x-hydrogen-signature: expected 0x and 128 hex digits"
        );
        assert_eq!(
            with(TIMESTAMP_HEADER, "-5").unwrap_err().to_string(),
            "malformed header x-hydrogen-timestamp: \"-5\" is not a whole number of milliseconds"
        );
        assert!(matches!(
            with(ACCOUNT_HEADER, "alice").unwrap_err(),
            AuthError::Malformed {
                header: ACCOUNT_HEADER,
                ..
            }
        ));
        // An SS58 address names the same account as its hex form.
        let ss58 = crate::chain::ss58(&crate::chain::account_of(&alice()));
        let mut h = headers.clone();
        h.insert(ACCOUNT_HEADER, HeaderValue::from_str(&ss58).unwrap());
        SignedRequest::from_headers(&h)
            .unwrap()
            .verify(RELAY, "PUT", "/v1/tasks/7/args")
            .unwrap();
    }
}
