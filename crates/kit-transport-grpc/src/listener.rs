//! Serving tonic services on a TCP listener with kit's defaults: limits, keep-alive, the health
//! service, and a graceful drain with a deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Routes;
use crate::incoming::Incoming;
use crate::{Health, WireLayer};

/// A TCP listener serving gRPC (HTTP/2 without TLS) with the defaults a service needs in
/// production, each with a setter:
///
/// - request messages over 4 MiB are refused with `RESOURCE_EXHAUSTED`
///   ([`WireLayer`]);
/// - at most 200 concurrent streams per connection (advertised in HTTP/2 settings), and no
///   per-connection concurrency limit beyond that unless one is set;
/// - TCP keep-alive probes after 30 s of silence, the connection closed by the kernel when 3
///   go unanswered; HTTP/2 keep-alive pings off (one setter turns them on);
/// - at most 10,000 connections open at once: at the cap, accepting waits until one closes;
///   after an accept error that is not about one connection (out of file descriptors),
///   accepting pauses 50 ms rather than spin;
/// - a client must send its HTTP/2 preface within 10 s of connecting, else the connection is
///   closed (a silent connection would otherwise stay open, and hold the drain open);
/// - a connection whose client makes the server reset more than 1,024 streams for its errors
///   gets GOAWAY (the "MadeYouReset" attack, CVE-2025-8671; tonic's own default is no limit);
/// - connections live as long as they are used, unless [`max_connection_age`] is set;
/// - on shutdown: the [`Health`] service, if one was given, turns every status to
///   `NOT_SERVING`; the listener stops accepting; connections that have not sent their preface
///   are closed; the others get GOAWAY; in-flight calls get 30 s to finish.
///
/// [`max_connection_age`]: Listener::max_connection_age
///
/// ```no_run
/// # async fn run(routes: kit_transport_grpc::Routes) -> std::io::Result<()> {
/// use kit_transport_grpc::{Health, Listener};
///
/// let health = Health::new();
/// let listener = Listener::bind("127.0.0.1:8082".parse().unwrap()).await?.health(&health);
/// listener.serve(routes, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    local_addr: SocketAddr,
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    concurrency_limit_per_connection: Option<usize>,
    tcp_keep_alive: Option<Duration>,
    keep_alive_interval: Option<Duration>,
    keep_alive_timeout: Duration,
    drain_timeout: Duration,
    max_connections: usize,
    handshake_timeout: Duration,
    write_timeout: Duration,
    max_connection_age: Option<Duration>,
    health: Option<Health>,
}

/// Streams a connection may make the server reset for its errors before it gets GOAWAY: hyper's
/// default, which kit's HTTP listener keeps too.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The listen backlog [`Listener::bind`] asks for (the kernel caps it at
/// `net.core.somaxconn`); tokio's `TcpListener::bind` asks for 128, too few for a burst of
/// new connections (dropped SYNs cost each such client a second).
const LISTEN_BACKLOG: u32 = 4096;

impl Listener {
    /// Binds `addr`, with a listen backlog of 4096.
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
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 200,
            concurrency_limit_per_connection: None,
            tcp_keep_alive: Some(Duration::from_secs(30)),
            keep_alive_interval: None,
            keep_alive_timeout: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connection_age: None,
            health: None,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The largest request message accepted, in bytes (its length prefix); larger ones get
    /// `RESOURCE_EXHAUSTED`. Default 4 MiB, tonic's own decoding limit: to go above it, raise
    /// the generated services' `max_decoding_message_size` too.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The most streams a client may open at once on one connection. Default 200.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// The most calls served at once per connection; more wait. Default: none beyond the
    /// stream limit.
    pub fn concurrency_limit_per_connection(mut self, limit: usize) -> Self {
        self.concurrency_limit_per_connection = Some(limit);
        self
    }

