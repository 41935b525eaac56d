//! The power of two choices on a peak-EWMA load estimate.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kit_core::{BoxEndpoint, Endpointer, Endpoints, Error, Outcome};
use tokio::time::Instant;

use super::{Balancer, Pick, current, untried};

/// Power of two choices (P2C) over a peak-EWMA load estimate.
///
/// Each pick draws two endpoints at random and calls the one whose cost is lower, where cost
/// = latency estimate × (calls in flight + 1). The latency estimate is a *peak* EWMA: a sample
/// above the estimate replaces it at once, samples below pull it down gradually, and with no
/// samples it decays toward zero over [`decay`](P2c::decay), so that an endpoint that was slow
/// is tried again later. A call that fails (kit-core's [`Outcome::Failure`]) counts as taking
/// at least [`failure_penalty`](P2c::failure_penalty): an instance that fails fast must not
/// look fast. An endpoint that joins the set starts at the mean estimate of the others, so it
/// gets its share at once. Business errors are answers and count as what they took.
///
/// Two random choices rather than the least loaded of all: picks stay O(1), callers that do
/// not coordinate do not all pile onto the same idle endpoint, and the load still evens out
/// (Mitzenmacher's "power of two choices"). This is Finagle's and linkerd's balancer.
///
/// ```
/// use kit_client::balance::{Balanced, P2c};
/// use kit_core::{endpoint_fn, BoxEndpoint, Context, Endpoint, Error, FixedEndpointer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let echo = |id: u8| BoxEndpoint::new(endpoint_fn(move |_cx, ()| async move { Ok::<_, Error>(id) }));
/// let instances = FixedEndpointer::new(vec![echo(1), echo(2), echo(3)]);
/// let any = Balanced::new(P2c::new(instances));
/// assert!((1..=3).contains(&any.call(Context::new(), ()).await.unwrap()));
/// # }
/// ```
pub struct P2c<D, Req, Resp> {
    endpointer: D,
    cache: RwLock<Option<Arc<Set<Req, Resp>>>>,
    clock: Clock,
}

/// The last set seen and its endpoints' loads, index for index. A pick holds the set (one
/// reference count) rather than its endpoint and load (two).
pub(super) struct Set<Req, Resp> {
    endpoints: Endpoints<Req, Resp>,
    loads: Vec<Arc<Load>>,
}

/// Time as nanoseconds since the balancer was made, and the estimate's settings.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base: Instant,
    decay_ns: f64,
    default_rtt_ns: f64,
    failure_penalty_ns: f64,
}

impl Clock {
    fn now_ns(&self) -> u64 {
        crate::clock::now()
            .saturating_duration_since(self.base)
            .as_nanos()
            .try_into()
            .unwrap_or(u64::MAX)
    }
}

/// One endpoint's load: calls in flight and the latency estimate. Atomics rather than a lock:
/// a pick reads two of these and must stay cheap; two completions racing may lose one sample,
/// which an estimate can afford.
#[derive(Debug)]
pub(crate) struct Load {
    in_flight: AtomicU32,
    /// The estimate in nanoseconds, as f64 bits, as of `at_ns`.
    rtt_ns: AtomicU64,
    at_ns: AtomicU64,
}

impl Load {
    fn new(rtt_ns: f64, now_ns: u64) -> Self {
        Load {
            in_flight: AtomicU32::new(0),
            rtt_ns: AtomicU64::new(rtt_ns.to_bits()),
            at_ns: AtomicU64::new(now_ns),
        }
    }

    /// How much the estimate kept from `at` to `now`: e^(-elapsed/decay).
    fn weight(&self, clock: &Clock, now_ns: u64) -> f64 {
        let elapsed = now_ns.saturating_sub(self.at_ns.load(Ordering::Relaxed)) as f64;
        (-elapsed / clock.decay_ns).exp()
    }

    /// The estimate at `now`, decayed toward zero since its last sample.
    fn rtt_at(&self, clock: &Clock, now_ns: u64) -> f64 {
        f64::from_bits(self.rtt_ns.load(Ordering::Relaxed)) * self.weight(clock, now_ns)
    }

    /// Whether this endpoint costs less than `other` (cost = estimate × (in flight + 1)).
    /// Both estimates decay by the same factor from any common instant, so the comparison
    /// needs no clock: only the difference of their sample times, as one `exp` of a
    /// non-positive number (no overflow, whatever the gap).
    fn cheaper_than(&self, other: &Load, clock: &Clock) -> bool {
        let cost = |load: &Load| {
            let pending = f64::from(load.in_flight.load(Ordering::Relaxed)) + 1.0;
            f64::from_bits(load.rtt_ns.load(Ordering::Relaxed)) * pending
        };
        let (at, other_at) = (
            self.at_ns.load(Ordering::Relaxed),
            other.at_ns.load(Ordering::Relaxed),
        );
        // The later sample has decayed less since: scale the earlier one down to its time.
        if at >= other_at {
            cost(self) < cost(other) * (-((at - other_at) as f64) / clock.decay_ns).exp()
        } else {
            cost(self) * (-((other_at - at) as f64) / clock.decay_ns).exp() < cost(other)
        }
    }

