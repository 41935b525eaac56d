//! The connections a [`Listener`](crate::Listener) hands to tonic's server, accepted by kit
//! rather than by tonic, for three things tonic's own accept loop does not do:
//!
//! - a cap on open connections: at the cap, accepting waits until one closes (new clients wait
//!   in the kernel's backlog) instead of taking file descriptors until none are left;
//! - a pause after an accept error that is not about one connection (out of file descriptors):
//!   tonic retries at once, spinning a core for as long as the condition lasts;
//! - a deadline for the client's HTTP/2 preface: hyper waits for it for ever, and a connection
//!   that has sent nothing (or half a preface) keeps tonic's drain open until its deadline. A
//!   connection whose preface is not complete within the handshake timeout, or when the drain
//!   starts, fails its next read and is closed;
//! - a write timeout: a client that stops reading keeps the server's writes pending for ever,
//!   with its replies in memory and the drain held open. A write (or flush) pending for longer
//!   than the write timeout fails, and the connection is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, PollSemaphore, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The client's connection preface: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
const PREFACE_LEN: usize = 24;

/// How long accepting pauses after an error that is not about one connection.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Turns TCP keep-alive on for the connections `listener` accepts (they inherit it): probes
/// after `idle` of silence, then every 10 s; 3 unanswered close the connection.
pub(crate) fn set_tcp_keep_alive(listener: &TcpListener, idle: Duration) -> io::Result<()> {
    let keep_alive = socket2::TcpKeepalive::new().with_time(idle);
    // The probes' pace and count, where a socket can set them (elsewhere the system's).
    #[cfg(target_os = "linux")]
    let keep_alive = keep_alive
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(listener).set_tcp_keepalive(&keep_alive)
}

/// The stream of accepted connections.
pub(crate) struct Incoming {
    listener: TcpListener,
    permits: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
    pause: Option<Pin<Box<Sleep>>>,
    handshake_timeout: Duration,
    write_timeout: Duration,
    draining: CancellationToken,
}

impl Incoming {
    pub(crate) fn new(
        listener: TcpListener,
        max_connections: usize,
        handshake_timeout: Duration,
        write_timeout: Duration,
        draining: CancellationToken,
    ) -> Incoming {
        Incoming {
            listener,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(max_connections))),
            permit: None,
            pause: None,
            handshake_timeout,
            write_timeout,
            draining,
        }
    }
}

impl futures_core::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Conn>>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = &mut this.pause {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            if this.permit.is_none() {
                match ready!(this.permits.poll_acquire(cx)) {
                    Some(permit) => this.permit = Some(permit),
                    None => return Poll::Ready(None),
                }
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let permit = this.permit.take().expect("acquired above");
                    return Poll::Ready(Some(Ok(Conn {
                        stream,
                        _permit: permit,
                        preface: Some(Preface {
                            left: PREFACE_LEN,
                            deadline: Box::pin(tokio::time::sleep(this.handshake_timeout)),
                            draining: Box::pin(this.draining.clone().cancelled_owned()),
                        }),
                        write_timeout: this.write_timeout,
                        write_stall: None,
                    })));
                }
                Err(err) if is_per_connection(&err) => continue,
                // Out of file descriptors and the like: wait rather than spin.
                Err(_) => this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE))),
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

/// An accepted connection: its place under the cap is freed when it is dropped.
pub(crate) struct Conn {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the preface has arrived.
    preface: Option<Preface>,
    write_timeout: Duration,
    /// Since when a write has been pending.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    /// A write's outcome, failed once it has been pending for the write timeout.
    fn timed<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.write_stall = None;
            return poll;
        }
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?}"),
        )))
    }
}

struct Preface {
    left: usize,
    deadline: Pin<Box<Sleep>>,
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(preface) = &mut this.preface {
            if preface.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within the handshake timeout",
                )));
            }
            if preface.draining.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "draining before the HTTP/2 preface",
                )));
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if let Some(preface) = &mut this.preface {
            preface.left = preface.left.saturating_sub(buf.filled().len() - before);
            if preface.left == 0 {
                this.preface = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.timed(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.timed(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.timed(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
