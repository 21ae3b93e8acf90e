//! A chain key file: the secret (a BIP-39 mnemonic or any secret URI) in a
//! JSON file only its owner can read, in the clear or encrypted with a
//! passphrase (scrypt, then ChaCha20-Poly1305). `hydrogen-node` keeps a
//! node's key this way and `hydrogen-bridge` an app's; the format is one.
//!
//! ```json
//! {"version": 1, "account": "5F...", "kind": "plain", "secret": "word word ..."}
//! {"version": 1, "account": "5F...", "kind": "scrypt-chacha20poly1305",
//!  "log_n": 15, "r": 8, "p": 1, "salt": "..", "nonce": "..", "ciphertext": ".."}
//! ```

use crate::chain::{account_of, keypair_from_suri, ss58, Keypair};
use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// scrypt cost for new files: 2^15 rounds, r = 8, p = 1 (about 0.1 s and
/// 32 MiB on a current CPU), the parameters libsodium calls "interactive".
pub const SCRYPT_LOG_N: u8 = 15;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Secret {
    /// The secret URI as typed or generated.
    Plain { secret: String },
    /// ChaCha20-Poly1305 of the secret URI, keyed by scrypt(passphrase, salt).
    ScryptChacha20poly1305 {
        log_n: u8,
        r: u32,
        p: u32,
        salt: String,
        nonce: String,
        ciphertext: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    /// SS58 address, readable without the passphrase.
    account: String,
    #[serde(flatten)]
    secret: Secret,
}

/// A fresh 24-word BIP-39 mnemonic from the operating system's randomness.
pub fn generate_mnemonic() -> Result<Zeroizing<String>> {
    let mut entropy = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut entropy[..]).context("no randomness from the operating system")?;
    let mnemonic = subxt_signer::bip39::Mnemonic::from_entropy(&entropy[..])
        .context("cannot make a mnemonic")?;
    Ok(Zeroizing::new(mnemonic.to_string()))
}

/// Writes `secret` (a mnemonic or secret URI) to a new key file at `path`
/// with mode 0600, encrypted when `passphrase` is given. Refuses to replace
/// an existing file. Returns the account's SS58 address.
pub fn write(path: &Path, secret: &str, passphrase: Option<&str>) -> Result<String> {
    write_with_cost(path, secret, passphrase, SCRYPT_LOG_N)
}

/// [`write`] with scrypt cost `2^log_n`: tests use a low one to stay fast.
pub fn write_with_cost(
    path: &Path,
    secret: &str,
    passphrase: Option<&str>,
    log_n: u8,
) -> Result<String> {
    let keypair = keypair_from_suri(secret).context("not a valid mnemonic or secret URI")?;
    let account = ss58(&account_of(&keypair));
    let secret = match passphrase {
        None => Secret::Plain {
            secret: secret.to_owned(),
        },
        Some(passphrase) => encrypt(secret, passphrase, log_n)?,
    };
    let file = KeyFile {
        version: 1,
        account: account.clone(),
        secret,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    let json = serde_json::to_string_pretty(&file)?;
    out.write_all(json.as_bytes())?;
    out.sync_all()?;
    Ok(account)
}

/// The SS58 address recorded in the key file (no passphrase needed).
pub fn account(path: &Path) -> Result<String> {
    Ok(read_file(path)?.account)
}

/// Whether the key file needs a passphrase.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    Ok(matches!(
        read_file(path)?.secret,
        Secret::ScryptChacha20poly1305 { .. }
    ))
}

/// The keypair in the key file; `passphrase` is asked for only when the
/// file is encrypted.
pub fn load(
    path: &Path,
    passphrase: impl FnOnce() -> Result<Zeroizing<String>>,
) -> Result<Keypair> {
    let file = read_file(path)?;
    let secret = match file.secret {
        Secret::Plain { secret } => Zeroizing::new(secret),
        encrypted => decrypt(&encrypted, &passphrase()?)?,
    };
    let keypair = keypair_from_suri(&secret).context("the key file's secret does not parse")?;
    let account = ss58(&account_of(&keypair));
    if account != file.account {
        bail!(
            "{}: the secret belongs to {account}, not to the account {} the file names",
            path.display(),
            file.account
        );
    }
    Ok(keypair)
}

fn read_file(path: &Path) -> Result<KeyFile> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("no key file at {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a key file", path.display()))
}

fn cipher(passphrase: &str, salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<ChaCha20Poly1305> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| anyhow::anyhow!("bad scrypt parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, &mut key[..])
        .map_err(|e| anyhow::anyhow!("scrypt failed: {e}"))?;
    Ok(ChaCha20Poly1305::new(Key::from_slice(&key[..])))
}

fn encrypt(secret: &str, passphrase: &str, log_n: u8) -> Result<Secret> {
    let (mut salt, mut nonce) = ([0u8; 16], [0u8; 12]);
    getrandom::getrandom(&mut salt).context("no randomness")?;
    getrandom::getrandom(&mut nonce).context("no randomness")?;
    let (r, p) = (8, 1);
    let ciphertext = cipher(passphrase, &salt, log_n, r, p)?
        .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    Ok(Secret::ScryptChacha20poly1305 {
        log_n,
        r,
        p,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

fn decrypt(secret: &Secret, passphrase: &str) -> Result<Zeroizing<String>> {
    let Secret::ScryptChacha20poly1305 {
        log_n,
        r,
        p,
        salt,
        nonce,
        ciphertext,
    } = secret
    else {
        bail!("the secret is not encrypted");
    };
    let salt = hex::decode(salt).context("bad salt")?;
    let nonce = hex::decode(nonce).context("bad nonce")?;
    if nonce.len() != 12 {
        bail!("bad nonce length");
    }
    let ciphertext = hex::decode(ciphertext).context("bad ciphertext")?;
    let plain = cipher(passphrase, &salt, *log_n, *r, *p)?
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| anyhow::anyhow!("wrong passphrase (or a damaged key file)"))?;
    Ok(Zeroizing::new(
        String::from_utf8(plain).context("the decrypted secret is not text")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_key_file_is_private_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/key.json");
        let mnemonic = generate_mnemonic().unwrap();
        assert_eq!(mnemonic.split(' ').count(), 24);
        let account = write(&path, &mnemonic, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let keypair = load(&path, || unreachable!("no passphrase for a plain file")).unwrap();
        assert_eq!(ss58(&account_of(&keypair)), account);
        assert!(
            write(&path, "//Alice", None).is_err(),
            "never overwrites a key"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path, || unreachable!()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn encrypted_key_file_needs_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        // A low scrypt cost keeps the debug-build test fast; files use SCRYPT_LOG_N.
        let account = write_with_cost(&path, "//Node1", Some("correct horse"), 4).unwrap();
        assert!(is_encrypted(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("Node1"), "the secret is not in the clear");
        let keypair = load(&path, || Ok(Zeroizing::new("correct horse".into()))).unwrap();
        assert_eq!(ss58(&account_of(&keypair)), account);
        let err = load(&path, || Ok(Zeroizing::new("wrong".into())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong passphrase"), "{err}");
    }
}
