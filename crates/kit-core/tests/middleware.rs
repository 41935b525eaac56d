//! Middleware and chains: the first middleware in a chain is the outermost.

use std::sync::{Arc, Mutex};

use kit_core::{BoxEndpoint, Chain, Context, Endpoint, Error, Identity, Middleware, endpoint_fn};

type Trace = Arc<Mutex<Vec<String>>>;

/// Records entering and leaving, by name.
#[derive(Clone)]
struct Annotate {
    name: &'static str,
    trace: Trace,
}

struct Annotated<E> {
    inner: E,
    name: &'static str,
    trace: Trace,
}

impl<E> Middleware<E> for Annotate {
    type Endpoint = Annotated<E>;
    fn wrap(&self, inner: E) -> Annotated<E> {
        Annotated {
            inner,
            name: self.name,
            trace: Arc::clone(&self.trace),
        }
    }
}

impl<E: Endpoint<Req>, Req: Send> Endpoint<Req> for Annotated<E> {
    type Response = E::Response;
    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        self.trace
            .lock()
            .unwrap()
            .push(format!("{} pre", self.name));
        let out = self.inner.call(cx, req).await;
        self.trace
            .lock()
            .unwrap()
            .push(format!("{} post", self.name));
        out
    }
}

fn recording_endpoint(trace: &Trace) -> impl Endpoint<(), Response = ()> {
    let trace = Arc::clone(trace);
    endpoint_fn(move |_cx, ()| {
        trace.lock().unwrap().push("endpoint".into());
        async { Ok(()) }
    })
}

#[tokio::test]
async fn chain_runs_first_middleware_outermost() {
    let trace = Trace::default();
    let mw = |name| Annotate {
        name,
        trace: Arc::clone(&trace),
    };
    let ep = Chain::new()
        .with(mw("first"))
        .with(mw("second"))
        .with(mw("third"))
        .wrap(recording_endpoint(&trace));
    ep.call(Context::new(), ()).await.unwrap();
    assert_eq!(
        *trace.lock().unwrap(),
        [
            "first pre",
            "second pre",
            "third pre",
            "endpoint",
            "third post",
            "second post",
            "first post"
        ]
    );
}

#[tokio::test]
async fn chains_nest_and_the_outer_chain_stays_outside() {
    let trace = Trace::default();
    let mw = |name| Annotate {
        name,
        trace: Arc::clone(&trace),
    };
    let inner = Chain::new().with(mw("b")).with(mw("c"));
    let ep = Chain::new()
        .with(mw("a"))
        .with(inner)
        .with(mw("d"))
        .wrap(recording_endpoint(&trace));
    ep.call(Context::new(), ()).await.unwrap();
    let trace = trace.lock().unwrap();
    assert_eq!(trace[..5], ["a pre", "b pre", "c pre", "d pre", "endpoint"]);
}

#[tokio::test]
async fn an_empty_chain_and_identity_change_nothing() {
    let ep = Chain::new().wrap(endpoint_fn(|_cx, n: i32| async move { Ok(n) }));
    assert_eq!(ep.call(Context::new(), 5).await.unwrap(), 5);
    let ep = Identity.wrap(endpoint_fn(|_cx, n: i32| async move { Ok(-n) }));
    assert_eq!(ep.call(Context::new(), 5).await.unwrap(), -5);
}

#[tokio::test]
async fn closure_middleware_in_a_chain_go_kit_style() {
    // go-kit's shape: func(Endpoint) Endpoint, over boxed endpoints.
    fn add(k: i64) -> impl Fn(BoxEndpoint<i64, i64>) -> BoxEndpoint<i64, i64> + Clone {
        move |next: BoxEndpoint<i64, i64>| {
            BoxEndpoint::new(endpoint_fn(move |cx, n: i64| {
                let next = next.clone();
                // Order shows in the result: ((n * 10 + k1) * 10 + k2)...
                async move { next.call(cx, n * 10 + k).await }
            }))
        }
    }
    let ep = Chain::new()
        .with(add(1))
        .with(add(2))
        .with(add(3))
        .wrap(BoxEndpoint::new(endpoint_fn(
            |_cx, n: i64| async move { Ok(n) },
        )));
    // first (outermost) sees the request first: ((0*10+1)*10+2)*10+3
    assert_eq!(ep.call(Context::new(), 0).await.unwrap(), 123);
}

#[tokio::test]
async fn a_middleware_can_short_circuit_and_the_inner_endpoint_is_not_called() {
    let trace = Trace::default();
    let deny = |_next: BoxEndpoint<(), ()>| {
        BoxEndpoint::new(endpoint_fn(|_cx, ()| async {
            Err::<(), _>(Error::new(kit_core::ErrorKind::PermissionDenied, "denied"))
        }))
    };
    let ep = Chain::new()
        .with(deny)
        .wrap(BoxEndpoint::new(recording_endpoint(&trace)));
    let err = ep.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(err.to_string(), "denied");
    assert!(trace.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_optional_middleware_wraps_when_present_and_passes_through_when_absent() {
    let trace = Trace::default();
    let annotate = |on: bool| {
        on.then(|| Annotate {
            name: "a",
            trace: Arc::clone(&trace),
        })
    };
    // One type whether the middleware is there or not.
    let endpoints = [true, false].map(|on| {
        Chain::new()
            .with(annotate(on))
            .wrap(recording_endpoint(&trace))
    });
    endpoints[0].call(Context::new(), ()).await.unwrap();
    endpoints[1].call(Context::new(), ()).await.unwrap();
    assert_eq!(
        *trace.lock().unwrap(),
        ["a pre", "endpoint", "a post", "endpoint"]
    );
}

#[tokio::test]
async fn an_optional_middleware_keeps_the_reading_of_a_carried_error() {
    use kit_core::{ErrorKind, Failer, Failing};
    struct Reply(Option<Error>);
    impl Failer for Reply {
        fn failed(&self) -> Option<Error> {
            self.0.clone()
        }
    }
    let carrying = Failing::new(endpoint_fn(|_cx, ()| async {
        Ok::<_, Error>(Reply(Some(Error::business("no"))))
    }));
    for present in [Some(Identity), None] {
        let ep = present.wrap(carrying);
        let reply = ep.call(Context::new(), ()).await.unwrap();
        assert_eq!(
            ep.failed(&reply).map(|e| e.kind()),
            Some(ErrorKind::Business)
        );
    }
}
