//! The Image Generator: a static page, its script and its style, compiled
//! into the binary so the bridge serves them offline (no CDN, no build
//! step). The page talks to the same `/v1` API as any other client.

use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use warp::reply::{Reply, Response};
use warp::Filter;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

/// Only the page's own files and the bridge's API; images come back as
/// `blob:` URLs made by the script.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' blob: data:; connect-src 'self'; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = warp::reply::with_header(body, CONTENT_TYPE, content_type).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        POLICY.parse().expect("a valid header"),
    );
    headers.insert(CACHE_CONTROL, "no-cache".parse().expect("a valid header"));
    response
}

/// `GET /`, `GET /app/app.js`, `GET /app/style.css`.
pub(crate) fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let index = warp::path::end().map(|| file(INDEX, "text/html; charset=utf-8"));
    let script =
        warp::path!("app" / "app.js").map(|| file(SCRIPT, "text/javascript; charset=utf-8"));
    let style = warp::path!("app" / "style.css").map(|| file(STYLE, "text/css; charset=utf-8"));
    warp::get().and(index.or(script).unify().or(style).unify())
}
