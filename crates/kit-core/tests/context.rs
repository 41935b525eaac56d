//! Context: deadlines only tighten, values by type, hierarchical cancellation, `done`.

use std::time::Duration;

use kit_core::{Context, ErrorKind};
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
struct RequestId(String);
#[derive(Debug, PartialEq)]
struct Tenant(u32);

#[test]
fn an_empty_context_has_nothing() {
    let cx = Context::new();
    assert_eq!(cx.deadline(), None);
    assert_eq!(cx.remaining(), None);
    assert!(!cx.is_cancelled());
    assert!(cx.err().is_none());
    assert_eq!(cx.get::<RequestId>(), None);
}

#[tokio::test(start_paused = true)]
async fn deadlines_only_move_earlier() {
    let now = Instant::now();
    let cx = Context::new().with_deadline(now + Duration::from_secs(10));
    let tighter = cx.clone().with_deadline(now + Duration::from_secs(5));
    let looser = tighter.clone().with_deadline(now + Duration::from_secs(60));
    let looser_timeout = tighter.clone().with_timeout(Duration::from_secs(60));
    assert_eq!(cx.deadline(), Some(now + Duration::from_secs(10)));
    assert_eq!(tighter.deadline(), Some(now + Duration::from_secs(5)));
    assert_eq!(looser.deadline(), Some(now + Duration::from_secs(5)));
    assert_eq!(
        looser_timeout.deadline(),
        Some(now + Duration::from_secs(5))
    );
    // A timeout too large to represent leaves the deadline alone instead of panicking.
    assert_eq!(
        cx.clone().with_timeout(Duration::MAX).deadline(),
        cx.deadline()
    );
    assert_eq!(Context::new().with_timeout(Duration::MAX).deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn remaining_counts_down_and_err_reports_the_deadline() {
    let cx = Context::new().with_timeout(Duration::from_millis(100));
    assert_eq!(cx.remaining(), Some(Duration::from_millis(100)));
    assert!(cx.err().is_none());
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(cx.remaining(), Some(Duration::from_millis(40)));
    tokio::time::advance(Duration::from_millis(40)).await;
    assert_eq!(cx.remaining(), Some(Duration::ZERO));
    let err = cx.err().expect("deadline passed");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.to_string(), "deadline exceeded");
}

#[test]
fn values_are_found_by_type_and_newer_ones_hide_older() {
    let base = Context::new()
        .with_value(RequestId("a".into()))
        .with_value(Tenant(7));
    let derived = base.clone().with_value(RequestId("b".into()));
    assert_eq!(base.get::<RequestId>(), Some(&RequestId("a".into())));
    assert_eq!(derived.get::<RequestId>(), Some(&RequestId("b".into())));
    // Values below the newest stay reachable.
    assert_eq!(derived.get::<Tenant>(), Some(&Tenant(7)));
    // Same underlying type under another name is another key.
    assert_eq!(derived.get::<String>(), None);
}

#[test]
fn cancelling_a_parent_cancels_children_but_not_the_other_way() {
    let (parent, cancel_parent) = Context::new().with_cancel();
    let (child, cancel_child) = parent.clone().with_cancel();
    let grandchild = child.clone().with_value(Tenant(1));

    cancel_child.cancel();
    assert!(child.is_cancelled());
    assert!(grandchild.is_cancelled());
    assert!(!parent.is_cancelled());

    let (sibling, _keep) = parent.clone().with_cancel();
    cancel_parent.cancel();
    assert!(parent.is_cancelled());
    assert!(sibling.is_cancelled());
    let err = sibling.err().expect("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.to_string(), "request cancelled");
}

#[tokio::test(start_paused = true)]
async fn done_completes_at_the_deadline_with_a_timeout_error() {
    let cx = Context::new().with_timeout(Duration::from_secs(3));
    let start = Instant::now();
    let err = cx.done().await;
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn done_completes_on_cancel_with_a_cancelled_error() {
    let (cx, cancel) = Context::new()
        .with_timeout(Duration::from_secs(3600))
        .with_cancel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    });
    let start = Instant::now();
    let err = cx.done().await;
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn done_never_completes_without_deadline_or_cancellation() {
    let cx = Context::new().with_value(Tenant(1));
    let waited = tokio::time::timeout(Duration::from_secs(3600), cx.done()).await;
    assert!(
        waited.is_err(),
        "done() completed for a context that cannot end"
    );
}

#[test]
fn clones_are_independent_values() {
    let a = Context::new().with_value(Tenant(1));
    let b = a.clone().with_value(Tenant(2));
    assert_eq!(a.get::<Tenant>(), Some(&Tenant(1)));
    assert_eq!(b.get::<Tenant>(), Some(&Tenant(2)));
    let dbg = format!("{b:?}");
    assert!(dbg.contains("cancelled: false"), "{dbg}");
}

#[test]
fn a_context_cancelled_by_an_outside_token() {
    let shutdown = kit_core::CancellationToken::new();
    let root = Context::cancelled_by(shutdown.child_token());
    let (call, _cancel_call) = root.clone().with_cancel();
    assert!(root.cancellation_token().is_some());
    assert!(Context::new().cancellation_token().is_none());
    assert!(!call.is_cancelled());
    shutdown.cancel();
    assert!(root.is_cancelled());
    assert!(call.is_cancelled());
}

#[tokio::test]
async fn the_endpoint_name_is_set_once_and_kept_by_every_derived_context() {
    use kit_core::{Chain, Endpoint, Error, Middleware, Named, endpoint_fn};
    assert_eq!(Context::new().endpoint_name(), None);
    let cx = Context::new().with_endpoint_name("sum");
    let derived = cx
        .clone()
        .with_timeout(std::time::Duration::from_secs(1))
        .with_value(7_u8);
    assert_eq!(derived.endpoint_name(), Some("sum"));
    // The innermost name is the one the endpoint sees.
    let ep = Chain::new()
        .with(Named::new("outer"))
        .with(Named::new("inner"))
        .wrap(endpoint_fn(|cx: Context, ()| async move {
            Ok::<_, Error>(cx.endpoint_name())
        }));
    assert_eq!(ep.call(Context::new(), ()).await.unwrap(), Some("inner"));
}
