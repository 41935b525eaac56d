//! The circuit breaker: stop calling an endpoint that keeps failing, try it again later
//! (go-kit's `circuitbreaker`, without a third-party breaker behind it).
//!
//! **Closed**, calls go through and their outcomes are counted. The breaker trips to **open**
//! on [`consecutive_failures`](Breaker::consecutive_failures) failures in a row, or when, over
//! the last [`window`](Breaker::window) with at least [`min_calls`](Breaker::min_calls) calls,
//! the share of failures reaches [`failure_ratio`](Breaker::failure_ratio). Open, every call is
//! refused at once with an unavailable error ("circuit breaker is open"), which a
//! `retry::Retry` above a balancer takes to another instance. After
//! [`open_for`](Breaker::open_for), doubled after each trip in a row up to
//! [`max_open_for`](Breaker::max_open_for), the breaker turns **half-open** and lets
//! [`probes`](Breaker::probes) calls through: all succeed and it closes; one fails and it opens
//! again, for longer.
//!
//! A failure is kit-core's [`Outcome::Failure`]: business errors, also those carried in a reply
//! (an endpoint marked with [`kit_core::Failing`]), and the caller's own mistakes count as
//! successes, so a client sending bad requests never cuts a healthy service off.
//!
//! Put one breaker on each instance's endpoint, under the balancer: one bad instance is cut
//! off, not the service. Each [`wrap`](Middleware::wrap) makes a new breaker; clones of the
//! wrapped endpoint share it.

mod circuit;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kit_core::{Context, Endpoint, Error, Middleware, Outcome};
use tokio::time::Instant;

use circuit::{Admission, Circuit, Config};

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// A bounded number of probe calls go through.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half_open`, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

type OnChange = Arc<dyn Fn(State, State) + Send + Sync>;

/// The circuit-breaker middleware: wraps an endpoint in a [`BreakerEndpoint`] with a breaker
/// of its own.
///
/// Defaults, set here and nowhere else: trips on 5 failures in a row, or on 50% failures over
/// the last 10 s once 20 calls were counted there; open for 5 s, doubling after each trip in a
/// row up to 60 s; 3 probes when half-open.
///
/// ```
/// use kit_client::breaker::{Breaker, State};
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let down = endpoint_fn(|_cx, ()| async { Err::<(), _>(Error::unavailable("connection refused")) });
/// let ep = Breaker::new().consecutive_failures(2).wrap(down);
/// ep.call(Context::new(), ()).await.unwrap_err();
/// ep.call(Context::new(), ()).await.unwrap_err();
/// assert_eq!(ep.state(), State::Open);
/// let refused = ep.call(Context::new(), ()).await.unwrap_err();
/// assert_eq!(refused.message(), "circuit breaker is open");
/// # }
/// ```
#[derive(Clone)]
pub struct Breaker {
    config: Config,
    on_change: Option<OnChange>,
}

impl Breaker {
    /// A breaker with the defaults above.
    pub fn new() -> Self {
        Breaker {
            config: Config {
                consecutive_failures: 5,
                failure_ratio: 0.5,
                window: Duration::from_secs(10),
                min_calls: 20,
                open_for: Duration::from_secs(5),
                max_open_for: Duration::from_secs(60),
                probes: 3,
            },
            on_change: None,
        }
    }

    /// Trips on `n` failures in a row (at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.consecutive_failures = n.max(1);
        self
    }

    /// Trips when failures reach `ratio` (from 0 to 1) of the calls over the window.
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.config.failure_ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self
    }

    /// The time the failure ratio is counted over (in ten buckets).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// The ratio trips only once the window holds at least `n` calls.
    pub fn min_calls(mut self, n: u32) -> Self {
        self.config.min_calls = n;
        self
    }

    /// How long the breaker stays open after a first trip.
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.config.open_for = open_for;
        self
    }

    /// The longest it stays open, however many times in a row it tripped.
    pub fn max_open_for(mut self, max: Duration) -> Self {
        self.config.max_open_for = max;
        self
    }

    /// How many probe calls half-open lets through, and how many must succeed to close (at
    /// least 1).
    pub fn probes(mut self, n: u32) -> Self {
        self.config.probes = n.max(1);
        self
    }

    /// Calls `f(from, to)` on every change of state, after the change (to log and count it).
    /// It runs on the calling task, with no lock held: keep it short.
    pub fn on_state_change(mut self, f: impl Fn(State, State) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(f));
        self
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new()
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("config", &self.config)
            .field("on_state_change", &self.on_change.is_some())
            .finish()
    }
}