    fn observe(&self, clock: &Clock, now_ns: u64, sample_ns: f64) {
        let w = self.weight(clock, now_ns);
        let current = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed)) * w;
        let next = if sample_ns > current {
            sample_ns
        } else {
            current * w + sample_ns * (1.0 - w)
        };
        self.rtt_ns.store(next.to_bits(), Ordering::Relaxed);
        self.at_ns.store(now_ns, Ordering::Relaxed);
    }
}

/// A call in flight on one endpoint of a set: counted until dropped; [`InFlight::finish`]
/// also records its latency.
pub(super) struct InFlight<Req, Resp> {
    set: Arc<Set<Req, Resp>>,
    index: usize,
    clock: Clock,
    start_ns: u64,
}

impl<Req, Resp> InFlight<Req, Resp> {
    /// The endpoint called.
    pub(super) fn endpoint(&self) -> &BoxEndpoint<Req, Resp> {
        &self.set.endpoints[self.index]
    }

    /// Starts the call's clock: the latency sample runs from here to [`InFlight::finish`].
    pub(super) fn start(&mut self) {
        self.start_ns = self.clock.now_ns();
    }

    pub(super) fn finish(self, outcome: Outcome) {
        let now = self.clock.now_ns();
        let mut took = now.saturating_sub(self.start_ns) as f64;
        if outcome == Outcome::Failure {
            took = took.max(self.clock.failure_penalty_ns);
        }
        self.set.loads[self.index].observe(&self.clock, now, took);
    }
}

