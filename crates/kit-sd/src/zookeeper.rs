//! ZooKeeper: instances are the data of the children of a service path (go-kit's `sd/zk`),
//! followed with child watches; this instance registers as an ephemeral sequential node, kept
//! by its session.
//!
//! Layout: one child per instance under the service's path, its data the instance's address
//! (`/services/addsvc/instance-0000000007` → `10.0.0.1:8081`). Only the data counts, not the
//! child's name, so the children a go-kit registrar creates (`_c_<uuid>-<name><seq>`) are read
//! too. (go-kit also leaves an empty persistent node beside them; it is skipped, as every child
//! whose data is not an address is.)
//!
//! The instancer reads the children and each child's data, publishes the set, and sets the
//! child watch again after every event (ZooKeeper watches fire once). A missing path is an
//! empty set, watched for its creation: the instancer never writes, so it works with read-only
//! credentials and does not litter the registry with the nodes of a mistyped path; the
//! registrar creates the path. While the connection is lost it publishes an unavailable error
//! (the [`Endpointer`](crate::Endpointer) keeps the last good set for its grace time) and the
//! client reconnects within the same session, reads again and sets the watch again. The
//! client's pauses between reconnection attempts double (0.1 s, 0.2 s, 0.4 s, …), so after an
//! outage it is back within about as long again as the outage lasted. A ZooKeeper restarted on
//! its data restores its sessions, so a restart shorter than the session timeout loses
//! nothing. When the session is over (expired, closed) the instancer connects again with a
//! new one, backing off exponentially with jitter, capped at 3 s. Child
//! data that is not UTF-8, empty, or not `host:port` is skipped and logged (once while it
//! stays); the rest of the set still works. A change to the data of an existing child is seen
//! at the next change of the children, as in go-kit: registrations never change their data.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kit_core::Error;
use kit_log::Logger;
use tokio::sync::{oneshot, watch};
use zookeeper_client::{
    Acls, Client, CreateMode, EventType, OneshotWatcher, SessionState, StateWatcher,
};

use crate::backoff::Failures;
use crate::task::Task;
use crate::{Event, Instancer, Publisher, Registrar};

/// Session and connection settings for ZooKeeper; defaults set in [`ZkOptions::new`] and
/// nowhere else.
#[derive(Clone)]
pub struct ZkOptions {
    session_timeout: Duration,
    connect_timeout: Duration,
    logger: Logger,
}

impl ZkOptions {
    /// A session timeout of 10 s, a connection timeout of 2 s; log nothing.
    ///
    /// 10 s: a registry restart or a network blip shorter than that keeps the session (and so
    /// this instance's registration and the instancer's watch), while the registration of an
    /// instance that died goes within 10 s (go-kit asks for 5 s, which a restart of a few
    /// seconds can outlast). 2 s: go-kit's connect timeout.
    pub fn new() -> Self {
        ZkOptions {
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            logger: Logger::new(slog::Discard),
        }
    }

    /// The session timeout asked for: how long the session (and the ephemeral nodes it owns)
    /// outlives a lost connection. The server clamps it to between 2 and 20 times its
    /// `tickTime` (4 s to 40 s with the default `tickTime` of 2 s); the client gives a session
    /// up on its side after 1.4 times the negotiated timeout without an answer.
    ///
    /// Also how long making a new session keeps trying the servers (in turn, with growing
    /// pauses) before it fails: how long a registration or an instancer waits before reporting
    /// that ZooKeeper cannot be reached.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long one connection attempt may take, and how long a connection may stay silent
    /// before it is taken for lost (the client pings after 3/8 of it). Ignored by the client
    /// when above 3/5 of the session timeout, which then uses 2/5 of the session timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Logs connection and session failures, registrations, and skipped children to `logger`.
    pub fn logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// A new session with the ensemble at `servers`.
    async fn connect(&self, servers: &[String]) -> Result<Client, Error> {
        Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.connect_timeout)
            // Not failing eagerly (after one try of each server): a server that accepts the
            // connection but is not serving yet (starting, out of quorum) closes it, and behind
            // one address (a virtual IP, a Kubernetes service) a single try would fail the
            // whole connect. The client cycles through the servers with its own backoff until
            // the session timeout, then our loops back off.
            .connect(&servers.join(","))
            .await
            .map_err(|err| unavailable("connecting", err))
    }
}

impl Default for ZkOptions {
    fn default() -> Self {
        ZkOptions::new()
    }
}

