//! The request-scoped [`Context`] that travels with every call.
//!
//! Like go-kit's `context.Context`, the context is passed explicitly as the first argument of
//! every endpoint call; nothing request-scoped lives in a thread-local or a task-local, so what
//! a call sees is exactly what its caller handed it. A context is immutable: the `with_*` methods
//! return a derived context, and the caller's own copy is unchanged.
//!
//! It holds four things:
//! - a **deadline**, the instant by which the caller needs an answer; deriving only ever moves
//!   it earlier, so a callee can never extend its caller's deadline;
//! - a **cancellation** token; cancelling a context cancels every context derived from it;
//! - **values** keyed by their type: transport metadata, trace context, request id. Define a
//!   newtype per meaning (`struct RequestId(String)`) so that keys never collide;
//! - the **endpoint name** (`sum`), set once by the [`Named`](crate::Named) middleware for
//!   every middleware inside it to read (logging, tracing): a field of its own, so setting it
//!   allocates nothing.
//!
//! Cloning costs at most two reference-count increments; setting a deadline allocates nothing;
//! each value allocates once.

use std::any::Any;
use std::fmt;
use std::future::{Future, pending};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Request-scoped deadline, cancellation and values, passed explicitly with every call.
///
/// ```
/// use std::time::Duration;
/// use kit_core::Context;
///
/// #[derive(Debug, PartialEq)]
/// struct RequestId(&'static str);
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = Context::new()
///     .with_timeout(Duration::from_secs(2))
///     .with_value(RequestId("r-42"));
///
/// assert_eq!(cx.get::<RequestId>(), Some(&RequestId("r-42")));
/// assert!(cx.remaining().unwrap() <= Duration::from_secs(2));
///
/// // A derived context can only tighten the deadline.
/// let inner = cx.clone().with_timeout(Duration::from_secs(60));
/// assert_eq!(inner.deadline(), cx.deadline());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Context {
    deadline: Option<Instant>,
    cancel: Option<CancellationToken>,
    values: Option<Arc<dyn ValueNode>>,
    endpoint: Option<&'static str>,
}

impl Context {
    /// An empty context: no deadline, never cancelled, no values (go's `context.Background()`).
    pub fn new() -> Self {
        Context::default()
    }

    /// An empty context that is cancelled when `token` is: the root context of a request
    /// served under a token owned elsewhere, such as a child of a server's shutdown token.
    /// Contexts derived from it with [`Context::with_cancel`] are cancelled by it too.
    ///
    /// ```
    /// use kit_core::{CancellationToken, Context};
    ///
    /// let shutdown = CancellationToken::new();
    /// let cx = Context::cancelled_by(shutdown.child_token());
    /// let (call, _cancel_call) = cx.with_cancel();
    /// shutdown.cancel();
    /// assert!(call.is_cancelled());
    /// ```
    pub fn cancelled_by(token: CancellationToken) -> Self {
        Context {
            cancel: Some(token),
            ..Context::default()
        }
    }

