//! Timing a piece of work into a histogram, in seconds.

use std::time::Instant;

use crate::Histogram;

/// Observes the seconds elapsed since it started into a histogram (go-kit's `metrics.Timer`).
///
/// ```
/// use kit_metrics::{memory::MemoryHistogram, Timer};
///
/// let took = MemoryHistogram::new("work_seconds", &[]).unwrap();
/// let timer = Timer::start(took.clone());
/// // ... the work ...
/// let seconds = timer.observe_duration();
/// assert_eq!(took.observations(&[]), vec![seconds]);
/// ```
#[derive(Debug)]
#[must_use = "a timer observes nothing until observe_duration is called"]
pub struct Timer<H> {
    histogram: H,
    start: Instant,
}

impl<H: Histogram> Timer<H> {
    /// Starts timing now.
    pub fn start(histogram: H) -> Self {
        Timer {
            histogram,
            start: Instant::now(),
        }
    }

    /// Observes the seconds elapsed since the start, and returns them.
    pub fn observe_duration(self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        self.histogram.observe(seconds);
        seconds
    }
}
