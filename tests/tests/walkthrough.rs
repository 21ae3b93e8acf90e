//! The documented first hour, end to end: `tests/walkthrough.sh` runs the
//! commands README.md and offchain-node/README.md give a new node runner and
//! app developer (dev chain, relay, three nodes on the CPU, the README's app
//! example) and must finish with an image. Needs the chain tools and the
//! contract bundle, like the other chain tests.

use hydrogen_tests::{bundle_path, chain_required};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_documented_first_hour_ends_with_an_image() {
    let bundle = bundle_path();
    let tools = Command::new("substrate-contracts-node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !bundle.exists() || !tools {
        assert!(
            !chain_required(),
            "the walkthrough needs {} and substrate-contracts-node",
            bundle.display()
        );
        eprintln!("skipped: no contract bundle or no substrate-contracts-node");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    // The binaries the guides install, built with the test build's features
    // so nothing the other tests use is rebuilt or replaced.
    let built = Command::new(env!("CARGO"))
        .current_dir(&repo)
        .args([
            "build",
            "-q",
            "--workspace",
            "--features",
            "hydrogen-sdk/test-util,hydrogen-node/test-engines",
            "--bins",
            "--example",
            "generate",
        ])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building the binaries failed");
    let status = Command::new("bash")
        .arg(repo.join("tests/walkthrough.sh"))
        .env("HYDROGEN_WALKTHROUGH_BIN", target.join("debug"))
        // The SDK's tools as just built, rather than rebuilt by the scripts
        // with the SDK's own feature set.
        .env("HYDROGEN_DEPLOY_BIN", target.join("debug/hydrogen-deploy"))
        .env("HYDROGEN_TICKER_BIN", target.join("debug/hydrogen-ticker"))
        .env("HYDROGEN_CONTRACT_BUNDLE", &bundle)
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "the walkthrough failed (its output is above)"
    );
}
