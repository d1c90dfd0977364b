//! Building the node's small HTTP responses: JSON bodies and JSON errors.
//!
//! Both the router and the WebSocket upgrade answer with these (the upgrade
//! refuses with a status and a JSON body), so they live in a leaf module
//! that both import rather than in either of them.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde::Serialize;

/// Every response that is not a WebSocket upgrade is small JSON or text.
pub type Body = Full<Bytes>;

/// `v` as a JSON response with status `code`, never cached.
pub fn json<T: Serialize>(code: StatusCode, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// A JSON error body: `{"error":code,"message":...}`.
pub fn error(code: StatusCode, kind: &str, message: &str) -> Response<Body> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        message: &'a str,
    }
    json(
        code,
        &ErrorBody {
            error: kind,
            message,
        },
    )
}