impl fmt::Debug for ZkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkOptions")
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

fn unavailable(doing: &str, err: zookeeper_client::Error) -> Error {
    Error::unavailable(format!("zookeeper: {doing}: {err}")).with_source(err)
}

/// Why a session is over, from its terminal state.
fn session_over(state: SessionState) -> Error {
    let why = match state {
        SessionState::Expired => "the session expired",
        SessionState::Closed => "the session was closed",
        SessionState::AuthFailed => "authentication failed",
        _ => "the session ended",
    };
    Error::unavailable(format!("zookeeper: {why}"))
}

/// Whether a request failed because its session is over (rather than a lost connection,
/// after which the same session goes on).
fn is_session_over(err: &zookeeper_client::Error, client: &Client) -> bool {
    use zookeeper_client::Error as E;
    matches!(
        err,
        E::SessionExpired | E::SessionMoved | E::ClientClosed | E::AuthFailed
    ) || client.state().is_terminated()
}

/// The service path as ZooKeeper wants it: absolute, no trailing `/` (`/` for the root).
fn normalize(path: &str) -> String {
    let path = path.trim().trim_end_matches('/');
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The path of `child` under `path` (a normalized path).
fn child_path(path: &str, child: &str) -> String {
    if path == "/" {
        format!("/{child}")
    } else {
        format!("{path}/{child}")
    }
}

/// The instances of one service: the data of the children of a path, watched.
///
/// Made inside a tokio runtime: it spawns the loop that follows ZooKeeper, which ends (and
/// closes its session) when the instancer is dropped.
#[derive(Debug)]
pub struct ZkInstancer {
    publisher: Arc<Publisher>,
    _task: Task,
}

impl ZkInstancer {
    /// Follows the children of `path` (`/services/addsvc`) in the ensemble at `servers`
    /// (`host:port` each).
    pub fn new(servers: Vec<String>, path: impl Into<String>, options: ZkOptions) -> Self {
        let publisher = Arc::new(Publisher::new());
        let follower = Follower {
            servers,
            path: normalize(&path.into()),
            options,
            publisher: Arc::clone(&publisher),
            skipped: HashSet::new(),
        };
        ZkInstancer {
            publisher,
            _task: Task::spawn(follower.run()),
        }
    }
}

impl Instancer for ZkInstancer {
    fn subscribe(&self) -> watch::Receiver<Event> {
        self.publisher.subscribe()
    }
}

/// The instancer's loop and what it knows between sessions.
struct Follower {
    servers: Vec<String>,
    path: String,
    options: ZkOptions,
    publisher: Arc<Publisher>,
    /// The children skipped at the last read, so that a bad child is logged once while it
    /// stays, not at every change of its siblings.
    skipped: HashSet<String>,
}

impl Follower {
    async fn run(mut self) {
        let mut failures = Failures::new();
        loop {
            let err = match self.options.connect(&self.servers).await {
                Ok(client) => self.follow(&client, &mut failures).await,
                Err(err) => err,
            };
            kit_log::warn!(
                self.options.logger,
                "msg",
                "zookeeper instancer",
                "path",
                self.path.as_str(),
                "err",
                format_args!("{err}")
            );
            self.publisher.fail(err);
            failures.wait().await;
        }
    }

    /// Reads and watches for as long as the session lives; why it ended.
    async fn follow(&mut self, client: &Client, failures: &mut Failures) -> Error {
        let mut state = client.state_watcher();
        loop {
            let watcher = match self.read(client).await {
                Ok((instances, watcher)) => {
                    self.publisher.publish(instances);
                    failures.reset();
                    watcher
                }
                Err(err) if is_session_over(&err, client) => {
                    return unavailable("reading", err);
                }
                Err(err) => {
                    // The session goes on (a lost connection, a refused read): read again in
                    // it, after a backoff. Requests made while disconnected wait for the
                    // client to reconnect, so this does not spin.
                    let err = unavailable("reading", err);
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        "zookeeper instancer",
                        "path",
                        self.path.as_str(),
                        "err",
                        format_args!("{err}")
                    );
                    self.publisher.fail(err);
                    failures.wait().await;
                    continue;
                }
            };
            if let Err(err) = self.wait(watcher, &mut state).await {
                return err;
            }
        }
    }

    /// The instances under the path, and a watch on its children (or on its creation, when
    /// it is missing).
    async fn read(
        &mut self,
        client: &Client,
    ) -> Result<(Vec<String>, OneshotWatcher), zookeeper_client::Error> {
        let (children, watcher) = loop {
            match client.get_and_watch_children(&self.path).await {
                Ok((children, _, watcher)) => break (children, watcher),
                Err(zookeeper_client::Error::NoNode) => {}
                Err(err) => return Err(err),
            }
            // No service path: no instances, until it is created. (If it was created since,
            // read its children.)
            if let (None, watcher) = client.check_and_watch_stat(&self.path).await? {
                self.skipped.clear();
                return Ok((Vec::new(), watcher));
            }
        };
        // Every child's data at once: the client sends a request when it is made, so this is
        // one round trip, not one per child.
        let reads: Vec<_> = children
            .iter()
            .map(|child| client.get_data(&child_path(&self.path, child)))
            .collect();
        let mut instances = Vec::with_capacity(children.len());
        let mut skipped = HashSet::new();
        for (child, read) in children.into_iter().zip(reads) {
            match read.await {
                Ok((data, _)) => match crate::instancer::instance_address(&data) {
                    Ok(instance) => instances.push(instance),
                    Err(why) => {
                        if !self.skipped.contains(&child) {
                            kit_log::warn!(
                                self.options.logger,
                                "msg",
                                "zookeeper entry skipped",
                                "node",
                                child_path(&self.path, &child),
                                "err",
                                why
                            );
                        }
                        skipped.insert(child);
                    }
                },
                // Deleted since the list: the watch fires for it.
                Err(zookeeper_client::Error::NoNode) => {}
                Err(err) => return Err(err),
            }
        }
        self.skipped = skipped;
        Ok((instances, watcher))
    }

    /// Waits for the watch to fire or the connection to come back (`Ok`: read again), or for
    /// the session to end (`Err`). Publishes an error while the connection is lost.
    async fn wait(&self, watcher: OneshotWatcher, state: &mut StateWatcher) -> Result<(), Error> {
        let fired = watcher.changed();
        tokio::pin!(fired);
        loop {
            tokio::select! {
                event = &mut fired => {
                    // A oneshot watch hears of the session only when it is over.
                    return match event.event_type {
                        EventType::Session => Err(session_over(event.session_state)),
                        _ => Ok(()),
                    };
                }
                now = state.changed() => match now {
                    SessionState::Disconnected => {
                        let err = Error::unavailable("zookeeper: connection lost, reconnecting");
                        kit_log::warn!(
                            self.options.logger,
                            "msg",
                            "zookeeper instancer",
                            "path",
                            self.path.as_str(),
                            "err",
                            format_args!("{err}")
                        );
                        self.publisher.fail(err);
                    }
                    now if now.is_terminated() => return Err(session_over(now)),
                    // Connected again in the same session: the client set the watch again,
                    // but read anyway, to publish the set again and be sure of it.
                    _ => return Ok(()),
                },
            }
        }
    }
}

