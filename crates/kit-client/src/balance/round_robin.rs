//! Each endpoint in turn.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use kit_core::{BoxEndpoint, Endpointer, Error};

use super::{Balancer, Pick, current, untried};

/// Picks the endpoints of the current set in turn (go-kit's `lb.NewRoundRobin`).
///
/// One counter for all callers: with a set of n endpoints, any n consecutive picks call each
/// once. When the set changes, the turn goes on from where it was, over the new set.
pub struct RoundRobin<D> {
    endpointer: D,
    next: AtomicUsize,
}

impl<D> RoundRobin<D> {
    /// Balances over the sets `endpointer` publishes.
    pub fn new(endpointer: D) -> Self {
        RoundRobin {
            endpointer,
            next: AtomicUsize::new(0),
        }
    }
}

impl<D> fmt::Debug for RoundRobin<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobin").finish_non_exhaustive()
    }
}

impl<D, Req, Resp> Balancer<Req, Resp> for RoundRobin<D>
where
    D: Endpointer<Req, Resp>,
    Req: 'static,
    Resp: 'static,
{
    fn pick(&self, tried: &[BoxEndpoint<Req, Resp>]) -> Result<Pick<Req, Resp>, Error> {
        let endpoints = current(&self.endpointer)?;
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let i = match untried(&endpoints, tried) {
            None => turn % endpoints.len(),
            Some(left) => left[turn % left.len()],
        };
        Ok(Pick::new(endpoints[i].clone()))
    }
}
