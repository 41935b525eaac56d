//! etcd v3: instances are the values of the keys under a prefix (go-kit's `sd/etcdv3`), watched;
//! this instance registers with a lease kept alive.
//!
//! Layout: one key per instance under the service's prefix, the value its address
//! (`/services/addsvc/10.0.0.1:8081` → `10.0.0.1:8081`), as go-kit's etcd registrar writes it,
//! so go-kit services and kit-rs services can share a registry.
//!
//! The instancer reads the prefix once, then watches from the revision after that read. After
//! a lost connection it resumes the watch from the last revision it saw, so nothing is missed
//! and nothing read twice; when that revision has been compacted away it reads the prefix again
//! from scratch. While etcd is unreachable it publishes an unavailable error (the
//! [`Endpointer`](crate::Endpointer) keeps the last good set for its grace time) and retries with
//! exponential backoff, jittered and capped at 3 s. A value that is not UTF-8, empty, or not
//! `host:port` is skipped and logged; the rest of the set still works.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions, WatchOptions};
use kit_core::Error;
use kit_log::Logger;
use tokio::sync::{oneshot, watch};

use crate::backoff::Failures;
use crate::task::Task;
use crate::{Event, Instancer, Publisher, Registrar};

/// Connection settings for etcd; defaults set in [`EtcdOptions::new`] and nowhere else.
#[derive(Clone)]
pub struct EtcdOptions {
    connect_timeout: Duration,
    request_timeout: Duration,
    keep_alive: Duration,
    logger: Logger,
}

impl EtcdOptions {
    /// Connect within 2 s, each request within 5 s, an HTTP/2 ping every 5 s (a connection
    /// that answers none within 2 s is dead); log nothing.
    pub fn new() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(5),
            logger: Logger::new(slog::Discard),
        }
    }

    /// How long a connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a unary request (read, put, lease) may take. Watches are streams and have none.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often the connection is pinged, so that a silently dead etcd is noticed.
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// Logs connection failures and skipped entries to `logger`.
    pub fn logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    async fn connect(&self, endpoints: &[String]) -> Result<Client, Error> {
        let options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout)
            .with_keep_alive(self.keep_alive, Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        Client::connect(endpoints, Some(options))
            .await
            .map_err(|err| unavailable("connecting", err))
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions::new()
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

fn unavailable(doing: &str, err: etcd_client::Error) -> Error {
    Error::unavailable(format!("etcd: {doing}: {err}")).with_source(err)
}

/// The instances of one service: the values of the keys under a prefix, watched.
///
/// Made inside a tokio runtime: it spawns the loop that follows etcd, which ends when the
/// instancer is dropped.
#[derive(Debug)]
pub struct EtcdInstancer {
    publisher: Arc<Publisher>,
    _task: Task,
}

impl EtcdInstancer {
    /// Follows the keys under `prefix` in the etcd cluster at `endpoints` (`host:port` each).
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>, options: EtcdOptions) -> Self {
        let publisher = Arc::new(Publisher::new());
        let follower = Follower {
            endpoints,
            prefix: prefix.into(),
            options,
            publisher: Arc::clone(&publisher),
            keys: BTreeMap::new(),
            revision: None,
        };
        EtcdInstancer {
            publisher,
            _task: Task::spawn(follower.run()),
        }
    }
}

impl Instancer for EtcdInstancer {
    fn subscribe(&self) -> watch::Receiver<Event> {
        self.publisher.subscribe()
    }
}

/// The instancer's loop and what it knows between connections.
struct Follower {
    endpoints: Vec<String>,
    prefix: String,
    options: EtcdOptions,
    publisher: Arc<Publisher>,
    /// Key → instance, of the valid entries under the prefix.
    keys: BTreeMap<Vec<u8>, String>,
    /// The revision `keys` is current at; `None` before a read (or after a compaction).
    revision: Option<i64>,
}

