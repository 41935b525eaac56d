//! Serving a service over HTTP/1.1 and HTTP/2 on one TCP listener, with limits and a graceful
//! drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

use crate::automatic::JsonAutomaticAnswers;
use crate::body::BoxError;
use crate::calls::Calls;
use crate::connection_service::ConnectionService;
use crate::drain::{Drain, Tracked};
use crate::head_deadline::HeadDeadline;
#[cfg(feature = "tls")]
use crate::protocol::detect;
use crate::protocol::{Protocol, detect_tcp};
use crate::write_deadline::WriteDeadline;

/// A TCP listener that serves a `tower::Service` (a [`Router`](crate::Router), a
/// [`Server`](crate::Server), or any other) over HTTP/1.1 and HTTP/2 without TLS (h2c, by
/// prior knowledge) on the same port.
///
/// Defaults, each with a setter, named as on kit-transport-grpc's listener where they mean the
/// same: a client must send its first bytes, finish a TLS handshake and an HTTP/2 preface
/// within 10 s of connecting (the handshake timeout), and finish a request's headers within
/// 10 s of the protocol being known or of its previous request (else the connection is
/// closed); a response the client does not read for 30 s is abandoned and its connection
/// closed; at most 10,000 connections at once (at the cap, accepting waits until one closes);
/// HTTP/1.1 keep-alive on; TCP keep-alive probes after 30 s of silence, the connection closed
/// by the kernel when 3 go unanswered; HTTP/2 keep-alive pings off (one setter turns them on);
/// at most 64 KiB of request headers; on shutdown, in-flight requests get 30 s to finish.
/// Request bodies are timed by the servers that read them
/// ([`ServerOptions::body_read_timeout`](crate::ServerOptions::body_read_timeout)).
pub struct Listener {
    listener: TcpListener,
    local_addr: SocketAddr,
    handshake_timeout: Duration,
    header_read_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
    http1_keep_alive: bool,
    tcp_keep_alive: Option<Duration>,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Duration,
    max_header_bytes: usize,
    drain_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Listener");
        d.field("local_addr", &self.local_addr)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .field("http1_keep_alive", &self.http1_keep_alive)
            .field("tcp_keep_alive", &self.tcp_keep_alive)
            .field("http2_keep_alive_interval", &self.http2_keep_alive_interval)
            .field("http2_keep_alive_timeout", &self.http2_keep_alive_timeout)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("drain_timeout", &self.drain_timeout);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

/// The listen backlog [`Listener::bind`] asks for (the kernel caps it at
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 128, as std does: a burst of
/// new connections past that while the accept loop is busy has SYNs dropped, and each of
/// those clients waits a second for its retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Turns TCP keep-alive on for the connections `listener` accepts (they inherit it): probes
/// after `idle` of silence, then every 10 s; 3 unanswered close the connection.
fn set_tcp_keep_alive(listener: &TcpListener, idle: Duration) -> io::Result<()> {
    let keep_alive = socket2::TcpKeepalive::new().with_time(idle);
    // The probes' pace and count, where a socket can set them (elsewhere the system's).
    #[cfg(target_os = "linux")]
    let keep_alive = keep_alive
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(listener).set_tcp_keepalive(&keep_alive)
}

impl Listener {
    /// Binds to `addr` (port 0 picks a free port; see [`local_addr`](Listener::local_addr)),
    /// with a listen backlog of 4096.
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Listener::from_tcp(socket.listen(LISTEN_BACKLOG)?)
    }

