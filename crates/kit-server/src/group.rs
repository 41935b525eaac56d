//! The run group: the listeners and tasks of a process, stopped together (go-kit's use of
//! oklog/run).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kit_core::BoxError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Health;

type Task = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A signal a task waits on: [`Group::draining`] (the drain starts: readiness is off),
/// [`Group::stopping`] (the readiness delay later: stop accepting) or [`Group::drained`]
/// (every other task has returned). Clone it freely.
#[derive(Clone, Debug)]
pub struct Signal(CancellationToken);

impl Signal {
    /// Completes when the signal fires; `'static`, so it can be handed to a listener's `serve`.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        self.0.clone().cancelled_owned()
    }

    /// Whether the signal has fired.
    pub fn fired(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Why a [`Group`] ended with a failure.
#[derive(Debug)]
pub enum RunError {
    /// A task returned an error or panicked. The first failure is reported; the group still
    /// stopped every other task.
    Task {
        /// The task's name.
        name: String,
        /// What it returned.
        error: BoxError,
    },
    /// A second SIGINT or SIGTERM came during the drain: the tasks still running were
    /// aborted.
    Interrupted {
        /// Their names.
        still_running: Vec<String>,
    },
    /// Tasks were still running when the drain deadline passed.
    DrainTimeout {
        /// Their names.
        still_running: Vec<String>,
        /// The deadline.
        deadline: Duration,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Task { name, error } => write!(f, "{name}: {error}"),
            RunError::Interrupted { still_running } => write!(
                f,
                "a second signal abandoned the drain: {} aborted",
                still_running.join(", ")
            ),
            RunError::DrainTimeout {
                still_running,
                deadline,
            } => write!(
                f,
                "still running {deadline:?} after the drain started: {}",
                still_running.join(", ")
            ),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Task { error, .. } => Some(error.as_ref()),
            RunError::Interrupted { .. } | RunError::DrainTimeout { .. } => None,
        }
    }
}

/// The tasks of a process, run together and stopped together.
///
/// Each task (a listener's `serve`, a background loop) is a future that returns when it is done
/// or fails. When the first one returns, the drain starts: readiness turns false ([`Health`])
/// and [`Group::draining`] fires (deregister from service discovery there); after the
/// [readiness delay](Group::readiness_delay), [`Group::stopping`] fires, and every task is
/// expected to stop accepting, drain and return. The delay is for load balancers that route by
/// readiness: they need a probe period to see it turn false, and a listener that stopped
/// accepting at once would refuse their last connections.
/// Tasks added with [`Group::spawn_observer`] (a debug listener) keep going through the drain,
/// so probes can watch it, and are stopped by [`Group::drained`] once the others have returned.
/// [`Group::stop_on_signals`] makes SIGINT and SIGTERM start the drain.
///
/// [`Group::run`] is `Ok` when everything stopped cleanly, whoever started it; an error when a
/// task failed (the first failure) or the drain outlasted its deadline (the longest drain
/// timeout of the listeners served, plus a second; 30 s without any). A
/// service's `main` exits non-zero exactly on that error.
///
/// ```
/// use kit_server::Group;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group = Group::new();
/// let stopping = group.stopping();
/// group.spawn("worker", async move {
///     stopping.wait().await; // a listener's serve(.., stopping.wait()) in real life
///     Ok::<_, std::io::Error>(())
/// });
/// group.spawn("oneshot", async { Ok::<_, std::io::Error>(()) }); // returns: the group stops
/// group.run().await.unwrap();
/// # }
/// ```
pub struct Group {
    // A stop asked for (a task's return, a signal, `stop`); `draining` fires once readiness is
    // off.
    requested: CancellationToken,
    draining: CancellationToken,
    stopping: CancellationToken,
    drained: CancellationToken,
    // A second signal during the drain: give up on it.
    abandon: CancellationToken,
    tasks: Vec<(String, Task)>,
    observers: Vec<(String, Task)>,
    // Set by `drain_deadline`; else derived from the listeners served.
    deadline: Option<Duration>,
    // The longest drain timeout of the listeners served.
    listener_drain: Option<Duration>,
    readiness_delay: Duration,
    health: Health,
}

