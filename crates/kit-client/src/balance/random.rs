//! Uniformly at random.

use std::fmt;

use kit_core::{BoxEndpoint, Endpointer, Error};

use super::{Balancer, Pick, current, untried};

/// Picks an endpoint of the current set uniformly at random (go-kit's `lb.NewRandom`).
///
/// The numbers come from a fast per-thread generator (fastrand), not a cryptographic one: a
/// pick needs to be spread, not secret.
pub struct Random<D> {
    endpointer: D,
}

impl<D> Random<D> {
    /// Balances over the sets `endpointer` publishes.
    pub fn new(endpointer: D) -> Self {
        Random { endpointer }
    }
}

impl<D> fmt::Debug for Random<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Random").finish_non_exhaustive()
    }
}

impl<D, Req, Resp> Balancer<Req, Resp> for Random<D>
where
    D: Endpointer<Req, Resp>,
    Req: 'static,
    Resp: 'static,
{
    fn pick(&self, tried: &[BoxEndpoint<Req, Resp>]) -> Result<Pick<Req, Resp>, Error> {
        let endpoints = current(&self.endpointer)?;
        let i = match untried(&endpoints, tried) {
            None => fastrand::usize(..endpoints.len()),
            Some(left) => left[fastrand::usize(..left.len())],
        };
        Ok(Pick::new(endpoints[i].clone()))
    }
}
