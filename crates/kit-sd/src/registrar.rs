//! The [`Registrar`] contract: this instance, in the registry.

use std::future::Future;

use kit_core::Error;

/// Registers this instance in a registry and takes it out again (go-kit's `sd.Registrar`).
///
/// A backend with leases or sessions (etcd, ZooKeeper) keeps the registration alive with a
/// heartbeat from its own task, and registers again by itself after a lost lease or session;
/// [`deregister`](Registrar::deregister) on a clean stop removes it at once rather than when
/// the lease runs out.
pub trait Registrar: Send + Sync {
    /// Registers, and keeps the registration alive until `deregister`. Returns once the first
    /// registration is in place, or with the error that prevented it.
    fn register(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes the registration and stops keeping it alive.
    fn deregister(&self) -> impl Future<Output = Result<(), Error>> + Send;
}
