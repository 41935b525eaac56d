//! A connection's stream under the listener's deadlines, for the two stalls hyper does not time:
//!
//! - the first bytes: hyper's header timeout starts once it knows the protocol, and it learns
//!   it from the client's first 24 bytes (an HTTP/2 preface, or not). A client that sends part
//!   of a preface and stops, or finishes a TLS handshake choosing `h2` and then sends nothing,
//!   would hold its connection for ever. Until the bytes read either complete the preface or
//!   stop matching it (an HTTP/1.1 request, which hyper's header timeout covers), a deadline
//!   runs; past it, the next read fails and the connection is closed.
//! - writes that make no progress: a client that never reads its response keeps the server's
//!   writes pending for ever, with the response in memory and the drain held open. A write
//!   (or flush) pending for longer than the write timeout fails.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream with the listener's deadlines.
pub(crate) struct Deadlines<S> {
    inner: S,
    /// Until the protocol is known: how much of the preface has been seen, and by when the
    /// rest must come.
    start: Option<(usize, Pin<Box<Sleep>>)>,
    write_timeout: Duration,
    /// Since when a write has been pending.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> Deadlines<S> {
    /// `inner`, whose first bytes are due within `start_timeout`, and whose writes may stall
    /// for `write_timeout`.
    pub(crate) fn new(inner: S, start_timeout: Duration, write_timeout: Duration) -> Self {
        Deadlines {
            inner,
            start: Some((0, Box::pin(tokio::time::sleep(start_timeout)))),
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

impl<S: AsyncRead + Unpin> AsyncRead for Deadlines<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((_, deadline)) = &mut this.start
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not start a request in time",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some((seen, _)) = &mut this.start {
            let new = &buf.filled()[before..];
            let rest = &PREFACE[*seen..];
            let n = new.len().min(rest.len());
            if new[..n] != rest[..n] || *seen + n == PREFACE.len() {
                // Not a preface (HTTP/1.1), or the whole of one: hyper takes it from here.
                this.start = None;
            } else {
                *seen += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlines<S> {
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

    /// Reads through `Deadlines` what `client` sends, split at every byte: the start deadline is
    /// off once the bytes stop matching a preface or complete one, and on otherwise.
    #[tokio::test(start_paused = true)]
    async fn the_start_deadline_ends_with_a_request_or_a_whole_preface_split_anywhere() {
        let cases: [(&[u8], bool); 4] = [
            (PREFACE, false),
            (b"POST /sum HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"PRI * HTTP/2.0\r\n", true),
            (b"", true),
        ];
        for (sent, still_armed) in cases {
            for split in 0..=sent.len() {
                let (client, server) = tokio::io::duplex(64);
                let mut stream = Deadlines::new(server, Duration::from_secs(1), Duration::MAX);
                let mut client = client;
                client.write_all(&sent[..split]).await.unwrap();
                client.write_all(&sent[split..]).await.unwrap();
                let mut got = vec![0; sent.len()];
                stream.read_exact(&mut got).await.unwrap();
                assert_eq!(got, sent);
                assert_eq!(
                    stream.start.is_some(),
                    still_armed,
                    "{sent:?} split at {split}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_after_the_start_deadline_fails() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = Deadlines::new(server, Duration::from_secs(1), Duration::MAX);
        client.write_all(&PREFACE[..10]).await.unwrap();
        let mut got = [0; 10];
        stream.read_exact(&mut got).await.unwrap();
        let err = stream.read(&mut [0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_pending_past_the_write_timeout_fails_and_progress_resets_it() {
        let (mut client, server) = tokio::io::duplex(8);
        let mut stream = Deadlines::new(server, Duration::MAX, Duration::from_secs(5));
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
