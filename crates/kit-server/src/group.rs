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

/// A signal a task waits on to know when to stop: [`Group::stopping`] (the drain starts) or
/// [`Group::drained`] (every other task has returned). Clone it freely.
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
            RunError::DrainTimeout { .. } => None,
        }
    }
}

/// The tasks of a process, run together and stopped together.
///
/// Each task (a listener's `serve`, a background loop) is a future that returns when it is done
/// or fails. When the first one returns, the group is stopping: [`Group::stopping`] fires,
/// readiness turns false ([`Health`]), and every task is expected to drain and return.
/// Tasks added with [`Group::spawn_observer`] (a debug listener) keep going through the drain,
/// so probes can watch it, and are stopped by [`Group::drained`] once the others have returned.
/// [`Group::stop_on_signals`] makes SIGINT and SIGTERM start the drain.
///
/// [`Group::run`] is `Ok` when everything stopped cleanly, whoever started it; an error when a
/// task failed (the first failure) or the drain outlasted its deadline (default 30 s). A
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
    stopping: CancellationToken,
    drained: CancellationToken,
    tasks: Vec<(String, Task)>,
    observers: Vec<(String, Task)>,
    deadline: Duration,
    health: Health,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |tasks: &[(String, Task)]| -> Vec<String> {
            tasks.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("Group")
            .field("tasks", &names(&self.tasks))
            .field("observers", &names(&self.observers))
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group with a 30 s drain deadline and a fresh, ready [`Health`].
    pub fn new() -> Group {
        Group {
            stopping: CancellationToken::new(),
            drained: CancellationToken::new(),
            tasks: Vec::new(),
            observers: Vec::new(),
            deadline: Duration::from_secs(30),
            health: Health::new(),
        }
    }

    /// How long tasks get to return once the drain starts; past it, [`Group::run`] fails.
    /// Set listeners' own drain timeouts to no more than this.
    pub fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The group's health: ready until the drain starts. Serve it on the debug listener
    /// ([`DebugHandler`](crate::DebugHandler)) and its gRPC side on gRPC listeners.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Fires when the drain starts: give it to every listener as its shutdown.
    pub fn stopping(&self) -> Signal {
        Signal(self.stopping.clone())
    }

    /// Fires when every task but the observers has returned: the shutdown of observers.
    pub fn drained(&self) -> Signal {
        Signal(self.drained.clone())
    }

    /// Starts the drain, as a task's return or a signal would.
    pub fn stop(&self) {
        self.stopping.cancel();
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

    /// Starts the drain on SIGINT or SIGTERM. Installing the handlers fails only when the
    /// process cannot handle signals at all.
    pub fn stop_on_signals(&mut self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let stopping = self.stopping.clone();
        self.spawn("signals", async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                () = stopping.cancelled() => {}
            }
            Ok::<_, BoxError>(())
        });
        Ok(())
    }

    /// Runs every task until all have returned; see [`Group`] for when that is and what it
    /// answers.
    pub async fn run(self) -> Result<(), RunError> {
        let Group {
            stopping,
            drained,
            tasks,
            observers,
            deadline,
            health,
        } = self;
        let mut main = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (name, task) in tasks {
            names.insert(main.spawn(task).id(), name);
        }
        let mut watchers = JoinSet::new();
        let mut observer_names = std::collections::HashMap::new();
        for (name, task) in observers {
            observer_names.insert(watchers.spawn(task).id(), name);
        }
        let mut first_failure: Option<RunError> = None;
        let mut record =
            |name: String, outcome: Result<Result<(), BoxError>, tokio::task::JoinError>| {
                let error = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => error,
                    Err(join) => format!("panicked: {join}").into(),
                };
                if first_failure.is_none() {
                    first_failure = Some(RunError::Task { name, error });
                }
            };

        // Until the first return, or an explicit stop.
        tokio::select! {
            Some(done) = main.join_next_with_id() => {
                let (id, outcome) = split(done);
                record(names.remove(&id).unwrap_or_default(), outcome);
            }
            Some(done) = watchers.join_next_with_id() => {
                let (id, outcome) = split(done);
                record(observer_names.remove(&id).unwrap_or_default(), outcome);
            }
            () = stopping.cancelled() => {}
        }
        stopping.cancel();
        health.start_draining().await;

        // The drain: the main tasks first, then the observers, all within the deadline.
        let drain = async {
            while let Some(done) = main.join_next_with_id().await {
                let (id, outcome) = split(done);
                record(names.remove(&id).unwrap_or_default(), outcome);
            }
            drained.cancel();
            while let Some(done) = watchers.join_next_with_id().await {
                let (id, outcome) = split(done);
                record(observer_names.remove(&id).unwrap_or_default(), outcome);
            }
        };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            let mut still_running: Vec<String> = names
                .into_values()
                .chain(observer_names.into_values())
                .collect();
            still_running.sort();
            main.abort_all();
            watchers.abort_all();
            return Err(first_failure.unwrap_or(RunError::DrainTimeout {
                still_running,
                deadline,
            }));
        }
        first_failure.map_or(Ok(()), Err)
    }
}

fn split<T>(
    done: Result<(tokio::task::Id, T), tokio::task::JoinError>,
) -> (tokio::task::Id, Result<T, tokio::task::JoinError>) {
    match done {
        Ok((id, value)) => (id, Ok(value)),
        Err(err) => (err.id(), Err(err)),
    }
}