    /// The instant by which the caller needs an answer, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline (zero once it has passed), or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// This context with a deadline of `deadline`, or its current one if that is earlier.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(match self.deadline {
            Some(current) if current <= deadline => current,
            _ => deadline,
        });
        self
    }

    /// This context with a deadline `timeout` from now, or its current one if that is earlier.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with_timeout_from(Instant::now(), timeout)
    }

    /// [`with_timeout`](Self::with_timeout) from `now`, read by the caller: a caller that also
    /// checks the context at once reads the clock once for both.
    pub(crate) fn with_timeout_from(self, now: Instant, timeout: Duration) -> Self {
        // An absurdly long timeout means "no tighter deadline", not an overflow panic.
        match now.checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self,
        }
    }

    /// A derived context that can be cancelled on its own, and the token that cancels it.
    ///
    /// Cancelling the returned token cancels the new context and everything derived from it, not
    /// this one. Cancelling this context (if it is cancellable) cancels the new one too.
    ///
    /// ```
    /// use kit_core::Context;
    ///
    /// let parent = Context::new();
    /// let (child, cancel) = parent.clone().with_cancel();
    /// cancel.cancel();
    /// assert!(child.is_cancelled());
    /// assert!(!parent.is_cancelled());
    /// ```
    pub fn with_cancel(mut self) -> (Self, CancellationToken) {
        let token = match &self.cancel {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        self.cancel = Some(token.clone());
        (self, token)
    }

    /// The token that cancels this context, if it is cancellable: pass it to code that takes a
    /// `CancellationToken`.
    pub fn cancellation_token(&self) -> Option<&CancellationToken> {
        self.cancel.as_ref()
    }

    /// Whether this context can end at all: it has a deadline or can be cancelled.
    pub(crate) fn can_end(&self) -> bool {
        self.deadline.is_some() || self.cancel.is_some()
    }

    /// Whether this context has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|t| t.is_cancelled())
    }

    /// The error a call under this context should end with now, if any: cancelled, or past its
    /// deadline. Cheap enough to check before starting expensive work.
    pub fn err(&self) -> Option<Error> {
        self.err_by(Instant::now)
    }

    /// [`err`](Self::err) with the time `now` gives, read only for a context with a deadline.
    pub(crate) fn err_by(&self, now: impl FnOnce() -> Instant) -> Option<Error> {
        if self.is_cancelled() {
            return Some(cancelled());
        }
        match self.deadline {
            Some(deadline) if deadline <= now() => Some(deadline_exceeded()),
            _ => None,
        }
    }

    /// Completes when this context is cancelled or its deadline passes, with the error saying
    /// which; never completes for a context with neither. Race it against work to abandon the
    /// work in time.
    ///
    /// # Panics
    ///
    /// Waiting for a deadline uses tokio's timer: polling this future for a context with a
    /// deadline panics outside a tokio runtime, or on one built without `enable_time`.
    pub async fn done(&self) -> Error {
        let cancelled_fut = async {
            match &self.cancel {
                Some(token) => token.cancelled().await,
                None => pending().await,
            }
        };
        let deadline_fut = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => pending().await,
            }
        };
        let mut cancelled_fut = pin!(cancelled_fut);
        let mut deadline_fut = pin!(deadline_fut);
        std::future::poll_fn(|task| {
            if cancelled_fut.as_mut().poll(task).is_ready() {
                return Poll::Ready(cancelled());
            }
            if deadline_fut.as_mut().poll(task).is_ready() {
                return Poll::Ready(deadline_exceeded());
            }
            Poll::Pending
        })
        .await
    }

    /// This context for the endpoint named `name` (what [`Named`](crate::Named) sets).
    pub fn with_endpoint_name(mut self, name: &'static str) -> Self {
        self.endpoint = Some(name);
        self
    }

    /// The name of the endpoint being called, when a [`Named`](crate::Named) middleware (or a
    /// server stack) set it.
    pub fn endpoint_name(&self) -> Option<&'static str> {
        self.endpoint
    }

    /// This context with `value` added; it hides any earlier value of the same type.
    pub fn with_value<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.values = Some(Arc::new(Node {
            value,
            parent: self.values.take(),
        }));
        self
    }

    /// The most recently added value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let mut node = self.values.as_deref();
        while let Some(n) = node {
            if let Some(value) = n.value().downcast_ref::<T>() {
                return Some(value);
            }
            node = n.parent();
        }
        None
    }
}

fn cancelled() -> Error {
    Error::cancelled("request cancelled")
}

fn deadline_exceeded() -> Error {
    Error::timeout("deadline exceeded")
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("endpoint", &self.endpoint)
            .field("remaining", &self.remaining())
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

// Values form a persistent linked list: deriving shares the parent's list and adds one node,
// so a context never copies its values. Lookups walk from the newest; lists are short.
struct Node<T> {
    value: T,
    parent: Option<Arc<dyn ValueNode>>,
}

trait ValueNode: Send + Sync {
    fn value(&self) -> &dyn Any;
    fn parent(&self) -> Option<&dyn ValueNode>;
}

impl<T: Send + Sync + 'static> ValueNode for Node<T> {
    fn value(&self) -> &dyn Any {
        &self.value
    }

    fn parent(&self) -> Option<&dyn ValueNode> {
        self.parent.as_deref()
    }
}