/// The drain deadline of a group that serves no listener and was given none.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// What a group adds to its listeners' longest drain timeout: a listener whose drain outlasts
/// its own timeout returns its error within it, rather than being cut off by the group's.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |tasks: &[(String, Task)]| -> Vec<String> {
            tasks.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("Group")
            .field("tasks", &names(&self.tasks))
            .field("observers", &names(&self.observers))
            .field("deadline", &self.deadline())
            .field("readiness_delay", &self.readiness_delay)
            .finish_non_exhaustive()
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group with a drain deadline derived from its listeners, no readiness delay, and a fresh, ready
    /// [`Health`].
    pub fn new() -> Group {
        Group {
            requested: CancellationToken::new(),
            draining: CancellationToken::new(),
            stopping: CancellationToken::new(),
            drained: CancellationToken::new(),
            abandon: CancellationToken::new(),
            tasks: Vec::new(),
            observers: Vec::new(),
            deadline: None,
            listener_drain: None,
            readiness_delay: Duration::ZERO,
            health: Health::new(),
        }
    }

    /// How long after readiness turns false the listeners are told to stop accepting
    /// ([`Group::stopping`]): long enough for load balancers to see `/readyz` fail (their probe
    /// period times the failures they need). Default none. The drain deadline counts from the
    /// end of the delay; a second signal skips what is left of it.
    pub fn readiness_delay(mut self, delay: Duration) -> Self {
        self.readiness_delay = delay;
        self
    }

    /// How long tasks get to return once the drain starts; past it, [`Group::run`] fails.
    ///
    /// Unset, the group derives it from what it runs: the longest drain timeout of the
    /// listeners it serves ([`serve_http`](Group::serve_http), `serve_grpc`) plus one second,
    /// or 30 s when it serves none. Set it only to give other tasks longer than that.
    pub fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The drain deadline as it stands: set, or derived from the listeners served so far.
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or_else(|| {
            self.listener_drain
                .map_or(DEFAULT_DEADLINE, |drain| drain + DEADLINE_MARGIN)
        })
    }

    fn serves(&mut self, drain: Duration) {
        self.listener_drain = Some(self.listener_drain.map_or(drain, |d| d.max(drain)));
    }

    /// Serves `service` on the HTTP `listener` as a task named `name`: it stops accepting when
    /// the drain tells the listeners to stop ([`Group::stopping`]), and the group's deadline
    /// allows for the listener's drain timeout.
    pub fn serve_http<S, B>(
        &mut self,
        name: &str,
        listener: kit_transport_http::Listener,
        service: S,
    ) where
        S: tower_service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.serves(listener.configured_drain_timeout());
        let stopping = self.stopping();
        self.spawn(name, listener.serve(service, stopping.wait()));
    }

    /// Serves `service` on the HTTP `listener` as an observer named `name` (the debug
    /// listener: `/readyz` answers through the drain): it stops once the other tasks have
    /// returned ([`Group::drained`]), and the group's deadline allows for its drain timeout.
    pub fn serve_http_observer<S, B>(
        &mut self,
        name: &str,
        listener: kit_transport_http::Listener,
        service: S,
    ) where
        S: tower_service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.serves(listener.configured_drain_timeout());
        let drained = self.drained();
        self.spawn_observer(name, listener.serve(service, drained.wait()));
    }

    /// Serves `routes` on the gRPC `listener` as a task named `name`, as
    /// [`serve_http`](Group::serve_http) does. Feature `grpc`.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn serve_grpc(
        &mut self,
        name: &str,
        listener: kit_transport_grpc::Listener,
        routes: kit_transport_grpc::Routes,
    ) {
        self.serves(listener.configured_drain_timeout());
        let stopping = self.stopping();
        self.spawn(name, listener.serve(routes, stopping.wait()));
    }

    /// The group's health: ready until the drain starts. Serve it on the debug listener
    /// ([`DebugHandler`](crate::DebugHandler)) and its gRPC side on gRPC listeners.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Fires when the drain starts, with readiness turning false: deregister from service
    /// discovery here, so that callers stop coming before the listeners stop accepting.
    pub fn draining(&self) -> Signal {
        Signal(self.draining.clone())
    }

    /// Fires the [readiness delay](Group::readiness_delay) after the drain starts: give it to
    /// every listener as its shutdown.
    pub fn stopping(&self) -> Signal {
        Signal(self.stopping.clone())
    }

    /// Fires when every task but the observers has returned: the shutdown of observers.
    pub fn drained(&self) -> Signal {
        Signal(self.drained.clone())
    }

    /// Starts the drain, as a task's return or a signal would.
    pub fn stop(&self) {
        self.requested.cancel();
    }

    /// Adds a task. Its return, `Ok` or not, starts the drain.
    pub fn spawn<F, E>(&mut self, name: &str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.tasks.push((
            name.to_owned(),
            Box::pin(async { task.await.map_err(Into::into) }),
        ));
    }

    /// Adds an observer: a task that keeps running through the drain, until
    /// [`Group::drained`] fires (a debug listener serving `/readyz` and `/metrics`). Its
    /// return before that starts the drain too.
    pub fn spawn_observer<F, E>(&mut self, name: &str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.observers.push((
            name.to_owned(),
            Box::pin(async { task.await.map_err(Into::into) }),
        ));
    }

    /// Starts the drain on SIGINT or SIGTERM; a second one during the drain abandons it
    /// (Ctrl-C twice), aborting the tasks still running. Installing the handlers fails only
    /// when the process cannot handle signals at all.
    pub fn stop_on_signals(&mut self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (requested, drained) = (self.requested.clone(), self.drained.clone());
        let abandon = self.abandon.clone();
        // An observer: it listens through the drain, and its return does not end it early.
        self.spawn_observer("signals", async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                () = requested.cancelled() => {}
            }
            requested.cancel();
            tokio::select! {
                _ = interrupt.recv() => abandon.cancel(),
                _ = terminate.recv() => abandon.cancel(),
                () = drained.cancelled() => {}
            }
            Ok::<_, BoxError>(())
        });
        Ok(())
    }

    /// Runs every task until all have returned; see [`Group`] for when that is and what it
    /// answers.
    pub async fn run(self) -> Result<(), RunError> {
        let deadline = self.deadline();
        let Group {
            requested,
            draining,
            stopping,
            drained,
            abandon,
            tasks,
            observers,
            readiness_delay,
            health,
            ..
        } = self;
        if tasks.is_empty() && observers.is_empty() {
            return Ok(());
        }
        let mut main = Tasks::spawn(tasks);
        let mut watchers = Tasks::spawn(observers);
        let mut first_failure: Option<RunError> = None;

        // Until the first return, or an explicit stop.
        tokio::select! {
            Some(failure) = main.next() => first_failure = failure,
            Some(failure) = watchers.next() => first_failure = failure,
            () = requested.cancelled() => {}
        }
        // Not ready first; the listeners stop accepting only after the delay.
        health.start_draining().await;
        draining.cancel();
        tokio::select! {
            () = tokio::time::sleep(readiness_delay) => {}
            () = abandon.cancelled() => {}
        }
        stopping.cancel();

        // The drain: the main tasks first, then the observers, all within the deadline.
        let drain = async {
            while let Some(failure) = main.next().await {
                first_failure = first_failure.take().or(failure);
            }
            drained.cancel();
            while let Some(failure) = watchers.next().await {
                first_failure = first_failure.take().or(failure);
            }
        };
        let interrupted = tokio::select! {
            finished = tokio::time::timeout(deadline, drain) => finished.is_err().then_some(false),
            () = abandon.cancelled() => Some(true),
        };
        let Some(interrupted) = interrupted else {
            return first_failure.map_or(Ok(()), Err);
        };
        // Observers still running before `drained` fired were never asked to stop: only the
        // main tasks are late then.
        let mut still_running = main.names();
        if still_running.is_empty() {
            still_running = watchers.names();
        }
        main.set.abort_all();
        watchers.set.abort_all();
        // A task's failure is the root cause; report it first.
        Err(first_failure.unwrap_or(if interrupted {
            RunError::Interrupted { still_running }
        } else {
            RunError::DrainTimeout {
                still_running,
                deadline,
            }
        }))
    }
}

/// Running tasks and their names.
struct Tasks {
    set: JoinSet<Result<(), BoxError>>,
    names: std::collections::HashMap<tokio::task::Id, String>,
}

impl Tasks {
    fn spawn(tasks: Vec<(String, Task)>) -> Tasks {
        let mut set = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (name, task) in tasks {
            names.insert(set.spawn(task).id(), name);
        }
        Tasks { set, names }
    }

    /// Waits for the next task to return: `None` when none is left, else its failure if any.
    async fn next(&mut self) -> Option<Option<RunError>> {
        let (id, outcome) = match self.set.join_next_with_id().await? {
            Ok((id, outcome)) => (id, outcome),
            Err(join) => (join.id(), Err(format!("panicked: {join}").into())),
        };
        let name = self.names.remove(&id).unwrap_or_default();
        Some(outcome.err().map(|error| RunError::Task { name, error }))
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.values().cloned().collect();
        names.sort();
        names
    }
}
