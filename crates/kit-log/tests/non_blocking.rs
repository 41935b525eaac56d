//! The non-blocking writer: callers never wait for a slow writer; records that find the queue
//! full are dropped, counted and reported; everything else is written whole and in order.

mod support;

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kit_log::{Json, Logfmt, Logger};
use slog::Drain;
use support::{Captured, parse_logfmt};

/// A writer that holds every write until the test opens its gate.
#[derive(Clone)]
struct Gated {
    out: Captured,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gated {
    fn new(out: Captured) -> Self {
        Gated {
            out,
            open: Arc::default(),
        }
    }
    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl Write for Gated {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut open = self.open.0.lock().unwrap();
        while !*open {
            open = self.open.1.wait(open).unwrap();
        }
        self.out.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` on another thread and fails if it has not returned within a minute: the callers of
/// a non-blocking writer must never be held up by the writer.
fn must_not_block(f: impl FnOnce() + Send + 'static) {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    wait.recv_timeout(Duration::from_secs(60))
        .expect("logging blocked behind a stalled writer");
}

#[test]
fn a_stalled_writer_drops_and_counts_records_instead_of_blocking_callers() {
    let out = Captured::default();
    let gated = Gated::new(out.clone());
    let (encoder, guard) = Logfmt::non_blocking(gated.clone(), 4);
    let logger = Logger::new(encoder.ignore_res());
    must_not_block(move || {
        for seq in 0..100 {
            kit_log::info!(logger, "seq", seq);
        }
    });
    gated.open();
    guard.flush().unwrap();

    let dropped = guard.dropped();
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    // At most the room for 4 records got through (the lines being written count).
    assert!(dropped >= 96, "dropped {dropped}");
    let (records, report) = lines.split_at(lines.len() - 1);
    assert_eq!(records.len() as u64 + dropped, 100, "{text}");
    let seqs: Vec<u64> = records
        .iter()
        .map(|l| {
            let pairs = parse_logfmt(l).unwrap();
            assert_eq!(pairs[0], ("level".into(), "info".into()));
            pairs[1].1.parse().unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        report[0],
        format!("level=warn msg=\"log records dropped\" dropped={dropped}")
    );
}

#[test]
fn without_pressure_everything_is_written_and_dropping_the_guard_flushes() {
    let out = Captured::default();
    let (encoder, guard) = Json::non_blocking(out.clone(), 1024);
    let logger = Logger::new(encoder.ignore_res());
    for seq in 0..500 {
        kit_log::log!(logger, "seq", seq);
    }
    assert_eq!(guard.dropped(), 0);
    drop(guard);
    let expected: String = (0..500).map(|n| format!("{{\"seq\":{n}}}\n")).collect();
    assert_eq!(out.text(), expected);
    // After the guard is gone, records are discarded; logging still does not block or fail.
    kit_log::log!(logger, "late", true);
    assert_eq!(out.text(), expected);
}

#[test]
fn records_from_many_threads_arrive_whole() {
    let out = Captured::trickling(3);
    let (encoder, guard) = Logfmt::non_blocking(out.clone(), 64);
    let logger = Logger::new(encoder.ignore_res());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let logger = logger.clone();
            std::thread::spawn(move || {
                for n in 0..200 {
                    kit_log::info!(logger, "thread", t, "n", n, "text", "a b c");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    guard.flush().unwrap();
    let dropped = guard.dropped();
    let text = out.text();
    let mut records = 0;
    for line in text.lines() {
        let pairs = parse_logfmt(line).unwrap();
        if pairs[1].0 == "msg" {
            assert_eq!(pairs[1].1, "log records dropped");
            continue;
        }
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["level", "thread", "n", "text"], "{line}");
        records += 1;
    }
    assert_eq!(records + dropped, 1600);
}

#[test]
fn a_failing_writer_counts_the_lost_records() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (encoder, guard) = Logfmt::non_blocking(Broken, 16);
    let logger = Logger::new(encoder.ignore_res());
    for n in 0..10 {
        kit_log::log!(logger, "n", n);
    }
    guard.flush().unwrap();
    assert_eq!(guard.dropped(), 10);
}

#[test]
fn a_writer_that_panics_ends_its_thread_and_every_record_it_lost_is_counted() {
    struct Panicking;
    impl Write for Panicking {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            panic!("the disk is gone");
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (encoder, guard) = Logfmt::non_blocking(Panicking, 16);
    let logger = Logger::new(encoder.ignore_res());
    for n in 0..5 {
        kit_log::log!(logger, "n", n);
    }
    // The thread takes the lines, panics writing them and ends: the flush says so, at once.
    let flushed = guard.flush().expect_err("the writer thread has ended");
    assert_ne!(flushed.kind(), io::ErrorKind::TimedOut, "{flushed}");
    for n in 5..8 {
        kit_log::log!(logger, "n", n);
    }
    // The five it held and the three after (refused, or counted with what was waiting).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while guard.dropped() < 8 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(guard.dropped(), 8);
    must_not_block(move || drop(guard));
}

/// A writer that takes 2 ms per record.
struct Slow(Captured);

impl Write for Slow {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(2));
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn drops_are_reported_while_the_overload_lasts_not_only_after() {
    let out = Captured::default();
    let (encoder, guard) = Logfmt::non_blocking(Slow(out.clone()), 1);
    let logger = Logger::new(encoder.ignore_res());
    // Overload for 2.5 s: far more records than a 2 ms writer can take.
    let start = std::time::Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        kit_log::info!(logger, "seq", seq);
        seq += 1;
    }
    guard.flush().unwrap();
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    let reports: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("log records dropped"))
        .map(|(i, _)| i)
        .collect();
    assert!(reports.len() >= 2, "{} reports", reports.len());
    assert!(
        reports[0] < lines.len() - 1,
        "the first report came only at the end"
    );
    let reported: u64 = reports
        .iter()
        .map(|&i| parse_logfmt(lines[i]).unwrap()[2].1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(reported, guard.dropped());
    assert_eq!((lines.len() - reports.len()) as u64 + guard.dropped(), seq);
}

#[test]
fn flush_gives_up_on_a_stalled_writer_instead_of_blocking_for_ever() {
    let gated = Gated::new(Captured::default());
    let (encoder, guard) = Logfmt::non_blocking(gated.clone(), 2);
    let logger = Logger::new(encoder.ignore_res());
    for seq in 0..10 {
        kit_log::info!(logger, "seq", seq);
    }
    // The writer thread holds a line at the gate: the flush is queued and never answered.
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(guard.flush());
        guard
    });
    let flushed = wait
        .recv_timeout(Duration::from_secs(60))
        .expect("flush returns");
    assert_eq!(flushed.unwrap_err().kind(), io::ErrorKind::TimedOut);
    gated.open();
}

#[test]
fn the_queue_is_bounded_in_bytes_too() {
    let out = Captured::default();
    let gated = Gated::new(out.clone());
    // 8 records, so at most 8 KiB queued.
    let (encoder, guard) = Logfmt::non_blocking(gated.clone(), 8);
    let logger = Logger::new(encoder.ignore_res());
    let big = "x".repeat(3000);
    must_not_block(move || {
        for seq in 0..8 {
            kit_log::info!(logger, "seq", seq, "big", big.as_str());
        }
    });
    gated.open();
    guard.flush().unwrap();
    // Room for the queue's 8 KiB (two 3 KB records) and the line the writer thread holds:
    // the rest were dropped, though the queue had places for them.
    let written = out.text().lines().filter(|l| l.contains("big=")).count();
    assert!((2..=3).contains(&written), "{written} written");
    assert_eq!(written as u64 + guard.dropped(), 8);
}

#[test]
fn lines_that_wait_together_are_written_together() {
    /// Counts the writes it is given, and holds them until the gate opens.
    #[derive(Clone)]
    struct Counting(Gated, Arc<Mutex<usize>>);
    impl Write for Counting {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            *self.1.lock().unwrap() += 1;
            self.0.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let out = Captured::default();
    let gated = Gated::new(out.clone());
    let writes = Arc::new(Mutex::new(0));
    let (encoder, guard) = Logfmt::non_blocking(Counting(gated.clone(), Arc::clone(&writes)), 64);
    let logger = Logger::new(encoder.ignore_res());
    // The writer thread takes what it finds and waits at the gate; whatever comes meanwhile
    // waits for it, and goes out in the next write.
    for seq in 0..11 {
        kit_log::info!(logger, "seq", seq);
    }
    gated.open();
    guard.flush().unwrap();
    let expected: String = (0..11).map(|n| format!("level=info seq={n}\n")).collect();
    assert_eq!(out.text(), expected);
    let writes = *writes.lock().unwrap();
    assert!((1..=2).contains(&writes), "{writes} writes for 11 lines");
    assert_eq!(guard.dropped(), 0);
}

// Two threads hand a turn back and forth, each logging one record per turn: every record is
// logged after the one before it, on the other thread, over many of the writer thread's
// writes. The lines come out in that order.
#[test]
fn lines_from_several_threads_are_written_in_the_order_they_were_logged() {
    let out = Captured::default();
    let (encoder, guard) = Logfmt::non_blocking(out.clone(), 4096);
    let logger = Logger::new(encoder.ignore_res());
    const TURNS: u64 = 2000;
    let (to_b, b_turn) = mpsc::channel::<u64>();
    let (to_a, a_turn) = mpsc::channel::<u64>();
    let b = {
        let logger = logger.clone();
        std::thread::spawn(move || {
            while let Ok(n) = b_turn.recv() {
                kit_log::log!(logger, "n", n, "by", "b");
                if to_a.send(n + 1).is_err() {
                    break;
                }
            }
        })
    };
    let mut n = 0;
    while n < TURNS {
        kit_log::log!(logger, "n", n, "by", "a");
        to_b.send(n + 1).unwrap();
        n = a_turn.recv().unwrap();
    }
    drop(to_b);
    b.join().unwrap();
    guard.flush().unwrap();
    let numbers: Vec<u64> = out
        .text()
        .lines()
        .map(|l| parse_logfmt(l).unwrap()[0].1.parse().unwrap())
        .collect();
    assert_eq!(numbers, (0..TURNS).collect::<Vec<_>>());
    assert_eq!(guard.dropped(), 0);
}
