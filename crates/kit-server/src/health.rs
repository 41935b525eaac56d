//! Liveness and readiness, over HTTP and the gRPC health service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A process's health: live while it runs, ready until its drain starts (or while the service
/// says so), reported over HTTP by [`DebugHandler`](crate::DebugHandler) (`/healthz`,
/// `/readyz`) and, with the `grpc` feature, over gRPC by the `grpc` health service.
///
/// Clones share the same state. A [`Group`](crate::Group) makes one and turns it not ready,
/// and every gRPC status `NOT_SERVING`, when its drain starts.
#[derive(Clone, Debug)]
pub struct Health {
    ready: Arc<AtomicBool>,
    draining: Arc<tokio::sync::Mutex<bool>>,
    #[cfg(feature = "grpc")]
    grpc: kit_transport_grpc::Health,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Ready, with the gRPC health service reporting the server `SERVING`.
    pub fn new() -> Health {
        Health {
            ready: Arc::new(AtomicBool::new(true)),
            draining: Arc::new(tokio::sync::Mutex::new(false)),
            #[cfg(feature = "grpc")]
            grpc: kit_transport_grpc::Health::new(),
        }
    }

    /// Whether the service should get traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the service ready or not (waiting on a dependency, say). The gRPC side follows
    /// for the server as a whole (the service name `""`). Once the drain has started this does
    /// nothing: a draining service stays not ready.
    pub async fn set_ready(&self, ready: bool) {
        // Held across the update, so that the drain cannot interleave with it.
        let draining = self.draining.lock().await;
        if *draining {
            return;
        }
        self.ready.store(ready, Ordering::Release);
        #[cfg(feature = "grpc")]
        self.grpc.set_serving("", ready).await;
    }

    /// The gRPC health service's handle: give it to a gRPC
    /// [`Listener::health`](kit_transport_grpc::Listener::health), and report each gRPC
    /// service's name with `set_serving`.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc(&self) -> &kit_transport_grpc::Health {
        &self.grpc
    }

    /// Not ready, for good: the drain has started.
    pub(crate) async fn start_draining(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.ready.store(false, Ordering::Release);
        #[cfg(feature = "grpc")]
        self.grpc.shut_down().await;
    }
}