impl Follower {
    async fn run(mut self) {
        let mut failures = Failures::new();
        loop {
            let err = match self.options.connect(&self.endpoints).await {
                Ok(mut client) => match self.follow(&mut client, &mut failures).await {
                    Ok(()) => continue,
                    Err(err) => err,
                },
                Err(err) => err,
            };
            kit_log::warn!(
                self.options.logger,
                "msg",
                "etcd instancer",
                "prefix",
                self.prefix.as_str(),
                "err",
                format_args!("{err}")
            );
            self.publisher.fail(err);
            failures.wait().await;
        }
    }

    /// Reads (if needed) and watches until the connection fails (`Err`) or the watch must start
    /// again from a new read (`Ok`: compacted, cancelled).
    async fn follow(&mut self, client: &mut Client, failures: &mut Failures) -> Result<(), Error> {
        let revision = match self.revision {
            Some(revision) => revision,
            None => self.read(client).await?,
        };
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let mut stream = client
            .watch(self.prefix.as_str(), Some(options))
            .await
            .map_err(|err| unavailable("watching", err))?;
        // Connected and current: the set stands (again), whatever was published meanwhile.
        self.publish();
        failures.reset();
        loop {
            let Some(response) = stream
                .message()
                .await
                .map_err(|err| unavailable("watching", err))?
            else {
                return Err(Error::unavailable("etcd: the watch ended"));
            };
            if response.compact_revision() > 0 || response.canceled() {
                // Our revision is gone: read everything again.
                kit_log::warn!(
                    self.options.logger,
                    "msg",
                    "etcd watch cancelled, reading again",
                    "prefix",
                    self.prefix.as_str(),
                    "compact_revision",
                    response.compact_revision(),
                    "reason",
                    response.cancel_reason()
                );
                self.revision = None;
                return Ok(());
            }
            let mut seen = self.revision.unwrap_or(revision);
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                seen = seen.max(kv.mod_revision());
                // A delete carries the key with version 0. (Read through the key-value rather
                // than `event_type()`, which panics on a type it does not know.)
                if kv.version() == 0 {
                    self.keys.remove(kv.key());
                } else {
                    self.insert(kv.key(), kv.value());
                }
            }
            if response.events().is_empty()
                && let Some(header) = response.header()
            {
                // A progress notification: everything up to here has been sent.
                seen = seen.max(header.revision());
            }
            self.revision = Some(seen);
            self.publish();
        }
    }

    /// Reads every key under the prefix; the revision of the read.
    async fn read(&mut self, client: &mut Client) -> Result<i64, Error> {
        let response = client
            .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|err| unavailable("reading", err))?;
        self.keys.clear();
        for kv in response.kvs() {
            self.insert(kv.key(), kv.value());
        }
        let revision = response.header().map_or(0, |h| h.revision());
        self.revision = Some(revision);
        Ok(revision)
    }

    /// Keeps a valid entry; drops (and logs) one that is not an address.
    fn insert(&mut self, key: &[u8], value: &[u8]) {
        match crate::instancer::instance_address(value) {
            Ok(instance) => {
                self.keys.insert(key.to_vec(), instance);
            }
            Err(why) => {
                self.keys.remove(key);
                kit_log::warn!(
                    self.options.logger,
                    "msg",
                    "etcd entry skipped",
                    "key",
                    String::from_utf8_lossy(key).as_ref(),
                    "err",
                    why
                );
            }
        }
    }

    fn publish(&self) {
        self.publisher.publish(self.keys.values().cloned());
    }
}

/// Registers this instance: `key` → `value` under a lease of `ttl`, kept alive; registers
/// again by itself (a new lease) after the lease is lost (etcd restarted without it, a
/// partition longer than the TTL). Deregistering revokes the lease, which deletes the key at
/// once.
#[derive(Debug)]
pub struct EtcdRegistrar {
    endpoints: Vec<String>,
    key: String,
    value: String,
    ttl: Duration,
    options: EtcdOptions,
    /// The loop keeping the registration alive; dropped (stopped) with the registrar.
    task: Mutex<Option<Task>>,
    /// The current lease, shared with the loop, which renews it.
    lease: Arc<Mutex<Option<i64>>>,
}

