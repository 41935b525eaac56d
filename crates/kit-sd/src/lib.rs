//! kit-sd: service discovery for kit-rs. How a service that outgrows one machine finds its
//! peers in the registry a platform already runs, and tells it where it is (go-kit's `sd`).
//!
//! ```text
//!   registry ─► Instancer (instances, errors as events) ─► Endpointer (factory per instance)
//!            ─► kit-core EndpointSet ─► kit-client balancer ─► retry ─► calling code
//!   Registrar: this instance into the registry, kept alive by lease or heartbeat
//! ```
//!
//! | item | what |
//! |---|---|
//! | [`Instancer`], [`Publisher`], [`Event`] | the live, de-duplicated, sorted instances of a service, as a current read and a stream of changes |
//! | [`Endpointer`], [`EndpointerOptions`] | instances to endpoints through a factory, kept in a `kit_core::EndpointSet`; endpoints of instances that stay are reused |
//! | [`Registrar`] | register and deregister this instance |
//! | [`Fixed`] | a fixed list |
//! | `dns` (feature `dns`) | DNS SRV records, re-resolved on their TTL |
//! | `etcd` (feature `etcd`) | etcd v3: instances under a key prefix, watched; registration with a lease |
//! | `zookeeper` (feature `zookeeper`) | ZooKeeper: ephemeral sequential nodes under a service path, child watches |
//! | `consul` (feature `consul`) | Consul: the agent's health endpoint with blocking queries; registration with a TTL check |
//!
//! Every backend loop backs off exponentially with jitter and a cap while its registry fails,
//! keeps the last set it read, and publishes errors as events.
//!
//! ```
//! use kit_client::balance::{Balanced, RoundRobin};
//! use kit_core::{endpoint_fn, BoxEndpoint, Context, Endpoint, Error};
//! use kit_sd::{Endpointer, EndpointerOptions, Fixed};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let instances = Fixed::new(["10.0.0.1:8081"]);
//! // The factory makes each instance's client endpoint (a transport's client in a service).
//! let endpoints = Endpointer::new(
//!     &instances,
//!     |instance: &str| {
//!         let instance = instance.to_owned();
//!         Ok(BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
//!             let instance = instance.clone();
//!             async move { Ok::<_, Error>(instance) }
//!         })))
//!     },
//!     EndpointerOptions::new(),
//! );
//! let call = Balanced::new(RoundRobin::new(endpoints));
//! assert_eq!(call.call(Context::new(), ()).await.unwrap(), "10.0.0.1:8081");
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(
    feature = "dns",
    feature = "etcd",
    feature = "zookeeper",
    feature = "consul"
))]
mod backoff;
#[cfg(feature = "consul")]
#[cfg_attr(docsrs, doc(cfg(feature = "consul")))]
pub mod consul;
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod dns;
mod endpointer;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
mod instancer;
mod registrar;
mod task;
#[cfg(feature = "zookeeper")]
#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
pub mod zookeeper;

pub use endpointer::{Endpointer, EndpointerOptions};
pub use instancer::{Event, Fixed, Instancer, Instances, Publisher};
pub use registrar::Registrar;

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
