//! An HTTP/1.1 connection's stream under the listener's header read timeout: a client that
//! sends part of a request head and stops (or, between requests, nothing at all) is cut off.
//!
//! hyper has such a timeout, but with it set, hyper reads the clock and sets its timer at
//! every head, and after every response goes round its connection loop once more to start the
//! next head's timer: about 1,270 instructions a request (addsvc's `POST /sum`, callgrind,
//! docs/PERFORMANCE.md), two fifths of what the kit added over raw hyper. Here nothing is done
//! per request. One sleep per connection ticks every half timeout while the connection waits
//! for bytes; a tick that finds the connection has made no progress since the tick before (no
//! request reached the service, nothing was written, no call or write is under way) counts,
//! and the second such tick in a row closes the connection. A wait for a head is thus cut off
//! between one and one and a half timeouts after it began, never sooner, and the clock is read
//! once a tick, not once a request.
//!
//! Reads are what tick it: the sleep is looked at only when a read finds no bytes (the
//! connection is then waiting), and a sleep that fired is noticed then, by a flag, without
//! polling it again at every read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::calls::Calls;

/// How many ticks in a row without progress close the connection: the timeout is two ticks.
const IDLE_TICKS: u8 = 2;

/// The shortest time between ticks (tokio's timer counts milliseconds): a timeout of zero
/// would otherwise tick at every look.
const MIN_TICK: Duration = Duration::from_millis(1);

/// A stream whose waits for a request head are timed; see the module's doc.
pub(crate) struct HeadDeadline<S> {
    inner: S,
    calls: Arc<Calls>,
    timeout: Duration,
    /// Half the timeout, or [`MIN_TICK`].
    period: Duration,
    tick: Pin<Box<Sleep>>,
    /// Whether the tick's sleep has been polled since it was last set (its waker registered),
    /// so that its firing can be read off it without polling it.
    armed: bool,
    /// Writes done, a measure of progress beside the calls made.
    writes: u64,
    /// Whether the last write or flush was left pending (the write timeout's business).
    writing: bool,
    /// Progress (calls made and writes) as of the last tick.
    seen: u64,
    /// Ticks in a row that found no progress and nothing under way.
    idle_ticks: u8,
}

impl<S> HeadDeadline<S> {
    /// `inner`, whose waits for a request head may last `timeout` (to one and a half times
    /// that). Needs a tokio runtime with its timer.
    pub(crate) fn new(inner: S, calls: Arc<Calls>, timeout: Duration) -> Self {
        let period = (timeout / 2).max(MIN_TICK);
        HeadDeadline {
            inner,
            calls,
            timeout,
            period,
            tick: Box::pin(tokio::time::sleep(period)),
            armed: false,
            writes: 0,
            writing: false,
            seen: 0,
            idle_ticks: 0,
        }
    }

