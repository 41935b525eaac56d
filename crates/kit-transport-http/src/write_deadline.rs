//! A connection's stream under the listener's write timeout, for the stall hyper does not time:
//! a client that never reads its response keeps the server's writes pending for ever, with the
//! response in memory and the drain held open. A write (or flush) pending for longer than the
//! write timeout fails. (The other, a client that sends part of an HTTP/2 preface and stops, is
//! the handshake timeout's: the listener waits for the protocol under it, `protocol.rs`.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream under the listener's write timeout.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    write_timeout: Duration,
    /// Since when a write has been pending.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// `inner`, whose writes may stall for `write_timeout`.
    pub(crate) fn new(inner: S, write_timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            write_timeout,
            write_stall: None,
        }
    }

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

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.timed(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.timed(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.timed(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_write_pending_past_the_write_timeout_fails_and_progress_resets_it() {
        let (mut client, server) = tokio::io::duplex(8);
        let mut stream = WriteDeadline::new(server, Duration::from_secs(5));
        // The pipe holds 8 bytes: the rest waits for the client to read.
        let write = tokio::spawn(async move {
            let result = stream.write_all(&[7; 64]).await;
            (result, stream)
        });
        // Reading 8 bytes every 4 s keeps the write alive ...
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let mut got = [0; 8];
            client.read_exact(&mut got).await.unwrap();
        }
        assert!(!write.is_finished());
        // ... and then nothing more is read.
        let (result, _) = write.await.unwrap();
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