impl EtcdRegistrar {
    /// Registers `value` (this instance's `host:port`) at `key` (the service's prefix and a
    /// name unique to this instance) with a lease of `ttl` (at least 1 s; etcd counts in
    /// seconds), in the cluster at `endpoints`.
    pub fn new(
        endpoints: Vec<String>,
        key: impl Into<String>,
        value: impl Into<String>,
        ttl: Duration,
        options: EtcdOptions,
    ) -> Self {
        EtcdRegistrar {
            endpoints,
            key: key.into(),
            value: value.into(),
            ttl: ttl.max(Duration::from_secs(1)),
            options,
            task: Mutex::new(None),
            lease: Arc::default(),
        }
    }
}

impl Registrar for EtcdRegistrar {
    async fn register(&self) -> Result<(), Error> {
        let keeper = Keeper {
            endpoints: self.endpoints.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            ttl: self.ttl,
            options: self.options.clone(),
            lease: Arc::clone(&self.lease),
        };
        let (first, registered) = oneshot::channel();
        let task = Task::spawn(keeper.run(first));
        // Replacing a running registration stops it (dropping its task).
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        match registered.await {
            Ok(result) => result,
            Err(_) => Err(Error::internal("etcd registration stopped")),
        }
    }

    async fn deregister(&self) -> Result<(), Error> {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let lease = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut client = self.options.connect(&self.endpoints).await?;
        match lease {
            Some(lease) => client
                .lease_revoke(lease)
                .await
                .map(drop)
                .map_err(|err| unavailable("revoking the lease", err)),
            None => client
                .delete(self.key.as_str(), None)
                .await
                .map(drop)
                .map_err(|err| unavailable("deleting the key", err)),
        }
    }
}

/// The registration's loop: lease, put, keep alive; again after a loss.
struct Keeper {
    endpoints: Vec<String>,
    key: String,
    value: String,
    ttl: Duration,
    options: EtcdOptions,
    lease: Arc<Mutex<Option<i64>>>,
}

impl Keeper {
    async fn run(self, first: oneshot::Sender<Result<(), Error>>) {
        let mut first = Some(first);
        let mut failures = Failures::new();
        loop {
            let err = match self.register().await {
                Ok((client, lease)) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    failures.reset();
                    self.keep_alive(client, lease).await
                }
                Err(err) => err,
            };
            if let Some(first) = first.take() {
                // The first registration failed: the caller hears why, and nothing runs on.
                let _ = first.send(Err(err));
                return;
            }
            kit_log::warn!(
                self.options.logger,
                "msg",
                "etcd registration lost, registering again",
                "key",
                self.key.as_str(),
                "err",
                format_args!("{err}")
            );
            failures.wait().await;
        }
    }

    async fn register(&self) -> Result<(Client, i64), Error> {
        let mut client = self.options.connect(&self.endpoints).await?;
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(|err| unavailable("granting a lease", err))?
            .id();
        client
            .put(
                self.key.as_str(),
                self.value.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(|err| unavailable("putting the key", err))?;
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease);
        Ok((client, lease))
    }

    /// Refreshes the lease every third of its TTL until it is lost; why it was lost.
    async fn keep_alive(&self, mut client: Client, lease: i64) -> Error {
        let (mut keeper, mut responses) = match client.lease_keep_alive(lease).await {
            Ok(pair) => pair,
            Err(err) => return unavailable("keeping the lease alive", err),
        };
        let every = (self.ttl / 3).max(Duration::from_millis(200));
        loop {
            if let Err(err) = keeper.keep_alive().await {
                return unavailable("keeping the lease alive", err);
            }
            match tokio::time::timeout(self.options.request_timeout, responses.message()).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => {}
                Ok(Ok(Some(_))) => return Error::unavailable("etcd: the lease expired"),
                Ok(Ok(None)) => return Error::unavailable("etcd: the lease stream ended"),
                Ok(Err(err)) => return unavailable("keeping the lease alive", err),
                Err(_) => return Error::unavailable("etcd: no keep-alive answer in time"),
            }
            tokio::time::sleep(every).await;
        }
    }
}
