//! The non-blocking writer: records are encoded on the caller's thread and written on a
//! background thread. A record that finds no room is dropped and counted, never waited for: a
//! slow disk or a full pipe must not slow the service down.
//!
//! Lines are appended, back to back, to one buffer that the writer thread swaps for an empty
//! one and writes with one `write`, every 5 ms while lines come. Per record, the caller
//! takes a lock and copies the line; no queue slot, no buffer handed between threads, no system
//! call per line: on addsvc's benchmark that halved what a request's log line costs
//! (docs/PERFORMANCE.md). Once the two buffers have grown to fit a batch of lines, a
//! record costs no allocation. After a quiet spell the thread polls less often; the record that
//! brings the lines waiting to a quarter of the bounds wakes it.
//!
//! The thread ends when it finds the writer closed (by the guard), after writing what waits. A
//! writer that panics ends it too: what it held and what comes after is counted as dropped.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::encode::{Encoder, Format, Value};

/// What the guard, or a record that finds many lines waiting, asks of the writer thread. The
/// queue holds [`CONTROL_QUEUE`] of them.
enum Control {
    Flush(SyncSender<io::Result<()>>),
    /// Write what is waiting now (or end, the writer being closed), without waiting out the
    /// poll.
    Wake,
}

/// Lines waiting for the writer thread, back to back, and how many; the size of the batch the
/// writer thread is writing, which counts against the bounds too; whether a record has woken
/// the writer thread since it last took the lines; and whether the guard has closed the writer.
///
/// Everything a record touches is here, under the one lock it takes anyway: a counter or flag
/// beside it that every record updated would be one more cache line passed between the
/// service's threads per record (on addsvc's benchmark, `perf annotate` put a third of the
/// caller's cost on reading such a flag).
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    writing_lines: usize,
    writing_bytes: usize,
    woken: bool,
    closed: bool,
}

/// What the callers and the writer thread share.
struct Shared {
    pending: Mutex<Pending>,
    /// The most lines, and bytes, waiting at once: a few huge records must not hold what many
    /// small ones would.
    max_lines: usize,
    max_bytes: usize,
    /// The writer thread's control queue: records and the guard wake the thread through it,
    /// the guard's flushes go through it.
    control: SyncSender<Control>,
    /// Records dropped: those that found no room, those the underlying writer failed to take,
    /// and those logged after the guard closed the writer.
    dropped: AtomicU64,
}

impl Shared {
    /// Room for `capacity` records (at least 1) and `capacity` KiB; the writer thread is told
    /// through `control`.
    fn new(capacity: usize, control: SyncSender<Control>) -> Self {
        let capacity = capacity.max(1);
        Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(BUFFER),
                lines: 0,
                writing_lines: 0,
                writing_bytes: 0,
                woken: false,
                closed: false,
            }),
            max_lines: capacity,
            max_bytes: capacity.saturating_mul(1024),
            control,
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether as many lines, or bytes, waiting wake the writer thread: a quarter of the bounds
    /// (at least one line: under 8 records of room, the first line after each take wakes it),
    /// the bytes at most [`WAKE_BYTES`].
    fn wakes_at(&self, lines: usize, bytes: usize) -> bool {
        lines >= (self.max_lines / 4).max(1) || bytes >= (self.max_bytes / 4).min(WAKE_BYTES)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts what waits and what was being written as dropped, and closes the writer: its
    /// thread is gone (the underlying writer panicked), so later records are refused and counted.
    fn abandon(&self) {
        let mut pending = self.lock();
        let lost = std::mem::take(&mut pending.lines) + std::mem::take(&mut pending.writing_lines);
        pending.bytes.clear();
        pending.writing_bytes = 0;
        pending.closed = true;
        drop(pending);
        self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
    }

    /// Swaps what is pending for `batch` (empty) and counts it as being written; answers how
    /// many lines it holds now, and whether the guard has closed the writer.
    fn take(&self, batch: &mut Vec<u8>) -> (usize, bool) {
        let mut pending = self.lock();
        std::mem::swap(&mut pending.bytes, batch);
        let lines = std::mem::take(&mut pending.lines);
        pending.writing_lines = lines;
        pending.writing_bytes = batch.len();
        pending.woken = false;
        (lines, pending.closed)
    }
}

