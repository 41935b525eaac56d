//! What a server knows about the request it serves, put in the endpoint's context.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, request::Parts};

/// The peer's address, as a request extension: a server mounted elsewhere inserts it so that
/// [`RequestInfo::remote_addr`] knows the peer. (A [`Listener`](crate::Listener) tells its
/// servers the peer itself.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

tokio::task_local! {
    /// The peer of the connection being served, set by the Listener while it polls a
    /// request's call (`connection_service.rs`): cheaper than an extension, which costs three
    /// allocations.
    pub(crate) static CONNECTION_PEER: SocketAddr;
}

/// The request a [`Server`](crate::Server) is serving, in the endpoint's
/// [`Context`](kit_core::Context): `cx.get::<RequestInfo>()`. It owns the request's head
/// (moved, not copied, once the decoder is done), so reading it costs nothing up front.
#[derive(Debug)]
pub struct RequestInfo {
    head: Parts,
    remote_addr: Option<SocketAddr>,
    /// The client's id, or one made the first time anyone asks (most services never do).
    request_id: std::sync::OnceLock<HeaderValue>,
}

/// The request id header, read and echoed.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl RequestInfo {
    pub(crate) fn new(head: Parts) -> RequestInfo {
        let request_id = std::sync::OnceLock::new();
        if let Some(id) = head.headers.get(&X_REQUEST_ID)
            && is_sane_request_id(id.as_bytes())
        {
            let _ = request_id.set(id.clone());
        }
        let remote_addr = match head.extensions.get::<RemoteAddr>() {
            Some(addr) => Some(addr.0),
            None => CONNECTION_PEER.try_with(|peer| *peer).ok(),
        };
        RequestInfo {
            head,
            remote_addr,
            request_id,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request URI as received (usually path and query only).
    pub fn uri(&self) -> &Uri {
        &self.head.uri
    }

    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// The query, if any, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    /// The `Host` header, or the URI's authority (HTTP/2 sends `:authority` instead).
    pub fn host(&self) -> Option<&str> {
        match self.head.headers.get(http::header::HOST) {
            Some(host) => host.to_str().ok(),
            None => self.head.uri.authority().map(|a| a.as_str()),
        }
    }

    /// The peer's address, when the server knows it (behind a [`Listener`](crate::Listener),
    /// or from a [`RemoteAddr`] extension).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The request extensions (what hooks and tower layers attached to the request).
    pub fn extensions(&self) -> &http::Extensions {
        &self.head.extensions
    }

    /// The request id: the client's `x-request-id` if it is a sane one (1 to 128 visible ASCII
    /// characters), or else a new one, made on the first call. The server echoes the id in the
    /// response's `x-request-id` whenever there is one.
    pub fn request_id(&self) -> &str {
        // Sane ids and generated ones are visible ASCII.
        self.request_id
            .get_or_init(new_request_id)
            .to_str()
            .unwrap_or_default()
    }

    /// The id to echo: the client's, or one that was asked for.
    pub(crate) fn request_id_header(&self) -> Option<&HeaderValue> {
        self.request_id.get()
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
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value")
}
