//! Instances to endpoints: the [`Endpointer`] keeps a kit-core `EndpointSet` in step with an
//! instancer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kit_core::{BoxEndpoint, EndpointSet, Endpoints, Error};
use kit_log::Logger;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::task::Task;
use crate::{Event, Instancer};

/// How an [`Endpointer`] behaves; defaults set in [`EndpointerOptions::new`] and nowhere else.
#[derive(Clone)]
pub struct EndpointerOptions {
    invalidate_on_error: Option<Duration>,
    logger: Logger,
}

impl EndpointerOptions {
    /// Keep the last good set for 60 s of instancer errors, then fail it; log nothing.
    ///
    /// 60 s: registrations in etcd or ZooKeeper expire within tens of seconds of their owner's
    /// death, so a set older than a minute is likely stale, while a registry restart or a
    /// network blip of a few seconds must not take the service down.
    pub fn new() -> Self {
        EndpointerOptions {
            invalidate_on_error: Some(Duration::from_secs(60)),
            logger: Logger::new(slog::Discard),
        }
    }

    /// After `grace` of continuous instancer errors, fail the set with the instancer's error
    /// (go-kit's `InvalidateOnError`); `None` keeps the last good set for ever, as go-kit does
    /// by default.
    pub fn invalidate_on_error(mut self, grace: Option<Duration>) -> Self {
        self.invalidate_on_error = grace;
        self
    }

    /// Logs instancer errors and instances the factory refused to `logger`.
    pub fn logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }
}

impl Default for EndpointerOptions {
    fn default() -> Self {
        EndpointerOptions::new()
    }
}

impl fmt::Debug for EndpointerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointerOptions")
            .field("invalidate_on_error", &self.invalidate_on_error)
            .finish_non_exhaustive()
    }
}

/// Turns an instancer's instances into endpoints through a factory, and keeps them published
/// (go-kit's `sd.DefaultEndpointer`). It is a [`kit_core::Endpointer`]: give it to a kit-client
/// balancer.
///
/// - An instance that stays keeps its endpoint, and so its connections: the factory is called
///   once per instance for as long as it is in the set.
/// - An instance that leaves has its endpoint dropped from the set at once; the endpoint is
///   closed when the last call holding it ends.
/// - An instance the factory refuses (a bad address) is left out and logged; the rest of the
///   set works.
/// - On an instancer error the last good set is kept for the options' grace time, then the set
///   fails with the instancer's error; before any good set, it fails at once.
///
/// The factory is where per-instance middleware goes: a kit-client breaker on each instance's
/// client endpoint. Made inside a tokio runtime (it spawns the task that follows the instancer);
/// the task ends when the last clone of the endpointer is dropped.
///
/// ```
/// use kit_core::{endpoint_fn, BoxEndpoint, Endpointer as _, Error};
/// use kit_sd::{Endpointer, EndpointerOptions, Fixed};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let instances = Fixed::new(["10.0.0.1:8081", "10.0.0.2:8081"]);
/// let endpoints = Endpointer::new(
///     &instances,
///     |instance: &str| {
///         let instance = instance.to_owned();
///         Ok(BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
///             let instance = instance.clone();
///             async move { Ok::<_, Error>(instance) }
///         })))
///     },
///     EndpointerOptions::new(),
/// );
/// assert_eq!(endpoints.endpoints().unwrap().len(), 2);
/// # }
/// ```
pub struct Endpointer<Req, Resp> {
    set: EndpointSet<Req, Resp>,
    task: Arc<Task>,
}

type Factory<Req, Resp> = dyn Fn(&str) -> Result<BoxEndpoint<Req, Resp>, Error> + Send + Sync;

/// What the endpointer's task keeps between events.
struct Follower<Req, Resp> {
    set: EndpointSet<Req, Resp>,
    factory: Box<Factory<Req, Resp>>,
    options: EndpointerOptions,
    /// The endpoint of each instance in the set now.
    current: HashMap<String, BoxEndpoint<Req, Resp>>,
    has_good_set: bool,
    /// Since when the instancer has been failing, and with what.
    failing: Option<(Instant, Error)>,
}

