//! The smallest real kit-rs program: a string service's two methods as endpoints, wrapped in a
//! middleware chain (a hand-written logging middleware, the deadline middleware and tower's
//! concurrency limit), called in-process.
//!
//! Run it with `cargo run -p quickstart -- [TEXT]...`: each TEXT (default "hello, kit") goes
//! through both methods. Results go to stdout; the log middleware writes to stderr.

use std::time::{Duration, Instant};

use kit_core::deadline::Deadline;
use kit_core::tower::LayerMiddleware;
use kit_core::{Chain, Context, Endpoint, Error, Middleware, Outcome, endpoint_fn};
use tower::limit::ConcurrencyLimitLayer;

/// Longest input the service accepts, in characters.
const MAX_LEN: usize = 64;

/// Logs each call's method, outcome, error and duration to stderr.
#[derive(Clone, Copy)]
struct Logging {
    method: &'static str,
}

impl<E> Middleware<E> for Logging {
    type Endpoint = Logged<E>;

    fn wrap(&self, inner: E) -> Logged<E> {
        Logged {
            inner,
            method: self.method,
        }
    }
}

struct Logged<E> {
    inner: E,
    method: &'static str,
}

impl<E: Endpoint<Req>, Req: Send> Endpoint<Req> for Logged<E> {
    type Response = E::Response;

    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        let start = Instant::now();
        let result = self.inner.call(cx, req).await;
        let err = result.as_ref().err().map(|e| e.to_string());
        eprintln!(
            "method={} outcome={} err={:?} took={:?}",
            self.method,
            Outcome::of(&result).as_str(),
            err.unwrap_or_default(),
            start.elapsed(),
        );
        result
    }
}

fn check(s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(Error::business("empty string"));
    }
    if s.chars().count() > MAX_LEN {
        return Err(Error::invalid_argument(format!(
            "string longer than {MAX_LEN} characters"
        )));
    }
    Ok(())
}

/// Wraps a method of the service in what every method gets, outermost first.
fn standard<E>(method: &'static str, endpoint: E) -> impl Endpoint<String, Response = E::Response>
where
    E: Endpoint<String>,
{
    Chain::new()
        .with(Logging { method })
        .with(Deadline::with_timeout(Duration::from_secs(1)))
        .with(LayerMiddleware::new(ConcurrencyLimitLayer::new(64)))
        .wrap(endpoint)
}

fn print(method: &str, input: &str, result: Result<impl std::fmt::Display, Error>) {
    match result {
        Ok(v) => println!("{method}({input:?}) = {v}"),
        Err(e) => println!("{method}({input:?}) failed: {}: {e}", e.kind()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let uppercase = standard(
        "uppercase",
        endpoint_fn(|_cx, s: String| async move {
            check(&s)?;
            Ok(s.to_uppercase())
        }),
    );
    let count = standard(
        "count",
        endpoint_fn(|_cx, s: String| async move {
            check(&s)?;
            Ok(s.chars().count())
        }),
    );

    let mut inputs: Vec<String> = std::env::args().skip(1).collect();
    if inputs.is_empty() {
        inputs.push("hello, kit".to_owned());
    }
    for input in &inputs {
        print(
            "uppercase",
            input,
            uppercase.call(Context::new(), input.clone()).await,
        );
        print(
            "count",
            input,
            count.call(Context::new(), input.clone()).await,
        );
    }

    // A caller whose deadline has already passed: the deadline middleware answers for the
    // endpoint, which is never reached.
    let expired = Context::new().with_timeout(Duration::ZERO);
    print(
        "uppercase",
        "late",
        uppercase.call(expired, "late".to_owned()).await,
    );
}