    /// A read found no bytes: the connection waits. Looks at the tick, and fails the read if
    /// the wait has lasted the timeout.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.armed && !self.tick.is_elapsed() {
            return Poll::Pending;
        }
        if self.tick.as_mut().poll(cx).is_pending() {
            self.armed = true;
            return Poll::Pending;
        }
        let progress = self.calls.made() + self.writes;
        if progress != self.seen || self.writing || self.calls.answering() != 0 {
            self.seen = progress;
            self.idle_ticks = 0;
        } else {
            self.idle_ticks += 1;
            if self.idle_ticks >= IDLE_TICKS {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no request head within {:?}", self.timeout),
                )));
            }
        }
        let next = tokio::time::Instant::now() + self.period;
        self.tick.as_mut().reset(next);
        // One tick a look: a sleep already due again (a clock that jumped) is looked at on the
        // next poll, which this asks for, rather than in a loop here.
        self.armed = self.tick.as_mut().poll(cx).is_pending();
        if !self.armed {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Notes a write's outcome: bytes written are progress, a write left pending is under way.
    fn wrote(&mut self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        self.writing = poll.is_pending();
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.writes += 1;
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes at every turn of its loop, written or not: only a flush left pending
        // (a write under way) says anything here.
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.writing = poll.is_pending();
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Reads from `stream` until it fails, flushing it before each read as hyper does at
    /// every turn of its loop; answers when, from the start.
    async fn fails_after<S: AsyncRead + AsyncWrite + Unpin>(
        stream: &mut S,
    ) -> (io::Error, Duration) {
        let start = tokio::time::Instant::now();
        let mut buf = [0; 64];
        let failed = async {
            loop {
                stream.flush().await.unwrap();
                match stream.read(&mut buf).await {
                    Ok(0) => panic!("the peer closed"),
                    Ok(_) => {}
                    Err(err) => return err,
                }
            }
        };
        let err = tokio::time::timeout(TIMEOUT * 6, failed)
            .await
            .expect("the wait is cut off");
        (err, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_for_a_head_is_cut_off_between_one_and_one_and_a_half_timeouts() {
        for trickle in [false, true] {
            let (client, server) = tokio::io::duplex(1024);
            let mut stream = HeadDeadline::new(server, Arc::default(), TIMEOUT);
            let mut client = client;
            // A client that trickles a byte a second is no better than a silent one.
            let trickling = tokio::spawn(async move {
                while trickle && client.write_all(b"G").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                client
            });
            let (err, after) = fails_after(&mut stream).await;
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert!(after >= TIMEOUT && after <= TIMEOUT * 3 / 2, "{after:?}");
            trickling.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_and_writes_are_progress_and_a_running_call_is_no_wait() {
        let (mut client, server) = tokio::io::duplex(1024);
        let calls = Arc::new(Calls::default());
        let mut stream = HeadDeadline::new(server, Arc::clone(&calls), TIMEOUT);
        let mut buf = [0; 64];
        // A call made every 4 s (one at least between any two ticks): never cut off.
        let reading = async {
            loop {
                let _ = stream.read(&mut buf).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        };
        let calling = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                drop(calls.start());
            }
        };
        tokio::select! {
            read = reading => panic!("cut off while calls were made: {read:?}"),
            () = calling => {}
        }

        // Nor while a response goes out a piece every 4 s, with no call made.
        for _ in 0..10 {
            let read = tokio::time::timeout(Duration::from_secs(4), stream.read(&mut buf)).await;
            assert!(read.is_err(), "cut off while writing: {read:?}");
            stream.write_all(b"x").await.unwrap();
        }
        let mut written = [0; 10];
        client.read_exact(&mut written).await.unwrap();

        // A call running for a minute: the connection is not waiting for a head.
        let running = calls.start();
        let waited = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await;
        assert!(waited.is_err(), "cut off during a call: {waited:?}");
        drop(running);
        // Its answer written, the next head's wait starts.
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut answer = [0; 19];
        client.read_exact(&mut answer).await.unwrap();
        let (err, after) = fails_after(&mut stream).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(after >= TIMEOUT && after <= TIMEOUT * 3 / 2, "{after:?}");
    }

    #[test]
    fn a_zero_timeout_ticks_every_millisecond_and_never_spins() {
        // On a thread of its own, so that a look that loops for ever fails the test rather
        // than hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let outcome = runtime.block_on(async {
                let (_client, server) = tokio::io::duplex(64);
                let calls = Arc::new(Calls::default());
                let mut stream = HeadDeadline::new(server, Arc::clone(&calls), Duration::ZERO);
                let mut buf = [0; 8];
                // A running call: ticks come and go, and the connection is left alone.
                let running = calls.start();
                let waited =
                    tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
                drop(running);
                let start = tokio::time::Instant::now();
                let cut = stream.read(&mut buf).await.unwrap_err();
                (waited.is_err(), cut.kind(), start.elapsed())
            });
            let _ = done.send(outcome);
        });
        let (left_alone, kind, after) = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the stream answers");
        assert!(left_alone, "cut off during a call");
        assert_eq!(kind, io::ErrorKind::TimedOut);
        assert!(after <= Duration::from_millis(3), "{after:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_is_left_to_the_write_timeout() {
        // A pipe with room for 4 bytes that the client never reads.
        let (_client, server) = tokio::io::duplex(4);
        let mut stream = HeadDeadline::new(server, Arc::default(), TIMEOUT);
        let mut buf = [0; 64];
        let written = stream.write(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(written, 4);
        // The rest stays pending; meanwhile the reads wait, and are not cut off.
        let stalled = async {
            let _ = stream.write_all(b"more").await;
        };
        tokio::select! {
            () = stalled => panic!("the write went through"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let waited = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await;
        assert!(
            waited.is_err(),
            "cut off while a write was stalled: {waited:?}"
        );
    }
}