impl<E> Middleware<E> for Breaker {
    type Endpoint = BreakerEndpoint<E>;

    fn wrap(&self, inner: E) -> BreakerEndpoint<E> {
        let circuit = Circuit::new(self.config, Instant::now());
        BreakerEndpoint {
            inner,
            shared: Arc::new(Shared {
                closed: AtomicU64::new(circuit.phase()),
                circuit: Mutex::new(circuit),
            }),
            on_change: self.on_change.clone(),
        }
    }
}

/// An endpoint behind a circuit breaker; made by [`Breaker`]. Clones share the breaker.
#[derive(Clone)]
pub struct BreakerEndpoint<E> {
    inner: E,
    shared: Arc<Shared>,
    on_change: Option<OnChange>,
}

/// The circuit, and its phase while closed (`NOT_CLOSED` otherwise): a closed breaker, the
/// common case, admits a call without taking the lock.
struct Shared {
    circuit: Mutex<Circuit>,
    closed: AtomicU64,
}

const NOT_CLOSED: u64 = u64::MAX;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the circuit's phase for the lock-free admission, after a change.
    fn publish(&self, circuit: &Circuit) {
        let closed = match circuit.state() {
            State::Closed => circuit.phase(),
            _ => NOT_CLOSED,
        };
        self.closed.store(closed, Ordering::Release);
    }

    fn admit(&self) -> (Option<Admission>, Option<(State, State)>) {
        let phase = self.closed.load(Ordering::Acquire);
        if phase != NOT_CLOSED {
            return (
                Some(Admission {
                    probe: false,
                    phase,
                }),
                None,
            );
        }
        let mut circuit = self.lock();
        let admitted = circuit.admit(crate::clock::now());
        if admitted.1.is_some() {
            self.publish(&circuit);
        }
        admitted
    }

    fn record(&self, admission: Admission, failure: bool) -> Option<(State, State)> {
        let mut circuit = self.lock();
        let change = circuit.record(crate::clock::now(), admission, failure);
        if change.is_some() {
            self.publish(&circuit);
        }
        change
    }
}

impl<E> BreakerEndpoint<E> {
    /// The breaker's state now (an open breaker whose time is up reads open until a call
    /// comes).
    pub fn state(&self) -> State {
        self.shared.lock().state()
    }

    fn changed(&self, change: Option<(State, State)>) {
        if let (Some((from, to)), Some(f)) = (change, &self.on_change) {
            f(from, to);
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for BreakerEndpoint<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerEndpoint")
            .field("inner", &self.inner)
            .field("state", &self.state())
            .finish()
    }
}

/// An admitted call; a probe dropped before its result gives its place back.
struct Admitted<'a> {
    shared: &'a Shared,
    admission: Option<Admission>,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.filter(|a| a.probe) {
            self.shared.lock().release(admission);
        }
    }
}

impl<E, Req> Endpoint<Req> for BreakerEndpoint<E>
where
    E: Endpoint<Req>,
    Req: Send,
{
    type Response = E::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        // Time holds still within each poll: the layers below share one clock read.
        crate::clock::held(async move {
            let (admission, change) = self.shared.admit();
            self.changed(change);
            let Some(admission) = admission else {
                return Err(Error::unavailable("circuit breaker is open")
                    .with_source(crate::NotSent { by: "breaker" }));
            };
            let mut admitted = Admitted {
                shared: &self.shared,
                admission: Some(admission),
            };
            let result = self.inner.call(cx, req).await;
            admitted.admission = None;
            let failure = Outcome::of_call(&self.inner, &result) == Outcome::Failure;
            let change = self.shared.record(admission, failure);
            self.changed(change);
            result
        })
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

#[cfg(test)]
mod tests;
