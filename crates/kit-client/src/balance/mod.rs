//! Load balancing over a changing set of endpoints (go-kit's `sd/lb`).
//!
//! A [`Balancer`] picks one endpoint of a [`kit_core::Endpointer`]'s current set for each call;
//! [`Balanced`] makes a balancer an endpoint that calls what it picks. Three balancers:
//!
//! - [`RoundRobin`]: each endpoint in turn;
//! - [`Random`]: uniformly at random;
//! - [`P2c`]: the power of two choices on a peak-EWMA load estimate (latency × calls in
//!   flight), as Finagle and linkerd balance: two endpoints drawn at random, the less loaded
//!   one called. It moves load off a slow instance within a few calls and needs no
//!   coordination between callers.
//!
//! Every balancer reads the endpointer on every pick, so a set published by service discovery
//! takes effect on the next call: an endpoint that left gets no new call, one that joined gets
//! calls at once. An empty set is an [`ErrorKind::Unavailable`] error that says so; an
//! endpointer in error (discovery failing past its grace time) passes its error on.
//!
//! # Retries go elsewhere
//!
//! Under `retry::Retry`, each call's context carries the endpoints its earlier
//! attempts used, and every balancer here picks among the others while any are left: a retry
//! goes to another instance where there is one.
//!
//! [`ErrorKind::Unavailable`]: kit_core::ErrorKind::Unavailable

mod p2c;
mod random;
mod round_robin;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use kit_core::{BoxEndpoint, Context, Endpoint, Endpoints, Error, Outcome};

pub use p2c::P2c;
pub use random::Random;
pub use round_robin::RoundRobin;

/// Chooses the endpoint for one call (go-kit's `lb.Balancer`).
///
/// `tried` holds the endpoints earlier attempts of the same call used (empty for a first
/// attempt); a balancer picks among the others while any are left. A balancer is read
/// concurrently and must not block.
pub trait Balancer<Req, Resp>: Send + Sync + 'static {
    /// The endpoint for one call, or an error when there is none to pick (unavailable, or the
    /// endpointer's own error).
    fn pick(&self, tried: &[BoxEndpoint<Req, Resp>]) -> Result<Pick<Req, Resp>, Error>;
}

/// What a [`Balancer`] picked: the endpoint, and for a load-aware balancer the record of the
/// call's load, which ends with the call.
pub struct Pick<Req, Resp> {
    chosen: Chosen<Req, Resp>,
}

enum Chosen<Req, Resp> {
    Plain(BoxEndpoint<Req, Resp>),
    Loaded(p2c::InFlight<Req, Resp>),
}

impl<Req, Resp> Pick<Req, Resp> {
    /// A pick of `endpoint` that records nothing (what a balancer that keeps no load gives).
    pub fn new(endpoint: BoxEndpoint<Req, Resp>) -> Self {
        Pick {
            chosen: Chosen::Plain(endpoint),
        }
    }

    fn loaded(in_flight: p2c::InFlight<Req, Resp>) -> Self {
        Pick {
            chosen: Chosen::Loaded(in_flight),
        }
    }

    /// The endpoint picked.
    pub fn endpoint(&self) -> &BoxEndpoint<Req, Resp> {
        match &self.chosen {
            Chosen::Plain(endpoint) => endpoint,
            Chosen::Loaded(in_flight) => in_flight.endpoint(),
        }
    }
}

impl<Req, Resp> fmt::Debug for Pick<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("load_aware", &matches!(self.chosen, Chosen::Loaded(_)))
            .finish_non_exhaustive()
    }
}

/// The endpoints the attempts of one call have used, in the call's context; [`Retry`] puts it
/// there, the balancers read and extend it.
///
/// [`Retry`]: crate::retry::Retry
pub(crate) struct Tried<Req, Resp>(Mutex<Vec<BoxEndpoint<Req, Resp>>>);

impl<Req, Resp> Tried<Req, Resp> {
    #[cfg(feature = "retry")]
    pub(crate) fn new() -> Self {
        Tried(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BoxEndpoint<Req, Resp>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Balancer`] as an endpoint: each call is made on the endpoint the balancer picks.
///
/// `Balanced` cannot tell which endpoint gave a response, so it does not forward
/// [`Endpoint::failed`]; when the response type carries business errors, mark the balanced
/// endpoint with [`kit_core::Failing`] for the layers above it (the breakers under it see the
/// marking of each instance's endpoint).
pub struct Balanced<B, Resp> {
    balancer: B,
    // The response type the balancer's endpoints give: a balancer may serve several.
    response: PhantomData<fn() -> Resp>,
}

impl<B, Resp> Balanced<B, Resp> {
    /// Calls the endpoints `balancer` picks.
    pub fn new(balancer: B) -> Self {
        Balanced {
            balancer,
            response: PhantomData,
        }
    }

    /// The balancer.
    pub fn balancer(&self) -> &B {
        &self.balancer
    }
}

impl<B: Clone, Resp> Clone for Balanced<B, Resp> {
    fn clone(&self) -> Self {
        Balanced::new(self.balancer.clone())
    }
}

impl<B: fmt::Debug, Resp> fmt::Debug for Balanced<B, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balanced")
            .field("balancer", &self.balancer)
            .finish()
    }
}

impl<B, Req, Resp> Endpoint<Req> for Balanced<B, Resp>
where
    B: Balancer<Req, Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;

    fn call(&self, cx: Context, req: Req) -> impl Future<Output = Result<Resp, Error>> + Send {
        // Time holds still within each poll: the layers below share one clock read.
        crate::clock::held(async move {
            // Under a retry: keep a handle on the context's record of tried endpoints (the context
            // itself goes to the endpoint).
            let retried = cx.get::<Tried<Req, Resp>>().is_some().then(|| cx.clone());
            let tried = retried.as_ref().and_then(Context::get::<Tried<Req, Resp>>);
            let mut pick = match tried {
                None => self.balancer.pick(&[])?,
                Some(tried) => self.balancer.pick(&tried.lock())?,
            };
            if let Chosen::Loaded(in_flight) = &mut pick.chosen {
                in_flight.start();
            }
            let endpoint = pick.endpoint();
            let result = endpoint.call(cx, req).await;
            // Only a failed attempt is followed by another: a success records nothing.
            if let (Err(_), Some(tried)) = (&result, tried) {
                tried.lock().push(endpoint.clone());
            }
            if let Chosen::Loaded(in_flight) = pick.chosen {
                let outcome = Outcome::of_call(in_flight.endpoint(), &result);
                in_flight.finish(outcome);
            }
            result
        })
    }
}

/// The endpoints of `endpoints` not in `tried`, by index; all of them when every one was
/// tried (or none was).
fn untried<Req, Resp>(
    endpoints: &Endpoints<Req, Resp>,
    tried: &[BoxEndpoint<Req, Resp>],
) -> Option<Vec<usize>> {
    if tried.is_empty() {
        return None;
    }
    let left: Vec<usize> = (0..endpoints.len())
        .filter(|&i| !tried.iter().any(|t| t.ptr_eq(&endpoints[i])))
        .collect();
    (!left.is_empty()).then_some(left)
}

/// The endpointer's current set, or an unavailable error when it is empty (or the
/// endpointer's own error).
fn current<Req, Resp>(
    endpointer: &impl kit_core::Endpointer<Req, Resp>,
) -> Result<Endpoints<Req, Resp>, Error> {
    let endpoints = endpointer.endpoints()?;
    if endpoints.is_empty() {
        return Err(Error::unavailable("no endpoints available"));
    }
    Ok(endpoints)
}