impl<Req, Resp> Drop for InFlight<Req, Resp> {
    fn drop(&mut self) {
        self.set.loads[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl<D, Req, Resp> P2c<D, Req, Resp> {
    /// Balances over the sets `endpointer` publishes, with a decay of 10 s, a first estimate
    /// of 30 ms (when no other endpoint has one) and a failure penalty of 1 s.
    pub fn new(endpointer: D) -> Self {
        P2c {
            endpointer,
            cache: RwLock::new(None),
            clock: Clock {
                base: Instant::now(),
                decay_ns: nanos(Duration::from_secs(10)),
                default_rtt_ns: nanos(Duration::from_millis(30)),
                failure_penalty_ns: nanos(Duration::from_secs(1)),
            },
        }
    }

    /// How fast an estimate forgets: after `decay` without samples it keeps 1/e of itself.
    /// Longer is steadier, shorter reacts faster. At least a millisecond.
    pub fn decay(mut self, decay: Duration) -> Self {
        self.clock.decay_ns = nanos(decay.max(Duration::from_millis(1)));
        self
    }

    /// The estimate of an endpoint when no endpoint has one yet.
    pub fn default_rtt(mut self, rtt: Duration) -> Self {
        self.clock.default_rtt_ns = nanos(rtt);
        self
    }

    /// The least latency a failed call counts as.
    pub fn failure_penalty(mut self, penalty: Duration) -> Self {
        self.clock.failure_penalty_ns = nanos(penalty);
        self
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

impl<D, Req, Resp> fmt::Debug for P2c<D, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2c")
            .field("decay", &Duration::from_nanos(self.clock.decay_ns as u64))
            .field(
                "failure_penalty",
                &Duration::from_nanos(self.clock.failure_penalty_ns as u64),
            )
            .finish_non_exhaustive()
    }
}

impl<D, Req, Resp> Balancer<Req, Resp> for P2c<D, Req, Resp>
where
    D: Endpointer<Req, Resp>,
    Req: 'static,
    Resp: 'static,
{
    fn pick(&self, tried: &[BoxEndpoint<Req, Resp>]) -> Result<Pick<Req, Resp>, Error> {
        // The set seen last, taken out of the lock before the endpointer is asked about it (an
        // endpointer may take its time, and a waiting writer would hold every pick behind it).
        let seen = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(set) = seen
            && self.endpointer.is_current(&set.endpoints)
        {
            return Ok(self.choose(set, tried));
        }
        // No set (an error, or empty): fail without the write lock.
        current(&self.endpointer)?;
        // A new set: the loads are made under the write lock, for the set current then, so
        // that a pick holding an older snapshot cannot put it back.
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = &*cache
            && self.endpointer.is_current(&set.endpoints)
        {
            return Ok(self.choose(Arc::clone(set), tried));
        }
        let endpoints = current(&self.endpointer)?;
        let set = Arc::new(Set {
            loads: self.loads_for(cache.as_deref(), &endpoints, self.clock.now_ns()),
            endpoints,
        });
        let replaced = cache.replace(Arc::clone(&set));
        drop(cache);
        // The last reference to a departed endpoint may close connections: not under the lock.
        drop(replaced);
        Ok(self.choose(set, tried))
    }
}

impl<D, Req, Resp> P2c<D, Req, Resp> {
    /// The loads for a new set: an endpoint that stays keeps its load; one that joins starts
    /// at the mean estimate of the set seen last (or the default).
    fn loads_for(
        &self,
        last: Option<&Set<Req, Resp>>,
        endpoints: &Endpoints<Req, Resp>,
        now: u64,
    ) -> Vec<Arc<Load>> {
        let (old, old_loads) = last.map_or((&[][..], &[][..]), |set| {
            (&set.endpoints[..], &set.loads[..])
        });
        let start = match old_loads.len() {
            0 => self.clock.default_rtt_ns,
            n => {
                old_loads
                    .iter()
                    .map(|l| l.rtt_at(&self.clock, now))
                    .sum::<f64>()
                    / n as f64
            }
        };
        endpoints
            .iter()
            .map(
                |endpoint| match old.iter().position(|o| o.ptr_eq(endpoint)) {
                    Some(i) => Arc::clone(&old_loads[i]),
                    None => Arc::new(Load::new(start, now)),
                },
            )
            .collect()
    }

    fn choose(
        &self,
        set: Arc<Set<Req, Resp>>,
        tried: &[BoxEndpoint<Req, Resp>],
    ) -> Pick<Req, Resp> {
        let left = untried(&set.endpoints, tried);
        let at = |k: usize| left.as_ref().map_or(k, |left| left[k]);
        let m = left.as_ref().map_or(set.endpoints.len(), Vec::len);
        let i = if m == 1 {
            at(0)
        } else {
            let (a, b) = two_draws(fastrand::u64(..), m);
            let (a, b) = (at(a), at(b));
            if set.loads[b].cheaper_than(&set.loads[a], &self.clock) {
                b
            } else {
                a
            }
        };
        set.loads[i].in_flight.fetch_add(1, Ordering::Relaxed);
        Pick::loaded(InFlight {
            set,
            index: i,
            clock: self.clock,
            // Set when the call starts (`InFlight::start`): the pick itself reads no clock.
            start_ns: 0,
        })
    }
}

/// Two distinct indexes below `m` (from 2 to 2^32) from one random word: each half of the
/// word scaled by multiply-shift (a bias of at most m / 2^32, nothing for a set of endpoints).
fn two_draws(r: u64, m: usize) -> (usize, usize) {
    debug_assert!((2..=1 << 32).contains(&m), "{m} endpoints");
    let m = m as u64;
    let a = ((r & 0xffff_ffff) * m) >> 32;
    let mut b = ((r >> 32) * (m - 1)) >> 32;
    if b >= a {
        b += 1;
    }
    (a as usize, b as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock() -> Clock {
        Clock {
            base: Instant::now(),
            decay_ns: 10e9,
            default_rtt_ns: 30e6,
            failure_penalty_ns: 1e9,
        }
    }

    fn load(rtt_ns: f64, at_ns: u64, in_flight: u32) -> Load {
        let load = Load::new(rtt_ns, at_ns);
        load.in_flight.store(in_flight, Ordering::Relaxed);
        load
    }

    /// The cost of `load` read at `now`, the way the comparison must agree with.
    fn cost_at(load: &Load, clock: &Clock, now_ns: u64) -> f64 {
        let elapsed = now_ns - load.at_ns.load(Ordering::Relaxed);
        let rtt = f64::from_bits(load.rtt_ns.load(Ordering::Relaxed));
        rtt * (-(elapsed as f64) / clock.decay_ns).exp()
            * (f64::from(load.in_flight.load(Ordering::Relaxed)) + 1.0)
    }

    fn endpoint(n: u32) -> BoxEndpoint<(), u32> {
        BoxEndpoint::new(kit_core::endpoint_fn(move |_cx, ()| async move { Ok(n) }))
    }

    fn cached(p2c: &P2c<impl Endpointer<(), u32>, (), u32>) -> Arc<Set<(), u32>> {
        p2c.cache.read().unwrap().clone().expect("a set is cached")
    }

    #[tokio::test]
    async fn a_call_in_flight_stays_counted_on_its_endpoint_across_a_set_change() {
        let (one, two, three) = (endpoint(1), endpoint(2), endpoint(3));
        let set = kit_core::EndpointSet::new();
        set.publish(vec![one.clone(), two.clone()]);
        let p2c = P2c::new(set.clone());
        let held = p2c.pick(&[]).unwrap();
        let first = cached(&p2c);
        set.publish(vec![three, two, one]);
        let _ = p2c.pick(&[]).unwrap();
        let second = cached(&p2c);
        assert!(!Arc::ptr_eq(&first, &second));
        // The endpoint picked first has the same load in the new set, still counting the call.
        let at = |set: &Set<(), u32>| {
            set.endpoints
                .iter()
                .position(|e| e.ptr_eq(held.endpoint()))
                .unwrap()
        };
        let load = &second.loads[at(&second)];
        assert!(Arc::ptr_eq(load, &first.loads[at(&first)]));
        let before = load.in_flight.load(Ordering::Relaxed);
        assert!(before >= 1);
        drop(held);
        assert_eq!(load.in_flight.load(Ordering::Relaxed), before - 1);
    }

    /// Answers set `a` to its first `endpoints` call and set `b` ever after.
    struct Flips {
        calls: std::sync::atomic::AtomicUsize,
        a: Endpoints<(), u32>,
        b: Endpoints<(), u32>,
    }

    impl Endpointer<(), u32> for Flips {
        fn endpoints(&self) -> Result<Endpoints<(), u32>, Error> {
            Ok(match self.calls.fetch_add(1, Ordering::Relaxed) {
                0 => Arc::clone(&self.a),
                _ => Arc::clone(&self.b),
            })
        }
    }

    #[test]
    fn the_set_cached_is_the_one_current_under_the_write_lock() {
        let flips = Flips {
            calls: Default::default(),
            a: vec![endpoint(1)].into(),
            b: vec![endpoint(2), endpoint(3)].into(),
        };
        let b = Arc::clone(&flips.b);
        let p2c = P2c::new(flips);
        let _ = p2c.pick(&[]).unwrap();
        assert!(
            Arc::ptr_eq(&cached(&p2c).endpoints, &b),
            "not the stale snapshot"
        );
    }

    #[test]
    fn two_draws_cover_every_pair_evenly() {
        // Three endpoints: each of the six ordered pairs about a sixth of the time.
        let mut seen = [[0u32; 3]; 3];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..60_000 {
            let (a, b) = two_draws(rng.u64(..), 3);
            seen[a][b] += 1;
        }
        for (a, row) in seen.iter().enumerate() {
            for (b, &n) in row.iter().enumerate() {
                if a == b {
                    assert_eq!(n, 0);
                } else {
                    assert!((9_000..11_000).contains(&n), "pair ({a}, {b}): {n}");
                }
            }
        }
    }

    #[test]
    fn a_fresher_sample_wins_over_a_decayed_one_only_when_it_costs_less_now() {
        let c = clock();
        // 10 ms measured 10 s ago is 3.7 ms now: cheaper than 5 ms measured just now.
        let (old, fresh) = (load(10e6, 0, 0), load(5e6, 10_000_000_000, 0));
        assert!(old.cheaper_than(&fresh, &c));
        assert!(!fresh.cheaper_than(&old, &c));
        // A gap of centuries decays to zero without overflow or NaN.
        let ancient = load(1e12, 0, 7);
        let now = load(1.0, u64::MAX / 2, 0);
        assert!(ancient.cheaper_than(&now, &c));
        assert!(!now.cheaper_than(&ancient, &c));
        // A zero estimate stays comparable.
        assert!(load(0.0, 0, 0).cheaper_than(&load(1.0, 5, 0), &c));
    }

    proptest! {
        #[test]
        fn two_draws_are_distinct_and_in_range(r in any::<u64>(), m in 2usize..100_000) {
            let (a, b) = two_draws(r, m);
            prop_assert!(a < m && b < m && a != b);
        }

        #[test]
        fn the_clockless_comparison_agrees_with_costs_read_at_any_common_instant(
            rtt_a in 0.0f64..1e10, at_a in 0u64..1_000_000_000_000, pending_a in 0u32..100,
            rtt_b in 0.0f64..1e10, at_b in 0u64..1_000_000_000_000, pending_b in 0u32..100,
            later in 0u64..100_000_000_000,
        ) {
            let c = clock();
            let (a, b) = (load(rtt_a, at_a, pending_a), load(rtt_b, at_b, pending_b));
            let now = at_a.max(at_b) + later;
            let (cost_a, cost_b) = (cost_at(&a, &c, now), cost_at(&b, &c, now));
            // Away from ties (where rounding may go either way), the answers are the same.
            let tie = (cost_a - cost_b).abs() <= 1e-9 * cost_a.max(cost_b);
            if !tie && cost_a > 1e-300 && cost_b > 1e-300 {
                prop_assert_eq!(b.cheaper_than(&a, &c), cost_b < cost_a);
            }
        }
    }
}