/// Registers this instance: an ephemeral sequential node `<path>/instance-<seq>` whose data is
/// the instance's address, owned by a session the client keeps alive with its heartbeats.
///
/// The path is created first when missing (persistent nodes, with their parents). Every node is
/// created with an open ACL (`world:anyone`, all permissions), as go-kit does by default. A
/// lost connection keeps the session and the node; after the session is over (expired during
/// a partition or a registry outage longer than the session timeout, or closed) the registrar
/// registers again by itself, with a new session and a new node, backing off while ZooKeeper
/// cannot be reached. [`deregister`](Registrar::deregister) deletes the node and closes the
/// session; dropping the registrar closes the session, which deletes the node too.
#[derive(Debug)]
pub struct ZkRegistrar {
    servers: Vec<String>,
    path: String,
    instance: String,
    options: ZkOptions,
    /// The loop keeping the registration and what it holds; replaced by `register`, taken by
    /// `deregister`, dropped (the loop stopped) with the registrar.
    running: Mutex<Option<Running>>,
}

/// A registration loop: its task and the registration it holds now. The loop shares only the
/// slot with the registrar, never the registrar itself, so dropping the registrar stops it.
#[derive(Debug)]
struct Running {
    _task: Task,
    held: Arc<Mutex<Option<Held>>>,
}

/// A registration in place: the session that owns the node, and the node.
#[derive(Debug)]
struct Held {
    client: Client,
    node: String,
}

