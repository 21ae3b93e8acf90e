//! The published OpenAPI document (`bridge/openapi.json`) is what the code
//! generates.

use std::path::PathBuf;

fn openapi_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

#[test]
fn published_openapi_document_is_up_to_date() {
    let generated = hydrogen_bridge::openapi_json();
    let path = openapi_path();
    if std::env::var_os("HYDROGEN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with bridge/src/; refresh it with \
         `HYDROGEN_BLESS=1 cargo test -p hydrogen-bridge --test openapi` and commit it",
        path.display()
    );
}

#[test]
fn openapi_document_names_every_endpoint_and_the_bearer_scheme() {
    let doc: serde_json::Value = serde_json::from_str(&hydrogen_bridge::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/tasks",
        "/v1/tasks/{id}",
        "/v1/tasks/{id}/images/{n}",
        "/v1/tasks/{id}/cancel",
        "/v1/tasks/{id}/events",
        "/v1/images/generations",
        "/v1/network",
        "/v1/models",
        "/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        doc["components"]["schemas"]["GenerationRequest"]["properties"]["negative_prompt"]
            .is_object()
    );
}
