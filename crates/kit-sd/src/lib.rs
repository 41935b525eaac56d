//! kit-sd: service discovery: Instancer, Endpointer, Registrar; static, DNS SRV, etcd v3, ZooKeeper, Consul.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0009-kit-sd.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