impl ZkRegistrar {
    /// Registers `instance` (this instance's `host:port`) under `path` (`/services/addsvc`) in
    /// the ensemble at `servers` (`host:port` each).
    pub fn new(
        servers: Vec<String>,
        path: impl Into<String>,
        instance: impl Into<String>,
        options: ZkOptions,
    ) -> Self {
        ZkRegistrar {
            servers,
            path: normalize(&path.into()),
            instance: instance.into(),
            options,
            running: Mutex::new(None),
        }
    }
}

impl Registrar for ZkRegistrar {
    async fn register(&self) -> Result<(), Error> {
        let held = Arc::new(Mutex::new(None));
        let keeper = Keeper {
            servers: self.servers.clone(),
            path: self.path.clone(),
            instance: self.instance.clone(),
            options: self.options.clone(),
            held: Arc::clone(&held),
        };
        let (first, registered) = oneshot::channel();
        let running = Running {
            _task: Task::spawn(keeper.run(first)),
            held,
        };
        // Replacing a running registration stops it: its session closes, its node goes.
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(running);
        match registered.await {
            Ok(result) => result,
            Err(_) => Err(Error::internal("zookeeper registration stopped")),
        }
    }

    async fn deregister(&self) -> Result<(), Error> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Running { _task: task, held }) = running else {
            return Ok(());
        };
        // Stop the loop first, so that it does not register again.
        drop(task);
        let held = held.lock().unwrap_or_else(PoisonError::into_inner).take();
        // Between two sessions there is no node to delete: the old one went with its session.
        let Some(Held { client, node }) = held else {
            return Ok(());
        };
        match client.delete(&node, None).await {
            Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
            // The node went with the session.
            Err(err) if is_session_over(&err, &client) => {}
            Err(err) => return Err(unavailable("deleting the node", err)),
        }
        kit_log::info!(
            self.options.logger,
            "msg",
            "zookeeper deregistered",
            "node",
            node.as_str()
        );
        // Returning drops the last client of the session, which closes it.
        Ok(())
    }
}

/// The registration's loop: connect, create the node, hold the session; again after a loss.
struct Keeper {
    servers: Vec<String>,
    path: String,
    instance: String,
    options: ZkOptions,
    held: Arc<Mutex<Option<Held>>>,
}

impl Keeper {
    async fn run(self, first: oneshot::Sender<Result<(), Error>>) {
        let mut first = Some(first);
        let mut failures = Failures::new();
        loop {
            let err = match self.register().await {
                Ok(client) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    failures.reset();
                    let err = self.hold(&client).await;
                    // That session is over, and its node with it.
                    self.held
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    err
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
                "zookeeper registration lost, registering again",
                "path",
                self.path.as_str(),
                "err",
                format_args!("{err}")
            );
            failures.wait().await;
        }
    }

    /// A new session and a new node in it.
    async fn register(&self) -> Result<Client, Error> {
        let client = self.options.connect(&self.servers).await?;
        if self.path != "/" {
            client
                .mkdir(
                    &self.path,
                    &CreateMode::Persistent.with_acls(Acls::anyone_all()),
                )
                .await
                .map_err(|err| unavailable("creating the service path", err))?;
        }
        let prefix = child_path(&self.path, "instance-");
        let (_, sequence) = client
            .create(
                &prefix,
                self.instance.as_bytes(),
                &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
            )
            .await
            .map_err(|err| unavailable("creating the node", err))?;
        let node = format!("{prefix}{sequence}");
        kit_log::info!(
            self.options.logger,
            "msg",
            "zookeeper registered",
            "node",
            node.as_str(),
            "session",
            format_args!("{}", client.session_id())
        );
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(Held {
            client: client.clone(),
            node,
        });
        Ok(client)
    }

    /// Waits until the session is over (the client keeps it alive, and reconnects within it
    /// after a lost connection); why it ended.
    async fn hold(&self, client: &Client) -> Error {
        let mut state = client.state_watcher();
        let mut now = client.state();
        loop {
            match now {
                now if now.is_terminated() => return session_over(now),
                SessionState::Disconnected => {
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        "zookeeper connection lost, keeping the session",
                        "path",
                        self.path.as_str()
                    );
                }
                _ => {}
            }
            now = state.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{child_path, normalize};

    #[test]
    fn paths_are_absolute_without_a_trailing_slash() {
        assert_eq!(normalize("/services/addsvc/"), "/services/addsvc");
        assert_eq!(normalize("services/addsvc"), "/services/addsvc");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize(""), "/");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/s", "a"), "/s/a");
    }
}