    /// Serves on a listener bound elsewhere.
    pub fn from_tcp(listener: TcpListener) -> io::Result<Listener> {
        Ok(Listener {
            local_addr: listener.local_addr()?,
            listener,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            http1_keep_alive: true,
            tcp_keep_alive: Some(Duration::from_secs(30)),
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: Duration::from_secs(20),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Serves HTTPS: every connection starts with a TLS handshake (which must finish within the
    /// handshake timeout), then HTTP/1.1 or HTTP/2 as the client chose by ALPN. If `config`
    /// names no ALPN protocols, `h2` and `http/1.1` are offered. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, mut config: rustls::ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        self.tls = Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How long a client has, from connecting, to send its first bytes, finish a TLS handshake
    /// and (HTTP/2) send its connection preface; else the connection is closed. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long an HTTP/1.1 connection may wait for a request's headers, from when it starts
    /// waiting (the protocol known, or the last response written) until they are all in; a
    /// client that sends part of a head and stops, or nothing at all between requests, is then
    /// disconnected. Checked every half of it (every millisecond at the least), so a wait is
    /// cut off between one and one and a half times this, never sooner. Default 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a response may wait for the client to read any of it; then the connection is
    /// closed. Default 30 s.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The most connections open at once; at the cap, accepting waits until one closes (new
    /// clients wait in the kernel's backlog). Default 10,000.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Whether HTTP/1.1 connections are kept open between requests. Default on.
    pub fn http1_keep_alive(mut self, keep_alive: bool) -> Self {
        self.http1_keep_alive = keep_alive;
        self
    }

    /// TCP keep-alive on every connection: after `idle` without a packet from the client, the
    /// kernel probes it every 10 s, and closes the connection when 3 probes go unanswered (a
    /// client whose host is gone, or a NAT that forgot the connection). Set on the listening
    /// socket when serving starts, which connections inherit: no cost per request. Default
    /// 30 s; `None` leaves the socket as it is.
    pub fn tcp_keep_alive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keep_alive = idle;
        self
    }

    /// HTTP/2 keep-alive pings: one every `interval`, the connection closed when one goes
    /// unanswered for `timeout`. Off by default: unlike TCP keep-alive, they find a client
    /// whose process is stuck while its host still answers, but while they are on hyper reads
    /// the clock for every frame: about 800 instructions an HTTP/2 request on addsvc's
    /// benchmark, 2.5% of what the kit spends (docs/PERFORMANCE.md).
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.http2_keep_alive_interval = Some(interval);
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// The most request-header bytes accepted (HTTP/1.1: a larger head, request line included,
    /// gets 431; HTTP/2: the header list size advertised). Default 64 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// How long in-flight requests get to finish after shutdown starts. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The drain timeout this listener will use (what kit-server's run group waits for it).
    pub fn configured_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn protocols(&self) -> Protocols {
        let mut http1 = http1::Builder::new();
        // The header read timeout is the connection's stream's (`HeadDeadline`), not hyper's:
        // hyper's costs a clock read, a timer's setting and a turn of its loop per request.
        http1
            .header_read_timeout(None)
            .keep_alive(self.http1_keep_alive)
            // The head's own limit, on the parsed head: the buffer's alone stops only a head
            // still incomplete when the buffer reaches it, and a head read whole can be past it.
            .max_header_size(self.max_header_bytes)
            .max_buf_size(self.max_header_bytes.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(self.http2_keep_alive_interval)
            .keep_alive_timeout(self.http2_keep_alive_timeout);
        Protocols {
            http1,
            http2,
            header_read_timeout: self.header_read_timeout,
            write_timeout: self.write_timeout,
        }
    }

    /// Serves `service` until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (up to the drain timeout) and returns. Kit servers learn each request's peer
    /// ([`RequestInfo::remote_addr`](crate::RequestInfo::remote_addr)).
    ///
    /// Returns an error if accepting fails for a reason other than a per-connection one, or if
    /// connections were still open when the drain timeout passed.
    pub async fn serve<S, B>(self, service: S, shutdown: impl Future<Output = ()>) -> io::Result<()>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(idle) = self.tcp_keep_alive {
            set_tcp_keep_alive(&self.listener, idle)?;
        }
        let protocols = Arc::new(self.protocols());
        let drain = Drain::default();
        let places = Arc::new(Semaphore::new(self.max_connections));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let place = tokio::select! {
                () = &mut shutdown => break,
                place = Arc::clone(&places).acquire_owned() => place.expect("never closed"),
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) if is_per_connection(&err) => continue,
                    Err(err) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if is_fatal(&err) { return Err(err) }
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let calls = Arc::new(Calls::default());
            let hyper_service = ConnectionService::new(service.clone(), peer, Arc::clone(&calls));
            let handshake_timeout = self.handshake_timeout;
            let protocols = Arc::clone(&protocols);
            let tracked = drain.track();
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _place = place;
                // hyper's timeouts start once it knows the protocol; until then (first bytes,
                // TLS, the HTTP/2 preface) the handshake timeout holds.
                #[cfg(feature = "tls")]
                if let Some(acceptor) = tls {
                    let detected = async { detect(acceptor.accept(stream).await?).await };
                    if let Some((protocol, stream)) =
                        within(handshake_timeout, &tracked, detected).await
                    {
                        protocols
                            .serve(protocol, stream, calls, hyper_service, &tracked)
                            .await;
                    }
                    return;
                }
                if let Some((protocol, stream)) =
                    within(handshake_timeout, &tracked, detect_tcp(stream)).await
                {
                    protocols
                        .serve(protocol, stream, calls, hyper_service, &tracked)
                        .await;
                }
            });
        }
        drop(self.listener);
        match tokio::time::timeout(self.drain_timeout, drain.drain()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connections still open {:?} after shutdown started",
                    self.drain_timeout
                ),
            )),
        }
    }
}

/// What `detect` tells of a connection within the handshake timeout: nothing if it fails or
/// times out, or if the drain starts first (the connection has nothing in flight: it is closed
/// at once).
async fn within<S>(
    timeout: Duration,
    tracked: &Tracked,
    detect: impl Future<Output = io::Result<(Protocol, S)>>,
) -> Option<(Protocol, S)> {
    tokio::select! {
        detected = tokio::time::timeout(timeout, detect) => detected.ok()?.ok(),
        () = tracked.draining() => None,
    }
}

/// The listener's HTTP/1.1 and HTTP/2 settings, shared by its connections.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    write_timeout: Duration,
}

impl Protocols {
    /// Serves `stream`, which speaks `protocol`, until it closes; gracefully once the drain
    /// starts.
    async fn serve<T, S, B>(
        &self,
        protocol: Protocol,
        stream: T,
        calls: Arc<Calls>,
        service: S,
        tracked: &Tracked,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<Incoming, ResBody = B>,
        S::Error: Into<BoxError>,
        B: HttpBody + 'static,
        B::Error: Into<BoxError>,
        TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
    {
        let stream = WriteDeadline::new(stream, self.write_timeout);
        match protocol {
            Protocol::Http1 => {
                let stream = JsonAutomaticAnswers::new(stream, Arc::clone(&calls));
                let io = TokioIo::new(HeadDeadline::new(stream, calls, self.header_read_timeout));
                let connection = pin!(self.http1.serve_connection(io, service));
                tracked.serve(connection).await;
            }
            Protocol::Http2 => {
                let io = TokioIo::new(JsonAutomaticAnswers::new(stream, calls));
                let connection = pin!(self.http2.serve_connection(io, service));
                tracked.serve(connection).await;
            }
        }
    }
}

/// Accept errors that concern one connection only.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accept errors that will not go away by waiting (the listener itself is broken).
fn is_fatal(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::NotConnected | io::ErrorKind::Unsupported
    )
}