/// How often, at most, the writer thread reports drops while lines keep coming.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Each of the two buffers starts with room for a moderate load's batch (under a heavy one they
/// grow once, to the batch [`WAKE_BYTES`] ends), and one that grew past the largest (huge
/// records) is not kept.
const BUFFER: usize = 16 * 1024;
const MAX_KEPT_BUFFER: usize = 1024 * 1024;
/// Lines waiting that wake the writer thread before its poll is due: a quarter of the bounds,
/// and at most 64 KiB (under 4 ms of addsvc's lines at 150,000 requests a second). Under a
/// heavy load this, not the poll, ends a batch; after a quiet spell the thread polls only every
/// 50 ms, and a burst would otherwise fill the bounds (4,096 lines in 27 ms at that rate) and
/// grow both buffers to hold it.
const WAKE_BYTES: usize = 64 * 1024;
/// How long the writer thread lets lines gather after writing some; and after finding none,
/// at first and at most (while the service stays quiet).
const MIN_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(50);
/// How long dropping the guard waits for the writer thread.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Messages the writer thread's control queue holds: records wake it at most once a take, so
/// only flushes that gave up on a stalled writer (each leaves its request queued) fill it.
const CONTROL_QUEUE: usize = 16;

/// The caller's end of a non-blocking writer: each `write` is one whole record (the encoders
/// write a record with one `write_all`), appended to the lines waiting for the writer thread,
/// or dropped and counted. Made by [`Encoder::non_blocking`].
pub struct NonBlocking {
    lines: Lines,
}

/// Where a non-blocking writer's lines go; its encoder appends to it from any thread without
/// taking the encoder's own lock.
#[derive(Clone)]
pub(crate) struct Lines(Arc<Shared>);

impl Lines {
    /// Appends `line` (one whole record) to the lines waiting, or drops and counts it.
    pub(crate) fn push(&self, line: &[u8]) {
        let shared = &*self.0;
        let mut pending = shared.lock();
        if pending.closed
            || pending.lines + pending.writing_lines >= shared.max_lines
            || pending.bytes.len() + pending.writing_bytes + line.len() > shared.max_bytes
        {
            drop(pending);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            pending.bytes.extend_from_slice(line);
            pending.lines += 1;
            if !pending.woken && shared.wakes_at(pending.lines, pending.bytes.len()) {
                pending.woken = true;
                drop(pending);
                // A full control queue has the thread's attention already.
                let _ = shared.control.try_send(Control::Wake);
            }
        }
    }
}

impl Write for NonBlocking {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.lines.push(line);
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
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Tells the guard that the thread has ended, so that it can wait with a timeout.
    ended: Receiver<()>,
}

impl NonBlockingGuard {
    /// Records dropped so far: those that found no room, those the underlying writer failed
    /// to take, and, once it has panicked, those it held and those logged after.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call is written and the underlying writer is
    /// flushed; returns the flush's result (lines the underlying writer failed to take are
    /// counted in [`dropped`](NonBlockingGuard::dropped), not reported here). Waits at most 5 s
    /// (a stalled writer would otherwise hold the caller for ever), then answers a `TimedOut`
    /// error; answers an error too once the writer thread has ended (its writer panicked).
    pub fn flush(&self) -> io::Result<()> {
        let (done, wait) = mpsc::sync_channel(1);
        let stopped = || io::Error::other("the log writer thread has stopped");
        let stalled = || io::Error::new(io::ErrorKind::TimedOut, "the log writer is stalled");
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        match send_before(&self.shared.control, Control::Flush(done), deadline) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
            Err(TrySendError::Full(_)) => return Err(stalled()),
        }
        match wait.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(stalled()),
            Err(RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }
}

