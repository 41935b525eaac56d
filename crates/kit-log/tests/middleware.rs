//! The endpoint logging middleware: one record per call, with outcome, duration and error.

mod support;

use kit_core::{Chain, Context, Endpoint, Error, Middleware, Named, endpoint_fn};
use kit_log::{Logfmt, Logging};
use slog::{Drain, Logger, o};
use support::{Captured, parse_logfmt};

#[tokio::test]
async fn each_call_is_logged_with_its_outcome() {
    let out = Captured::default();
    let log = Logger::root(Logfmt::new(out.clone()).fuse(), o!("svc" => "add"));
    let sum = Chain::new()
        .with(Named::new("sum"))
        .with(Logging::new(log))
        .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
            match (a, b) {
                (0, 0) => Err(Error::business("can't sum two zeroes")),
                (_, i64::MAX) => Err(Error::internal("overflow check failed")),
                _ => Ok(a + b),
            }
        }));
    assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
    assert!(
        sum.call(Context::new(), (0, 0))
            .await
            .unwrap_err()
            .is_business()
    );
    assert!(
        sum.call(Context::new(), (1, i64::MAX))
            .await
            .unwrap_err()
            .is_failure()
    );

    let text = out.text();
    let lines: Vec<Vec<(String, String)>> =
        text.lines().map(|l| parse_logfmt(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let keys = |pairs: &[(String, String)]| -> Vec<String> {
        pairs.iter().map(|(k, _)| k.clone()).collect()
    };
    let value = |pairs: &[(String, String)], key: &str| -> String {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        keys(&lines[0]),
        ["level", "svc", "method", "outcome", "took"]
    );
    assert_eq!(value(&lines[0], "level"), "info");
    // The name the context carries, set once by `Named`.
    assert_eq!(value(&lines[0], "method"), "sum");
    assert_eq!(value(&lines[0], "outcome"), "success");
    assert!(value(&lines[0], "took").ends_with('s'), "{text}");

    assert_eq!(
        keys(&lines[1]),
        ["level", "svc", "method", "outcome", "took", "err", "kind"]
    );
    assert_eq!(value(&lines[1], "level"), "info");
    assert_eq!(value(&lines[1], "outcome"), "rejected");
    assert_eq!(value(&lines[1], "err"), "can't sum two zeroes");
    assert_eq!(value(&lines[1], "kind"), "business");

    assert_eq!(value(&lines[2], "level"), "error");
    assert_eq!(value(&lines[2], "outcome"), "failure");
    assert_eq!(value(&lines[2], "err"), "overflow check failed");
    assert_eq!(value(&lines[2], "kind"), "internal");
}

/// A go-kit-style response that carries its business error.
struct SumReply {
    v: i64,
    err: Option<String>,
}

impl kit_core::Failer for SumReply {
    fn failed(&self) -> Option<Error> {
        self.err.clone().map(Error::business)
    }
}

#[tokio::test]
async fn business_errors_carried_in_responses_are_logged_as_rejections() {
    let out = Captured::default();
    let log = Logger::root(Logfmt::new(out.clone()).fuse(), o!());
    let sum = Named::new("sum").wrap(Logging::new(log).wrap(kit_core::Failing::new(endpoint_fn(
        |_cx, (a, b): (i64, i64)| async move {
            Ok::<_, Error>(match (a, b) {
                (0, 0) => SumReply {
                    v: 0,
                    err: Some("can't sum two zeroes".into()),
                },
                _ => SumReply {
                    v: a + b,
                    err: None,
                },
            })
        },
    ))));
    assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap().v, 3);
    let reply = sum.call(Context::new(), (0, 0)).await.unwrap();
    assert_eq!(reply.err.as_deref(), Some("can't sum two zeroes"));

    let text = out.text();
    let lines: Vec<Vec<(String, String)>> =
        text.lines().map(|l| parse_logfmt(l).unwrap()).collect();
    let get = |i: usize, key: &str| -> Option<String> {
        lines[i]
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get(0, "outcome").as_deref(), Some("success"));
    assert_eq!(get(0, "err"), None);
    assert_eq!(get(1, "level").as_deref(), Some("info"));
    assert_eq!(get(1, "outcome").as_deref(), Some("rejected"));
    assert_eq!(get(1, "err").as_deref(), Some("can't sum two zeroes"));
    assert_eq!(get(1, "kind").as_deref(), Some("business"));
}

#[tokio::test]
async fn what_went_wrong_underneath_is_logged_as_the_cause() {
    let out = Captured::default();
    let log = Logger::root(Logfmt::new(out.clone()).fuse(), o!());
    let call = Chain::new()
        .with(Named::new("report"))
        .with(Logging::new(log))
        .wrap(endpoint_fn(|_cx, ()| async move {
            Err::<(), _>(
                Error::unavailable("unavailable")
                    .with_source(std::io::Error::other("connect 10.0.0.7:5432: refused")),
            )
        }));
    call.call(Context::new(), ()).await.unwrap_err();
    let text = out.text();
    let pairs = parse_logfmt(text.lines().next().unwrap()).unwrap();
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    // The message is what callers see; the cause is for whoever reads the logs.
    assert_eq!(value("err"), Some("unavailable"), "{text}");
    assert_eq!(
        value("cause"),
        Some("connect 10.0.0.7:5432: refused"),
        "{text}"
    );
}

#[tokio::test]
async fn records_are_placed_where_the_middleware_was_made() {
    let out = Captured::default();
    let log = Logger::root(
        Logfmt::new(out.clone()).fuse(),
        o!("caller" => kit_log::caller()),
    );
    // The service's own line, not kit-log's middleware file that every service shares.
    let made_at = line!() + 1;
    let logging = Logging::new(log);
    let sum = logging.wrap(endpoint_fn(|_cx, ()| async { Ok::<_, Error>(()) }));
    sum.call(Context::new(), ()).await.unwrap();
    let text = out.text();
    let pairs = parse_logfmt(text.lines().next().unwrap()).unwrap();
    let caller = &pairs.iter().find(|(k, _)| k == "caller").unwrap().1;
    assert_eq!(caller, &format!("{}:{made_at}", file!()), "{text}");
}
