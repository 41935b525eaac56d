//! Sets of endpoints that change over time: what service discovery produces and load
//! balancers consume (go-kit's `sd.Endpointer`).
//!
//! kit-sd turns the instances a discovery backend reports into endpoints and publishes them;
//! kit-client's balancers read the current set on every call. The contract lives here so that
//! neither crate depends on the other, and so that anything else (a fixed list, a test) can
//! stand on either side.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::{BoxEndpoint, Error};

/// A snapshot of an endpoint set: cheap to clone, never changes once taken.
pub type Endpoints<Req, Resp> = Arc<[BoxEndpoint<Req, Resp>]>;

/// The current endpoints for one method of a service.
///
/// `endpoints` is called on the hot path (once per balanced call), so implementations return a
/// shared snapshot rather than building a list. An error means the set is not known (discovery
/// failed and the last good set has been invalidated); an empty set means it is known to be
/// empty. Callers may compare snapshots with [`Arc::ptr_eq`] to see whether the set changed.
pub trait Endpointer<Req, Resp>: Send + Sync + 'static {
    /// The current set.
    fn endpoints(&self) -> Result<Endpoints<Req, Resp>, Error>;

    /// Whether `seen` is still the current set (the same snapshot, by [`Arc::ptr_eq`]).
    ///
    /// A balancer that keeps state per set asks this on every call instead of taking a
    /// snapshot it would only compare and drop: two atomic reference-count updates fewer on
    /// the hot path. The default asks [`endpoints`](Endpointer::endpoints); implementations
    /// that hold their set override it to compare without cloning.
    fn is_current(&self, seen: &Endpoints<Req, Resp>) -> bool {
        self.endpoints()
            .is_ok_and(|current| Arc::ptr_eq(&current, seen))
    }
}

impl<T, Req, Resp> Endpointer<Req, Resp> for Arc<T>
where
    T: Endpointer<Req, Resp> + ?Sized,
{
    fn endpoints(&self) -> Result<Endpoints<Req, Resp>, Error> {
        (**self).endpoints()
    }

    fn is_current(&self, seen: &Endpoints<Req, Resp>) -> bool {
        (**self).is_current(seen)
    }
}

/// A set that never changes (go-kit's `FixedEndpointer`).
#[derive(Clone)]
pub struct FixedEndpointer<Req, Resp> {
    endpoints: Endpoints<Req, Resp>,
}

impl<Req, Resp> FixedEndpointer<Req, Resp> {
    /// The set `endpoints`, for ever.
    pub fn new(endpoints: impl Into<Endpoints<Req, Resp>>) -> Self {
        FixedEndpointer {
            endpoints: endpoints.into(),
        }
    }
}

impl<Req, Resp> Endpointer<Req, Resp> for FixedEndpointer<Req, Resp>
where
    Req: 'static,
    Resp: 'static,
{
    fn endpoints(&self) -> Result<Endpoints<Req, Resp>, Error> {
        Ok(Arc::clone(&self.endpoints))
    }

    fn is_current(&self, seen: &Endpoints<Req, Resp>) -> bool {
        Arc::ptr_eq(&self.endpoints, seen)
    }
}

impl<Req, Resp> fmt::Debug for FixedEndpointer<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedEndpointer")
            .field("len", &self.endpoints.len())
            .finish()
    }
}

/// A set that its publisher replaces as it learns of changes; clones share the same set.
///
/// Service discovery holds one clone and calls [`EndpointSet::publish`] or
/// [`EndpointSet::fail`]; balancers hold others and read [`Endpointer::endpoints`]. Until the
/// first `publish` the set is unknown: readers get an [`ErrorKind::Unavailable`] error "no
/// endpoints published yet", not an empty set (which would mean "known to be empty").
///
/// [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable
///
/// ```
/// use kit_core::{endpoint_fn, BoxEndpoint, EndpointSet, Endpointer, Error};
///
/// let set = EndpointSet::<u32, u32>::new();
/// let reader = set.clone();
/// assert_eq!(reader.endpoints().unwrap_err().to_string(), "no endpoints published yet");
///
/// set.publish(vec![BoxEndpoint::new(endpoint_fn(|_cx, n: u32| async move { Ok(n) }))]);
/// assert_eq!(reader.endpoints()?.len(), 1);
///
/// set.fail(Error::unavailable("etcd unreachable"));
/// assert_eq!(reader.endpoints().unwrap_err().to_string(), "etcd unreachable");
/// # Ok::<(), Error>(())
/// ```
pub struct EndpointSet<Req, Resp> {
    current: Arc<RwLock<Result<Endpoints<Req, Resp>, Error>>>,
}

impl<Req, Resp> EndpointSet<Req, Resp> {
    /// A set not published yet.
    pub fn new() -> Self {
        EndpointSet {
            current: Arc::new(RwLock::new(Err(Error::unavailable(
                "no endpoints published yet",
            )))),
        }
    }

    /// Replaces the set.
    pub fn publish(&self, endpoints: impl Into<Endpoints<Req, Resp>>) {
        self.replace(Ok(endpoints.into()));
    }

    /// Marks the set as unknown: readers get `err` until the next [`EndpointSet::publish`].
    pub fn fail(&self, err: Error) {
        self.replace(Err(err));
    }

    fn replace(&self, state: Result<Endpoints<Req, Resp>, Error>) {
        // The lock guards a plain value that is replaced whole, so a poisoned lock still holds
        // a consistent state.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *current, state);
        drop(current);
        // The old set is dropped after the lock is released: the last reference to an endpoint
        // may close connections, or read this set, in its Drop.
        drop(old);
    }
}

impl<Req, Resp> Endpointer<Req, Resp> for EndpointSet<Req, Resp>
where
    Req: 'static,
    Resp: 'static,
{
    fn endpoints(&self) -> Result<Endpoints<Req, Resp>, Error> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_current(&self, seen: &Endpoints<Req, Resp>) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_ok_and(|current| Arc::ptr_eq(current, seen))
    }
}

impl<Req, Resp> Default for EndpointSet<Req, Resp> {
    fn default() -> Self {
        EndpointSet::new()
    }
}

impl<Req, Resp> Clone for EndpointSet<Req, Resp> {
    fn clone(&self) -> Self {
        EndpointSet {
            current: Arc::clone(&self.current),
        }
    }
}

impl<Req, Resp> fmt::Debug for EndpointSet<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let mut d = f.debug_struct("EndpointSet");
        match &*current {
            Ok(endpoints) => d.field("len", &endpoints.len()),
            Err(err) => d.field("error", err),
        };
        d.finish()
    }
}
