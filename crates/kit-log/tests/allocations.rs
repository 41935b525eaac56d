//! Allocation counts per record (a count, not a timing): once the encoder's reused buffers
//! have grown, logging a record allocates nothing.
// A counting global allocator is the one use of unsafe here: GlobalAlloc is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kit_log::{Level, LevelFilter, caller, timestamp_utc};
use slog::{Drain, Logger, debug, info, o};

struct Counting;

thread_local! {
    // Const-initialised and without a destructor: touching it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator unchanged; the counter is a
// thread-local Cell, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations on this thread while `f` runs 100 times, after one warm-up run.
fn allocations_per_100(mut f: impl FnMut()) -> u64 {
    f();
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..100 {
        f();
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn logging_a_record_allocates_nothing() {
    let logfmt = Logger::root(kit_log::Logfmt::new(std::io::sink()).fuse(), o!());
    let json = Logger::root(kit_log::Json::new(std::io::sink()).fuse(), o!());
    let contextual = logfmt.new(o!("a" => 1, "b" => "two", "c" => 3.5, "d" => true));
    let valued = logfmt.new(o!("ts" => timestamp_utc(), "caller" => caller()));
    let formatted = json.new(o!("x" => format_args!("{}", 1).to_string()));
    let filtered = Logger::root(
        LevelFilter::new(kit_log::Logfmt::new(std::io::sink()), Level::Info).ignore_res(),
        o!(),
    );
    let kit = kit_log::Logger::new(kit_log::Logfmt::new(std::io::sink()).ignore_res())
        .with(kit_log::kv!("a", 1, "b", "two"))
        .with_prefix(kit_log::kv!("ts", timestamp_utc()))
        .with_suffix(kit_log::kv!("caller", caller()));

    let counts = [
        (
            "kit logger with prefix, context and suffix",
            allocations_per_100(|| {
                kit_log::info!(kit, "k1", 1, "k2", "v 2", "odd");
            }),
        ),
        (
            "logfmt simple",
            allocations_per_100(|| info!(logfmt, "hello"; "k1" => 1, "k2" => "v 2")),
        ),
        (
            "json simple",
            allocations_per_100(|| info!(json, "hello"; "k1" => 1, "k2" => "v 2")),
        ),
        (
            "logfmt contextual",
            allocations_per_100(|| info!(contextual, "hello"; "k1" => 1, "k2" => 2)),
        ),
        (
            "logfmt ts+caller",
            allocations_per_100(|| info!(valued, "hello"; "k1" => 1)),
        ),
        (
            "json formatted",
            allocations_per_100(|| info!(formatted, "n={}", 7; "v" => format_args!("{}-{}", 1, 2))),
        ),
        (
            "disallowed",
            allocations_per_100(|| debug!(filtered, "hello"; "k1" => 1)),
        ),
    ];
    for (name, n) in counts {
        assert_eq!(n, 0, "{name}: {n} allocations per 100 records");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let n = allocations_per_100(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8))));
    assert_eq!(n, 100);
}

#[test]
fn the_non_blocking_writer_reuses_its_buffers() {
    let (encoder, guard) = kit_log::Logfmt::non_blocking(std::io::sink(), 16);
    let logger = kit_log::Logger::new(encoder.ignore_res());
    let log_counted = || {
        let before = ALLOCATIONS.with(Cell::get);
        kit_log::info!(logger, "k1", 1, "k2", "v 2");
        let n = ALLOCATIONS.with(Cell::get) - before;
        // The writer thread has written the line and given its buffer back when this returns.
        guard.flush().unwrap();
        n
    };
    // The first record allocates the buffer that every later one reuses.
    log_counted();
    let n: u64 = (0..100).map(|_| log_counted()).sum();
    assert_eq!(n, 0, "{n} allocations on the caller's side per 100 records");
    assert_eq!(guard.dropped(), 0);
}