impl<Req, Resp> Endpointer<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Follows `instancer`, making each instance's endpoint with `factory`.
    pub fn new<I, F>(instancer: &I, factory: F, options: EndpointerOptions) -> Self
    where
        I: Instancer + ?Sized,
        F: Fn(&str) -> Result<BoxEndpoint<Req, Resp>, Error> + Send + Sync + 'static,
    {
        let set = EndpointSet::new();
        let mut follower = Follower {
            set: set.clone(),
            factory: Box::new(factory),
            options,
            current: HashMap::new(),
            has_good_set: false,
            failing: None,
        };
        let mut rx = instancer.subscribe();
        // The current state at once, so that the set is ready when `new` returns. Not logged:
        // an instancer that has not answered yet is how every start looks.
        let first = rx.borrow_and_update().clone();
        follower.apply(first, false);
        let task = Task::spawn(follower.follow(rx));
        Endpointer {
            set,
            task: Arc::new(task),
        }
    }
}

impl<Req, Resp> Follower<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    async fn follow(mut self, mut rx: watch::Receiver<Event>) {
        loop {
            let invalidate_at = match (&self.failing, self.options.invalidate_on_error) {
                (Some((since, _)), Some(grace)) if self.has_good_set => Some(*since + grace),
                _ => None,
            };
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        // The instancer is gone: the set stays as it is.
                        return;
                    }
                    let event = rx.borrow_and_update().clone();
                    self.apply(event, true);
                }
                () = sleep_until(invalidate_at) => self.invalidate(),
            }
        }
    }

    fn apply(&mut self, event: Event, log: bool) {
        match event {
            Ok(instances) => {
                self.failing = None;
                self.update(&instances);
            }
            Err(err) => {
                if log {
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        "instancer failed",
                        "err",
                        format_args!("{err}")
                    );
                }
                if !self.has_good_set {
                    self.set.fail(err.clone());
                }
                if self.failing.is_none() {
                    self.failing = Some((Instant::now(), err));
                }
            }
        }
    }

    fn update(&mut self, instances: &[String]) {
        let mut next = HashMap::with_capacity(instances.len());
        let mut endpoints = Vec::with_capacity(instances.len());
        for instance in instances {
            let endpoint = match self.current.remove(instance) {
                Some(kept) => kept,
                None => match (self.factory)(instance) {
                    Ok(made) => made,
                    Err(err) => {
                        kit_log::warn!(
                            self.options.logger,
                            "msg",
                            "instance skipped",
                            "instance",
                            instance.as_str(),
                            "err",
                            format_args!("{err}")
                        );
                        continue;
                    }
                },
            };
            endpoints.push(endpoint.clone());
            next.insert(instance.clone(), endpoint);
        }
        // What is left in `current` left the set: dropped here, closed when unused.
        self.current = next;
        self.set.publish(endpoints);
        self.has_good_set = true;
    }

    fn invalidate(&mut self) {
        if let Some((_, err)) = &self.failing {
            kit_log::warn!(
                self.options.logger,
                "msg",
                "endpoints invalidated after instancer errors",
                "err",
                format_args!("{err}")
            );
            self.set.fail(err.clone());
            self.current.clear();
            self.has_good_set = false;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<Req, Resp> Clone for Endpointer<Req, Resp> {
    fn clone(&self) -> Self {
        Endpointer {
            set: self.set.clone(),
            task: Arc::clone(&self.task),
        }
    }
}

impl<Req, Resp> fmt::Debug for Endpointer<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpointer")
            .field("set", &self.set)
            .finish()
    }
}

impl<Req, Resp> kit_core::Endpointer<Req, Resp> for Endpointer<Req, Resp>
where
    Req: 'static,
    Resp: 'static,
{
    fn endpoints(&self) -> Result<Endpoints<Req, Resp>, Error> {
        self.set.endpoints()
    }

    fn is_current(&self, seen: &Endpoints<Req, Resp>) -> bool {
        self.set.is_current(seen)
    }
}
