//! SERVER spans for kit's servers, one entry point for every transport.

use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracer;

use crate::Propagation;

/// SERVER spans for kit's servers, whatever the transport: one value per service, from its
/// tracer. `http_options` (feature `http`) adds the tracing
/// hooks to a kit-transport-http `ServerOptions`, which its HTTP servers and JSON-RPC server
/// share; `grpc_options` (feature `grpc`) to a
/// kit-transport-grpc `ServerOptions`, which every method's server shares.
///
/// The before hook continues the caller's trace from its headers or metadata (B3 or W3C) or
/// starts one; the finalizer ends the span with the status. A failure that is the server's
/// (HTTP 5xx; gRPC `INTERNAL`, `UNAVAILABLE`, `UNKNOWN`, ...) marks the span as an error; the
/// caller's mistakes and business errors are only tagged.
#[derive(Clone, Debug)]
pub struct ServerTracing {
    pub(crate) tracer: SdkTracer,
    pub(crate) propagation: Arc<Propagation>,
}

impl ServerTracing {
    /// Spans from `tracer`, reading every propagation format.
    pub fn new(tracer: SdkTracer) -> Self {
        ServerTracing {
            tracer,
            propagation: Arc::new(Propagation::default()),
        }
    }

    /// Reads the caller's context with `propagation`: on a public edge,
    /// `Propagation::default().trust_sampling(false)`, so that callers cannot force sampling.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = Arc::new(propagation);
        self
    }
}
