//! A background loop that ends with its owner: instancers, registrars and the endpointer each
//! run one, and dropping them must stop it rather than leave it polling a registry.

use std::future::Future;

use tokio::task::JoinHandle;

/// A spawned task, aborted when this is dropped.
#[derive(Debug)]
pub(crate) struct Task(JoinHandle<()>);

impl Task {
    /// Spawns `future` on the current tokio runtime.
    pub(crate) fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(future))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}
