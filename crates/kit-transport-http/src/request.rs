//! What a server knows about the request it serves, put in the endpoint's context.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue, Method, request::Parts};

/// The peer's address, which a [`Listener`](crate::Listener) puts in each request's extensions.
/// A server mounted elsewhere can insert it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The request a [`Server`](crate::Server) is serving, in the endpoint's
/// [`Context`](kit_core::Context): `cx.get::<RequestInfo>()`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The request method.
    pub method: Method,
    /// The request path, without the query.
    pub path: String,
    /// The query, if any, without the `?`.
    pub query: Option<String>,
    /// The `Host` header, or the URI's authority (HTTP/2).
    pub host: Option<String>,
    /// The peer's address, when the server knows it ([`RemoteAddr`]).
    pub remote_addr: Option<SocketAddr>,
    /// The headers the server was told to capture
    /// ([`ServerOptions::capture_headers`](crate::ServerOptions::capture_headers)).
    pub headers: HeaderMap,
    /// The request id: the client's `x-request-id` if it is a sane one (1 to 128 visible ASCII
    /// characters), or a new one. The server echoes it in the response's `x-request-id`.
    pub request_id: HeaderValue,
}

/// The request id header, read and echoed.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl RequestInfo {
    pub(crate) fn from_parts(parts: &Parts, capture: &[HeaderName]) -> RequestInfo {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
        let mut headers = HeaderMap::new();
        for name in capture {
            for value in parts.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let request_id = parts
            .headers
            .get(&X_REQUEST_ID)
            .filter(|id| is_sane_request_id(id.as_bytes()))
            .cloned()
            .unwrap_or_else(new_request_id);
        RequestInfo {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            host,
            remote_addr: parts.extensions.get::<RemoteAddr>().map(|a| a.0),
            headers,
            request_id,
        }
    }
}

fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// A new request id: 16 hex digits, a per-process random start plus a counter, so unique
/// within the process and unlikely to repeat across processes.
fn new_request_id() -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let id = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&format!("{id:016x}")).expect("hex digits are a valid header value")
}
