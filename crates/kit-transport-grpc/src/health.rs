//! The standard gRPC health checking service, `grpc.health.v1.Health` (Check and Watch), as
//! tonic-health implements it, behind a handle that kit-server and the [`Listener`] drive.
//!
//! [`Listener`]: crate::Listener

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthApi, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

/// The health of a server and of each of its services, served as `grpc.health.v1.Health`.
///
/// A new `Health` reports the server as a whole (the service name `""`) as `SERVING`. Clones
/// share the same statuses. [`Listener::health`](crate::Listener::health) serves it and calls
/// [`shut_down`](Health::shut_down) when shutdown starts, so that load balancers stop sending
/// new calls while in-flight ones finish.
#[derive(Clone, Debug)]
pub struct Health {
    reporter: HealthReporter,
    // tonic-health cannot list the names it holds; shutting down needs them all.
    names: Arc<Mutex<Names>>,
    shut_down: CancellationToken,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// The server reported as `SERVING`, and no named services yet.
    pub fn new() -> Health {
        Health {
            reporter: HealthReporter::new(),
            names: Arc::new(Mutex::new(Names {
                list: vec![String::new()],
                shut_down: false,
            })),
            shut_down: CancellationToken::new(),
        }
    }

    /// The tonic service answering Check and Watch, for `Routes::add_service`.
    pub fn service(&self) -> HealthServer<HealthCalls> {
        HealthServer::new(HealthCalls {
            inner: HealthService::from_health_reporter(self.reporter.clone()),
            shut_down: self.shut_down.clone(),
        })
    }

    /// Reports `service` (its full name, `package.Service`; `""` for the whole server) as
    /// `SERVING` or `NOT_SERVING`. A name never set answers Check with `NOT_FOUND`, as the
    /// protocol asks.
    ///
    /// After [`shut_down`](Health::shut_down), this does nothing: shutdown is for good.
    pub async fn set_serving(&self, service: &str, serving: bool) {
        // Held across the update, so that a shutdown cannot interleave with it.
        let mut names = self.names.lock().await;
        if names.shut_down {
            return;
        }
        if !names.list.iter().any(|n| n == service) {
            names.list.push(service.to_owned());
        }
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status(service, status).await;
    }

    /// Reports the server and every service it has named as `NOT_SERVING`, for good, and ends
    /// Watch streams once they have sent that: a stream that never ends would hold its
    /// connection, and so the drain, open until the drain timeout. Calling it again does
    /// nothing more.
    pub async fn shut_down(&self) {
        let mut names = self.names.lock().await;
        names.shut_down = true;
        for name in &names.list {
            self.reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        self.shut_down.cancel();
    }
}

/// The names statuses were set for, and whether shutdown has come.
#[derive(Debug)]
struct Names {
    list: Vec<String>,
    shut_down: bool,
}

/// The `grpc.health.v1.Health` implementation [`Health::service`] serves: tonic-health's, with
/// Watch streams that end at shutdown.
#[derive(Debug)]
pub struct HealthCalls {
    inner: HealthService,
    shut_down: CancellationToken,
}

#[tonic::async_trait]
impl HealthApi for HealthCalls {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchUntilShutDown;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchUntilShutDown>, Status> {
        let statuses = self.inner.watch(request).await?.into_inner();
        Ok(Response::new(WatchUntilShutDown {
            statuses,
            shut_down: Box::pin(self.shut_down.clone().cancelled_owned()),
        }))
    }
}

/// A Watch stream that ends at shutdown, after the `NOT_SERVING` statuses shutdown sets.
pub struct WatchUntilShutDown {
    statuses: tonic_health::server::WatchStream,
    shut_down: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for WatchUntilShutDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchUntilShutDown").finish_non_exhaustive()
    }
}

impl Stream for WatchUntilShutDown {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Statuses first: shutdown sets NOT_SERVING before it cancels, so the watcher sees it.
        if let Poll::Ready(status) = Pin::new(&mut self.statuses).poll_next(cx) {
            return Poll::Ready(status);
        }
        match self.shut_down.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