    /// TCP keep-alive on every connection: after `idle` without a packet from the client, the
    /// kernel probes it every 10 s, and closes the connection when 3 probes go unanswered (a
    /// client whose host is gone, or a NAT that forgot the connection). Set on the listening
    /// socket when serving starts, which connections inherit: no cost per call. Default 30 s;
    /// `None` leaves the socket as it is.
    pub fn tcp_keep_alive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keep_alive = idle;
        self
    }

    /// HTTP/2 keep-alive pings: one every `interval`, the connection closed when one goes
    /// unanswered for `timeout`. Off by default: unlike TCP keep-alive, they find a client
    /// whose process is stuck while its host still answers, but while they are on hyper reads
    /// the clock for every frame: about 770 instructions a call on addsvc's benchmark, 1.7% of
    /// what the kit and tonic spend (docs/PERFORMANCE.md).
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive_interval = Some(interval);
        self.keep_alive_timeout = timeout;
        self
    }

    /// The most connections open at once; at the cap, accepting waits until one closes.
    /// Default 10,000.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// How long a client has to send its HTTP/2 connection preface after connecting. Default
    /// 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a write to a client may wait for the client to read; past it the connection is
    /// closed, so a client that stops reading holds neither its replies in memory nor the drain.
    /// Default 30 s.
    ///
    /// A client that reads but never grants HTTP/2 flow-control window is not covered: nothing
    /// is written to it, so no write waits. What it holds is bounded by the stream limit and the
    /// window, and at shutdown the drain timeout ends it.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Closes connections older than `age` gracefully: GOAWAY, the calls in flight finish, new
    /// ones go to a new connection, so that load spreads again over instances added since.
    /// Default: none.
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// How long in-flight calls get to finish after shutdown starts. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The drain timeout this listener will use (what kit-server's run group waits for it).
    pub fn configured_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Serves `health` as `grpc.health.v1.Health` beside the other services, and reports every
    /// service `NOT_SERVING` when shutdown starts.
    pub fn health(mut self, health: &Health) -> Self {
        self.health = Some(health.clone());
        self
    }

    /// Serves `routes` until `shutdown` completes, then drains: stops accepting, lets in-flight
    /// calls finish, and returns once every connection has closed.
    ///
    /// Returns an error if the server fails, or if connections were still open when the drain
    /// timeout passed. In that case the calls still running are not cut off (tonic runs each
    /// connection on a task of its own): the error is the signal for the process to exit,
    /// which ends them.
    pub async fn serve(self, routes: Routes, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let routes = match &self.health {
            Some(health) => routes.add_service(health.service()),
            None => routes,
        };
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_keepalive_interval(self.keep_alive_interval)
            .http2_keepalive_timeout(Some(self.keep_alive_timeout))
            .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
        if let Some(limit) = self.concurrency_limit_per_connection {
            builder = builder.concurrency_limit_per_connection(limit);
        }
        if let Some(age) = self.max_connection_age {
            // No grace: with one, tonic skips the GOAWAY and cuts the connection off at
            // age + grace instead.
            builder = builder.max_connection_age(age);
        }
        if let Some(idle) = self.tcp_keep_alive {
            crate::incoming::set_tcp_keep_alive(&self.listener, idle)?;
        }
        let closing = CancellationToken::new();
        let incoming = Incoming::new(
            self.listener,
            self.max_connections,
            self.handshake_timeout,
            self.write_timeout,
            closing.clone(),
        );
        let draining = Arc::new(Notify::new());
        let signal = {
            let draining = Arc::clone(&draining);
            let health = self.health;
            async move {
                shutdown.await;
                if let Some(health) = health {
                    health.shut_down().await;
                }
                closing.cancel();
                draining.notify_one();
            }
        };
        let serve = builder
            .layer(WireLayer::new(self.max_message_bytes))
            .serve_with_incoming_shutdown(routes, incoming, signal);
        let drain_timeout = self.drain_timeout;
        tokio::select! {
            served = serve => served.map_err(io::Error::other),
            () = async {
                draining.notified().await;
                tokio::time::sleep(drain_timeout).await;
            } => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("gRPC connections still open {drain_timeout:?} after shutdown started"),
            )),
        }
    }
}
