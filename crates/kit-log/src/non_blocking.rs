//! The non-blocking writer: records are encoded on the caller's thread and written on a
//! background thread, through a bounded queue. A record that finds the queue full is dropped
//! and counted, never waited for: a slow disk or a full pipe must not slow the service down.
//!
//! Lines travel in reusable buffers that the writer thread hands back, so once the buffers
//! exist, a record costs the caller no allocation: a copy into a buffer and a `try_send`.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::encode::{Encoder, Format, Value};

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<io::Result<()>>),
    Stop,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    /// Lines queued by callers, and lines the writer thread took off the queue: the difference
    /// after the thread has ended is lines that were queued too late to be seen.
    sent: AtomicU64,
    received: AtomicU64,
    /// Bytes of the lines queued and not yet written.
    queued_bytes: AtomicUsize,
    closed: AtomicBool,
}

/// How often, at most, the writer thread reports drops while the queue never empties.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Buffers that grew past this (a huge record) are not kept for reuse.
const MAX_SPARE_BUFFER: usize = 64 * 1024;
/// How soon the writer thread looks at the queue again after finding it empty: at first, and
/// at most (while the service stays quiet).
const MIN_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(50);
/// How long dropping the guard waits for the writer thread.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The caller's end of a non-blocking writer: each `write` is one whole record (the encoders
/// write a record with one `write_all`), queued for the writer thread or dropped and counted.
/// Made by [`Encoder::non_blocking`].
pub struct NonBlocking {
    queue: SyncSender<Message>,
    /// The most bytes queued at once: a few huge records must not hold what many small ones
    /// would.
    max_bytes: usize,
    /// Empty buffers coming back from the writer thread.
    spare: Receiver<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Write for NonBlocking {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.counters.closed.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let queued = &self.counters.queued_bytes;
        if queued.fetch_add(line.len(), Ordering::Relaxed) + line.len() > self.max_bytes {
            queued.fetch_sub(line.len(), Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.extend_from_slice(line);
        match self.queue.try_send(Message::Line(buf)) {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queued.fetch_sub(line.len(), Ordering::Relaxed);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Dropping is this writer's answer to pressure, not an error of the caller's record.
        Ok(line.len())
    }

    /// Does not wait for the writer thread: use [`NonBlockingGuard::flush`] for that.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Owns the writer thread of a [`NonBlocking`] writer. Dropping it writes what is queued,
/// flushes the underlying writer and stops the thread, waiting at most 5 s for a stalled
/// writer; records logged after that are discarded. Keep it alive for as long as the service
/// logs (typically in `main`).
#[must_use = "dropping the guard stops the writer thread"]
pub struct NonBlockingGuard {
    queue: SyncSender<Message>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    /// Tells the guard that the thread has ended, so that it can wait with a timeout.
    ended: Receiver<()>,
}

impl NonBlockingGuard {
    /// Records dropped so far: those that found the queue full, those the underlying writer
    /// failed to take, and those logged after the guard was dropped.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call is written and the underlying writer is
    /// flushed; returns the flush's result. Waits at most 5 s (a stalled writer would otherwise
    /// hold the caller for ever), then answers a `TimedOut` error.
    pub fn flush(&self) -> io::Result<()> {
        let (done, wait) = mpsc::sync_channel(1);
        let stopped = || io::Error::other("the log writer thread has stopped");
        let stalled = || io::Error::new(io::ErrorKind::TimedOut, "the log writer is stalled");
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        match send_before(&self.queue, Message::Flush(done), deadline) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
            Err(TrySendError::Full(_)) => return Err(stalled()),
        }
        match wait.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(stalled()),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }
}

/// Queues `message` behind what is there, retrying while the queue is full until `deadline`
/// (a stalled writer keeps it full): the guard's messages must not be dropped as records are,
/// nor wait for ever.
fn send_before(
    queue: &SyncSender<Message>,
    mut message: Message,
    deadline: Instant,
) -> Result<(), TrySendError<Message>> {
    loop {
        match queue.try_send(message) {
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                message = back;
                thread::sleep(Duration::from_millis(1));
            }
            result => return result,
        }
    }
}

impl Drop for NonBlockingGuard {
    fn drop(&mut self) {
        self.counters.closed.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        // Behind what is queued: that is written first. A stalled writer keeps the queue full;
        // then the thread is left behind after the wait.
        if let Err(TrySendError::Full(_)) = send_before(&self.queue, Message::Stop, deadline) {
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        if self.ended.recv_timeout(wait).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            let (sent, received) = (
                self.counters.sent.load(Ordering::Relaxed),
                self.counters.received.load(Ordering::Relaxed),
            );
            self.counters
                .dropped
                .fetch_add(sent.saturating_sub(received), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for NonBlockingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlockingGuard")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl<F: Format> Encoder<F, NonBlocking> {
    /// An encoder whose lines are written to `writer` on a background thread, through a queue
    /// of `capacity` records (at least 1) and at most `capacity` KiB of them (so 4096 records
    /// hold at most 4 MiB, however large each is). A record that finds the queue full is dropped and
    /// counted ([`NonBlockingGuard::dropped`]); when the writer thread catches up, it writes a
    /// `level=warn msg="log records dropped" dropped=N` record in the same format, N counting
    /// the records dropped since the last such report.
    ///
    /// ```
    /// use kit_log::{Logfmt, Logger};
    /// use slog::Drain;
    ///
    /// let (encoder, guard) = Logfmt::non_blocking(std::io::stderr(), 4096);
    /// let logger = Logger::new(encoder.ignore_res());
    /// kit_log::info!(logger, "msg", "started");
    /// drop(guard); // writes what is queued and stops the thread
    /// ```
    #[must_use = "dropping the guard stops the writer thread"]
    pub fn non_blocking<W: Write + Send + 'static>(
        writer: W,
        capacity: usize,
    ) -> (Self, NonBlockingGuard) {
        let capacity = capacity.max(1);
        let (queue, lines) = mpsc::sync_channel(capacity);
        let (give_back, spare) = mpsc::sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        let (end, ended) = mpsc::sync_channel(1);
        let thread = {
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("kit-log-writer".into())
                .spawn(move || {
                    write_lines(writer, &lines, &give_back, &counters, report::<F>);
                    // The queue's receiver goes first: later sends fail and are counted.
                    drop(lines);
                    let _ = end.send(());
                })
                .expect("spawning the log writer thread")
        };
        let encoder = Encoder::new(NonBlocking {
            queue: queue.clone(),
            max_bytes: capacity.saturating_mul(1024),
            spare,
            counters: Arc::clone(&counters),
        });
        let guard = NonBlockingGuard {
            queue,
            counters,
            thread: Some(thread),
            ended,
        };
        (encoder, guard)
    }
}

/// The record that reports `dropped` records, in format `F`.
fn report<F: Format>(dropped: u64, out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    F::begin(out);
    F::pair(out, &mut scratch, "level", Value::Str("warn"));
    out.push(F::SEPARATOR);
    F::pair(out, &mut scratch, "msg", Value::Str("log records dropped"));
    out.push(F::SEPARATOR);
    F::pair(out, &mut scratch, "dropped", Value::U64(dropped));
    F::end(out);
}

/// Writes the drop reports: how many were reported, and when last.
struct Reporter {
    reported: u64,
    last: Instant,
    format: fn(u64, &mut Vec<u8>),
}

impl Reporter {
    /// Writes a report if records were dropped since the last one.
    fn report(&mut self, writer: &mut impl Write, counters: &Counters) {
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > self.reported {
            let mut line = Vec::new();
            (self.format)(dropped - self.reported, &mut line);
            self.reported = dropped;
            self.last = Instant::now();
            // A report that fails is not itself counted: it is not a caller's record, and
            // counting it would report again at every catch-up.
            let _ = writer.write_all(&line);
        }
    }

    /// Reports and flushes: the queue is empty.
    fn catch_up(&mut self, writer: &mut impl Write, counters: &Counters) -> io::Result<()> {
        self.report(writer, counters);
        writer.flush()
    }
}

/// The writer thread: writes lines until told to stop, reporting drops whenever it catches up,
/// and at least every second while it never does.
fn write_lines<W: Write>(
    mut writer: W,
    lines: &Receiver<Message>,
    give_back: &SyncSender<Vec<u8>>,
    counters: &Counters,
    format: fn(u64, &mut Vec<u8>),
) {
    let mut reporter = Reporter {
        reported: 0,
        last: Instant::now(),
        format,
    };
    let mut idle = MIN_POLL;
    loop {
        let message = match lines.try_recv() {
            Ok(message) => {
                idle = MIN_POLL;
                message
            }
            Err(TryRecvError::Empty) => {
                let _ = reporter.catch_up(&mut writer, counters);
                // Polled, not blocked on: a receiver blocked in `recv` makes every send wake
                // this thread (a futex call and two context switches per record, as much CPU
                // as the request being logged); polled, a burst is taken in one go. The poll
                // slows down while the service is quiet.
                thread::sleep(idle);
                idle = (idle * 2).min(MAX_POLL);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match message {
            Message::Line(mut line) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if writer.write_all(&line).is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                counters
                    .queued_bytes
                    .fetch_sub(line.len(), Ordering::Relaxed);
                if reporter.last.elapsed() >= REPORT_EVERY {
                    reporter.report(&mut writer, counters);
                }
                if line.capacity() <= MAX_SPARE_BUFFER {
                    line.clear();
                    // The spare queue may be full: then this buffer is simply freed.
                    let _ = give_back.try_send(line);
                }
            }
            Message::Flush(done) => {
                let _ = done.send(reporter.catch_up(&mut writer, counters));
            }
            Message::Stop => break,
        }
    }
    // Lines that slipped in behind the stop are counted, not lost silently.
    while let Ok(message) = lines.try_recv() {
        if let Message::Line(_) = message {
            counters.received.fetch_add(1, Ordering::Relaxed);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = reporter.catch_up(&mut writer, counters);
}
