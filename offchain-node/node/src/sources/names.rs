//! What a task may name: Hugging Face repo ids, file names inside a repo,
//! and URLs. Everything here ends up in a path on disk or in a URL, so only
//! plain names pass: no `..`, no absolute paths, no pickle files.

use super::{Kind, SourceError};
use reqwest::Url;
use std::path::{Component, Path};

/// File suffixes of PyTorch pickles (and zips of pickles): loading one runs
/// whatever code it holds, so they are refused before any byte is fetched.
const PICKLE_SUFFIXES: &[&str] = &[".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"];

/// Whether the task names its model by URL rather than by id.
pub fn is_url(model: &str) -> bool {
    let lower = model.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `name` as a path of plain components under some directory, or `None`
/// when it would leave it (`..`, `/etc`, `C:`) or is empty.
pub fn relative(name: &str) -> Option<&Path> {
    let path = Path::new(name);
    let plain = !name.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then_some(path)
}

/// A Hugging Face repo id: `name` or `org/name`, each part ASCII letters,
/// digits, `-`, `_` and `.` (the Hub's own rule), never `.` or `..`.
pub fn repo_id(kind: Kind, model: &str) -> Result<Vec<String>, SourceError> {
    let parts: Vec<&str> = model.split('/').collect();
    let good_part = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2 || !parts.iter().all(good_part) {
        return Err(SourceError::Refused {
            kind,
            model: model.into(),
            reason: "not a model id (`org/name`, letters, digits, `-`, `_`, `.`) \
                     nor an http(s) URL"
                .into(),
        });
    }
    Ok(parts.into_iter().map(String::from).collect())
}

/// A file inside a repo (`pytorch_lora_weights.safetensors`,
/// `unet/config.json`): plain components, no pickle suffix.
pub fn repo_file<'a>(kind: Kind, model: &str, file: &'a str) -> Result<&'a Path, SourceError> {
    refuse_pickle_name(file)?;
    relative(file).ok_or_else(|| SourceError::Refused {
        kind,
        model: model.into(),
        reason: format!("file name {file:?} is not a plain relative path"),
    })
}

/// A URL a task gave for a single-file model: http(s), with no pickle suffix.
pub fn download_url(kind: Kind, model: &str) -> Result<Url, SourceError> {
    let url = Url::parse(model.trim()).map_err(|e| SourceError::Refused {
        kind,
        model: model.into(),
        reason: format!("not a valid URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SourceError::Refused {
            kind,
            model: model.into(),
            reason: "only http and https URLs are downloaded".into(),
        });
    }
    refuse_pickle_name(url.path())?;
    Ok(url)
}

/// Refuses a task URL whose host is, or resolves to, an address that is not
/// public (loopback, private, link-local, unique-local, unspecified…): a
/// task must not make nodes fetch from their own host or network. The
/// connection resolves the name again, so a DNS server that answers
/// differently the second time is not stopped; the pickle and size checks
/// still hold then.
pub async fn refuse_private_host(kind: Kind, model: &str, url: &Url) -> Result<(), SourceError> {
    let refused = |reason: String| SourceError::Refused {
        kind,
        model: model.into(),
        reason,
    };
    let host = url
        .host_str()
        .ok_or_else(|| refused("the URL has no host".into()))?
        .trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| refused(format!("cannot resolve {host}: {e}")))?
        .collect();
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Err(refused(format!(
            "{host} is at {}, not a public address (sources.allow_private_urls)",
            a.ip()
        ))),
        None => Ok(()),
    }
}

fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80) // link local
            }
        },
    }
}

/// Refuses a name (file name or URL path) that ends like a pickle.
pub fn refuse_pickle_name(name: &str) -> Result<(), SourceError> {
    let lower = name.to_ascii_lowercase();
    match PICKLE_SUFFIXES.iter().find(|s| lower.ends_with(*s)) {
        Some(suffix) => Err(SourceError::Pickle {
            what: name.into(),
            why: format!("a {suffix} file is a PyTorch pickle"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn task_urls_into_private_networks_are_refused() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
        ] {
            let parsed = Url::parse(url).unwrap();
            let err = refuse_private_host(Kind::Lora, url, &parsed)
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("sources.allow_private_urls")
                    || err.to_string().contains("cannot resolve"),
                "{url}: {err}"
            );
        }
        for ip in ["93.184.215.14", "2606:4700::6810:84e5"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn names() {
        assert!(is_url("https://civitai.com/api/download/models/1"));
        assert!(is_url("HTTP://x"));
        assert!(!is_url("runwayml/stable-diffusion-v1-5"));

        assert!(relative("a/b.safetensors").is_some());
        for bad in ["", "../x", "/etc/passwd", "a/../../b"] {
            assert!(relative(bad).is_none(), "{bad}");
        }

        assert_eq!(
            repo_id(Kind::Lora, "org/name-1.5").unwrap(),
            ["org", "name-1.5"]
        );
        assert_eq!(repo_id(Kind::Lora, "gpt2").unwrap(), ["gpt2"]);
        for bad in ["", "a/b/c", "../x", "a/..", "a b/c", "org/na?me", "/x"] {
            assert!(repo_id(Kind::Lora, bad).is_err(), "{bad}");
        }

        assert!(repo_file(Kind::Lora, "m", "unet/config.json").is_ok());
        assert!(repo_file(Kind::Lora, "m", "../x.safetensors").is_err());
        let err = repo_file(Kind::Lora, "m", "model.CKPT").unwrap_err();
        assert!(
            err.to_string().contains("pickles are never loaded"),
            "{err}"
        );

        assert!(download_url(Kind::Lora, "https://h/api/download/models/1").is_ok());
        assert!(download_url(Kind::Lora, "https://h/x.pt?token=1").is_err());
        assert!(download_url(Kind::Lora, "https://h/x.pth").is_err());
        assert!(download_url(Kind::Lora, "ftp://h/x.safetensors").is_err());
    }
}
