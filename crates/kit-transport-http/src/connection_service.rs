//! The hyper service of one connection: hands each request to the listener's tower service.
//!
//! A tower service is called through `&mut`, once it has said it is ready; hyper calls its
//! service through `&`, on the connection's task, for every request. The usual bridge (hyper's
//! `service_fn` around an `async` block) clones the tower service for every request and moves
//! the request into a future that waits for readiness, then calls. Here the connection keeps
//! one tower service in a `RefCell` (only the connection's task calls it) and asks it whether
//! it is ready there and then: kit's routers and servers always are, so the request goes
//! straight to the service and hyper holds the service's own future. A service that is not
//! ready at once is cloned and waited for in a boxed future, as the bridge would do.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::BoxError;
use crate::calls::{CallGuard, Calls};
use crate::request::CONNECTION_PEER;

/// What a connection serves with: the listener's tower service, the peer, and the
/// connection's count of calls (for its automatic answers and its head deadline, `calls.rs`).
pub(crate) struct ConnectionService<S> {
    service: RefCell<S>,
    peer: SocketAddr,
    calls: Arc<Calls>,
}

impl<S> ConnectionService<S> {
    pub(crate) fn new(service: S, peer: SocketAddr, calls: Arc<Calls>) -> Self {
        ConnectionService {
            service: RefCell::new(service),
            peer,
            calls,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionService<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Call<S::Future, B>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let peer = self.peer;
        let guard = self.calls.start();
        let mut service = self.service.borrow_mut();
        // A service that is not ready keeps what it was asked with (here a waker that wakes
        // nobody); the clone below is asked again with the call's own.
        match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Call::Called {
                future: service.call(request),
                guard: Some(guard),
                peer,
            },
            Poll::Ready(Err(err)) => Call::Failed {
                error: Some(err.into()),
            },
            Poll::Pending => {
                let mut service = service.clone();
                Call::Waiting {
                    peer,
                    future: Box::pin(async move {
                        std::future::poll_fn(|cx| service.poll_ready(cx))
                            .await
                            .map_err(Into::into)?;
                        let response = service.call(request).await.map_err(Into::into);
                        drop(guard);
                        response
                    }),
                }
            }
        }
    }
}

/// The boxed call of a service that was not ready at once.
type Waiting<B> = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// One request's call, as hyper holds it.
    #[project = CallProj]
    pub(crate) enum Call<F, B> {
        Called {
            #[pin]
            future: F,
            // Dropped with the response made, not when hyper drops the call.
            guard: Option<CallGuard>,
            peer: SocketAddr,
        },
        Failed {
            error: Option<BoxError>,
        },
        Waiting {
            future: Waiting<B>,
            peer: SocketAddr,
        },
    }
}

impl<F, B, E> Future for Call<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CallProj::Called {
                future,
                guard,
                peer,
            } => {
                let response = ready!(with_peer(*peer, || future.poll(task))).map_err(Into::into);
                guard.take();
                Poll::Ready(response)
            }
            CallProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("a call polled after it failed")))
            }
            CallProj::Waiting { future, peer } => with_peer(*peer, || future.as_mut().poll(task)),
        }
    }
}

/// Runs `poll` with CONNECTION_PEER set to `peer`: only while a call is polled, rather than
/// around the connection's task, which is polled more often (and an HTTP/2 call is polled on
/// a task of its own).
fn with_peer<R>(peer: SocketAddr, poll: impl FnOnce() -> R) -> R {
    CONNECTION_PEER.sync_scope(peer, poll)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A tower service that is ready only every other time it is asked, refuses a call it did
    /// not say it was ready for, and counts its calls.
    #[derive(Clone)]
    struct Reluctant {
        asked: usize,
        ready: bool,
        calls: Arc<AtomicUsize>,
    }

    impl tower_service::Service<Request<Incoming>> for Reluctant {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

        fn poll_ready(&mut self, task: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            self.asked += 1;
            if self.asked % 2 == 1 {
                task.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Incoming>) -> Self::Future {
            assert!(
                std::mem::take(&mut self.ready),
                "called before it was ready"
            );
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(Ok(Response::new(Full::new(Bytes::from(n.to_string())))))
        }
    }

    #[tokio::test]
    async fn a_service_not_ready_at_once_is_waited_for_and_every_request_is_answered() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = Reluctant {
            asked: 0,
            ready: false,
            calls: Arc::clone(&calls),
        };
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (server_io, client_io) = tokio::io::duplex(4096);
        let connection = http1::Builder::new().serve_connection(
            TokioIo::new(server_io),
            ConnectionService::new(service, peer, Arc::new(Calls::default())),
        );
        tokio::spawn(connection);
        let (mut sender, client) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
            .await
            .unwrap();
        tokio::spawn(client);
        for expected in 1..=4 {
            let request = Request::post("/").body(Empty::<Bytes>::new()).unwrap();
            let response = sender.send_request(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, expected.to_string());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
