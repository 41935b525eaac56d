//! What every backend's tests watch: an instancer's set, its convergence, the CPU a loop spends,
//! and the log lines it writes.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kit_core::{BoxEndpoint, Error, endpoint_fn};
use kit_log::{Logfmt, Logger};
use kit_sd::Instancer;
use slog::Drain;

/// The instancer's current set, or `None` while it reports an error.
pub(crate) fn set(instancer: &impl Instancer) -> Option<BTreeSet<String>> {
    instancer
        .current()
        .ok()
        .map(|set| set.iter().cloned().collect())
}

/// Waits up to `within` for the instancer's set to be `want`; how long it took.
pub(crate) async fn converges(
    instancer: &impl Instancer,
    want: &[&str],
    within: Duration,
) -> Duration {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let start = Instant::now();
    while start.elapsed() < within {
        if set(instancer).as_ref() == Some(&want) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "after {within:?} the set is {:?}, not {want:?}",
        instancer.current()
    );
}

/// This thread's CPU time (user + system), from /proc. A test on a current-thread runtime
/// reads its backend loop's cost this way, whatever other tests do meanwhile.
pub(crate) fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // After the command name (which may hold spaces), utime and stime are the 12th and 13th
    // fields, in ticks of 1/100 s (USER_HZ on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Log lines, captured.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A logfmt logger writing here.
    pub(crate) fn logger(&self) -> Logger {
        Logger::new(Logfmt::new(self.clone()).ignore_res())
    }

    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that contain `containing`.
    pub(crate) fn lines(&self, containing: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(containing))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Endpoints made per instance, counted: the factory an `Endpointer` gets in the tests (each
/// endpoint answers its instance's address), and how many times it ran.
#[derive(Clone, Default)]
pub(crate) struct Made(Arc<AtomicUsize>);

impl Made {
    /// How many endpoints the factory has made.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// The counting factory.
    pub(crate) fn factory(
        &self,
    ) -> impl Fn(&str) -> Result<BoxEndpoint<(), String>, Error> + Send + Sync + 'static {
        let made = self.0.clone();
        move |instance: &str| {
            made.fetch_add(1, Ordering::SeqCst);
            let instance = instance.to_owned();
            Ok(BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
                let instance = instance.clone();
                async move { Ok::<_, Error>(instance) }
            })))
        }
    }
}
