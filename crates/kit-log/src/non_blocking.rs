//! The non-blocking writer: records are encoded on the caller's thread and written on a
//! background thread, through a bounded queue. A record that finds the queue full is dropped
//! and counted, never waited for: a slow disk or a full pipe must not slow the service down.
//!
//! Lines travel in reusable buffers that the writer thread hands back, so once the buffers
//! exist, a record costs the caller no allocation: a copy into a buffer and a `try_send`.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, JoinHandle};

use crate::encode::{Encoder, Format, Value};

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<io::Result<()>>),
    Stop,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// The caller's end of a non-blocking writer: each `write` is one whole record (the encoders
/// write a record with one `write_all`), queued for the writer thread or dropped and counted.
/// Made by [`Encoder::non_blocking`].
pub struct NonBlocking {
    queue: SyncSender<Message>,
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
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.extend_from_slice(line);
        if let Err(TrySendError::Full(Message::Line(_)) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Message::Line(buf))
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
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
/// flushes the underlying writer and stops the thread; records logged after that are counted as
/// dropped. Keep it alive for as long as the service logs (typically in `main`).
pub struct NonBlockingGuard {
    queue: SyncSender<Message>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl NonBlockingGuard {
    /// Records dropped so far: those that found the queue full, those the underlying writer
    /// failed to take, and those logged after the guard was dropped.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call is written and the underlying writer is
    /// flushed; returns the flush's result.
    pub fn flush(&self) -> io::Result<()> {
        let (done, wait) = mpsc::sync_channel(1);
        let stopped = || io::Error::other("the log writer thread has stopped");
        self.queue
            .send(Message::Flush(done))
            .map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?
    }
}

impl Drop for NonBlockingGuard {
    fn drop(&mut self) {
        self.counters.closed.store(true, Ordering::Relaxed);
        // Blocks until the queue has room: what was queued before is written first.
        let _ = self.queue.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
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
    /// An encoder whose lines are written to `writer` on a background thread, through a queue
    /// of `capacity` records (at least 1). A record that finds the queue full is dropped and
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
    pub fn non_blocking<W: Write + Send + 'static>(
        writer: W,
        capacity: usize,
    ) -> (Self, NonBlockingGuard) {
        let capacity = capacity.max(1);
        let (queue, lines) = mpsc::sync_channel(capacity);
        let (give_back, spare) = mpsc::sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        let thread = {
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("kit-log-writer".into())
                .spawn(move || write_lines(writer, &lines, &give_back, &counters, report::<F>))
                .expect("spawning the log writer thread")
        };
        let encoder = Encoder::new(NonBlocking {
            queue: queue.clone(),
            spare,
            counters: Arc::clone(&counters),
        });
        let guard = NonBlockingGuard {
            queue,
            counters,
            thread: Some(thread),
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

/// The writer thread: writes lines until told to stop, reporting drops whenever it catches up.
fn write_lines<W: Write>(
    mut writer: W,
    lines: &Receiver<Message>,
    give_back: &SyncSender<Vec<u8>>,
    counters: &Counters,
    report: fn(u64, &mut Vec<u8>),
) {
    let mut reported = 0;
    let mut catch_up = |writer: &mut W| {
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            let mut line = Vec::new();
            report(dropped - reported, &mut line);
            reported = dropped;
            // A report that fails is not itself counted: it is not a caller's record, and
            // counting it would report again at every catch-up.
            let _ = writer.write_all(&line);
        }
        writer.flush()
    };
    loop {
        let message = match lines.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty) => {
                let _ = catch_up(&mut writer);
                match lines.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match message {
            Message::Line(mut line) => {
                if writer.write_all(&line).is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                line.clear();
                // The spare queue may be full: then this buffer is simply freed.
                let _ = give_back.try_send(line);
            }
            Message::Flush(done) => {
                let _ = done.send(catch_up(&mut writer));
            }
            Message::Stop => break,
        }
    }
    // Lines that slipped in behind the stop are counted, not lost silently.
    while let Ok(message) = lines.try_recv() {
        if let Message::Line(_) = message {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = catch_up(&mut writer);
}