/// Sends `message` to the writer thread, retrying while its control queue is full until
/// `deadline` (flushes that gave up on a stalled writer can fill it): a flush must not be
/// dropped as records are, nor wait for ever.
fn send_before(
    control: &SyncSender<Control>,
    mut message: Control,
    deadline: Instant,
) -> Result<(), TrySendError<Control>> {
    loop {
        match control.try_send(message) {
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
        // Records are refused from here on; the thread writes what waits and ends when it finds
        // the writer closed. The wake-up spares it the rest of its poll (a full queue has its
        // attention already). A stalled writer's thread is left behind after the wait.
        self.shared.lock().closed = true;
        let _ = self.shared.control.try_send(Control::Wake);
        if self.ended.recv_timeout(SHUTDOWN_WAIT).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
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
    /// An encoder whose lines are written to `writer` on a background thread, with room for
    /// `capacity` records (at least 1) and at most `capacity` KiB of them waiting (so 4096
    /// records hold at most 4 MiB, however large each is). A record that finds no room is dropped and
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
        let (control, orders) = mpsc::sync_channel(CONTROL_QUEUE);
        let shared = Arc::new(Shared::new(capacity, control));
        let (end, ended) = mpsc::sync_channel(1);
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("kit-log-writer".into())
                .spawn(move || {
                    // A writer that panics (the hook has printed why) leaves the records it
                    // held unwritten: they, and those logged after, are counted as dropped.
                    let writing = std::panic::AssertUnwindSafe(|| {
                        write_lines(writer, &shared, &orders, report::<F>);
                    });
                    if std::panic::catch_unwind(writing).is_err() {
                        shared.abandon();
                    }
                    let _ = end.send(());
                })
                .expect("spawning the log writer thread")
        };
        let lines = Lines(Arc::clone(&shared));
        let encoder = Encoder::new(NonBlocking {
            lines: lines.clone(),
        })
        .with_lines(lines);
        let guard = NonBlockingGuard {
            shared,
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
    fn report(&mut self, writer: &mut impl Write, dropped: &AtomicU64) {
        let dropped = dropped.load(Ordering::Relaxed);
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
    fn catch_up(&mut self, writer: &mut impl Write, dropped: &AtomicU64) -> io::Result<()> {
        self.report(writer, dropped);
        writer.flush()
    }
}

/// The writer thread: writes the lines waiting until told to stop, reporting drops whenever it
/// catches up, and at least every second while it never does.
fn write_lines<W: Write>(
    mut writer: W,
    shared: &Shared,
    orders: &Receiver<Control>,
    format: fn(u64, &mut Vec<u8>),
) {
    let dropped = &shared.dropped;
    let mut reporter = Reporter {
        reported: 0,
        last: Instant::now(),
        format,
    };
    let mut batch = Vec::with_capacity(BUFFER);
    // Writes what is pending; answers whether there was anything, and whether the guard has
    // closed the writer.
    let mut write_pending = |writer: &mut W, reporter: &mut Reporter| {
        let (lines, closed) = shared.take(&mut batch);
        if lines == 0 {
            return (false, closed);
        }
        if writer.write_all(&batch).is_err() {
            dropped.fetch_add(lines as u64, Ordering::Relaxed);
        }
        let mut pending = shared.lock();
        (pending.writing_lines, pending.writing_bytes) = (0, 0);
        drop(pending);
        batch.clear();
        if batch.capacity() > MAX_KEPT_BUFFER {
            batch = Vec::with_capacity(BUFFER);
        }
        if reporter.last.elapsed() >= REPORT_EVERY {
            reporter.report(writer, dropped);
        }
        (true, closed)
    };
    let mut idle = MIN_POLL;
    loop {
        // Polled, not woken per record: a writer thread woken by every record costs a futex
        // call and two context switches per request, as much CPU as the request being
        // logged. While lines come, 5 ms' worth (or the 64 KiB that wake it) goes out in one
        // write: each wake-up takes the service's core from it (a context switch each way),
        // and at one a millisecond they showed in addsvc's HTTP/1.1 p99 (RFC 0002).
        let (wrote, closed) = write_pending(&mut writer, &mut reporter);
        // The guard's word to stop: the control queue, whose senders the records keep, never
        // closes while the thread runs.
        if closed {
            break;
        }
        let wait = if wrote {
            idle = MIN_POLL;
            MIN_POLL
        } else {
            let _ = reporter.catch_up(&mut writer, dropped);
            let wait = idle;
            idle = (idle * 2).min(MAX_POLL);
            wait
        };
        match orders.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) | Ok(Control::Wake) => {}
            Ok(Control::Flush(done)) => {
                write_pending(&mut writer, &mut reporter);
                let _ = done.send(reporter.catch_up(&mut writer, dropped));
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // What was queued before the close is written: the guard refuses records from the moment
    // it closes the writer.
    write_pending(&mut writer, &mut reporter);
    let _ = reporter.catch_up(&mut writer, dropped);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many wake-ups the writer thread has been sent.
    fn wakes(orders: &Receiver<Control>) -> usize {
        orders
            .try_iter()
            .filter(|order| matches!(order, Control::Wake))
            .count()
    }

    #[test]
    fn a_quarter_of_the_lines_bound_wakes_the_writer_once_until_it_takes_them() {
        let (wake, orders) = mpsc::sync_channel(16);
        let lines = Lines(Arc::new(Shared::new(16, wake)));
        for _ in 0..3 {
            lines.push(b"x\n");
        }
        assert_eq!(wakes(&orders), 0, "3 of 16 lines: the poll will do");
        lines.push(b"x\n");
        assert_eq!(wakes(&orders), 1, "4 of 16 lines wake the writer");
        for _ in 0..8 {
            lines.push(b"x\n");
        }
        assert_eq!(
            wakes(&orders),
            0,
            "woken once is enough until it takes the lines"
        );

        let mut batch = Vec::new();
        assert_eq!(lines.0.take(&mut batch), (12, false));
        for _ in 0..4 {
            lines.push(b"x\n");
        }
        assert_eq!(wakes(&orders), 1, "taking the lines re-arms the wake-up");
    }

    #[test]
    fn the_writer_thread_ends_when_it_finds_the_writer_closed() {
        // No message tells it: the records' wake-up sender keeps the control queue open, and
        // the guard's wake-up may find the queue full. The closed flag is the word to stop.
        let (wake, orders) = mpsc::sync_channel(16);
        let shared = Arc::new(Shared::new(16, wake));
        Lines(Arc::clone(&shared)).push(b"last\n");
        shared.lock().closed = true;
        let (ended, wait) = mpsc::channel();
        thread::spawn(move || {
            let mut out = Vec::new();
            write_lines(&mut out, &shared, &orders, |_, _| {});
            let _ = ended.send(out);
        });
        let out = wait
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer thread ends");
        assert_eq!(out, b"last\n", "what was waiting is written first");
    }

    #[test]
    fn so_does_a_quarter_of_the_bytes_bound_at_most_64_kib() {
        let (wake, orders) = mpsc::sync_channel(16);
        // 16 lines and 16 KiB of room: 4 KiB wake the writer, in fewer than 4 lines.
        let small = Lines(Arc::new(Shared::new(16, wake)));
        small.push(&[b'x'; 4095]);
        assert_eq!(wakes(&orders), 0);
        small.push(b"\n");
        assert_eq!(wakes(&orders), 1);

        // 4 MiB of room: 64 KiB wake it, not 1 MiB.
        let (wake, orders) = mpsc::sync_channel(16);
        let large = Lines(Arc::new(Shared::new(4096, wake)));
        let line = [b'x'; 1024];
        for _ in 0..63 {
            large.push(&line);
        }
        assert_eq!(wakes(&orders), 0);
        large.push(&line);
        assert_eq!(wakes(&orders), 1);
    }
}
