//! The Endpointer over a Publisher, on tokio's paused clock: endpoints kept, made once, dropped
//! when their instance leaves, refused instances skipped, and the grace on instancer errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_core::{BoxEndpoint, Endpointer as _, Error, ErrorKind, endpoint_fn};
use kit_sd::{Endpointer, EndpointerOptions, Instancer, Publisher};

/// An instancer the test drives by hand.
struct Driven(Publisher);

impl Instancer for Driven {
    fn subscribe(&self) -> tokio::sync::watch::Receiver<kit_sd::Event> {
        self.0.subscribe()
    }
}

/// Counts the endpoints alive: each holds a guard that counts down when dropped.
#[derive(Clone, Default)]
struct Census {
    made: Arc<AtomicUsize>,
    alive: Arc<AtomicUsize>,
    names: Arc<Mutex<Vec<String>>>,
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Census {
    fn factory(
        &self,
    ) -> impl Fn(&str) -> Result<BoxEndpoint<(), String>, Error> + Send + Sync + 'static {
        let census = self.clone();
        move |instance: &str| {
            if instance.starts_with("bad") {
                return Err(Error::invalid_argument(format!(
                    "{instance} is not an address"
                )));
            }
            census.made.fetch_add(1, Ordering::SeqCst);
            census.alive.fetch_add(1, Ordering::SeqCst);
            census.names.lock().unwrap().push(instance.to_owned());
            let guard = Arc::new(Alive(census.alive.clone()));
            let instance = instance.to_owned();
            Ok(BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
                let _alive = &guard;
                let instance = instance.clone();
                async move { Ok::<_, Error>(instance) }
            })))
        }
    }
}

async fn settle() {
    // Let the endpointer's task see the event.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn endpoints_are_made_once_kept_while_their_instance_stays_and_dropped_when_it_leaves() {
    let instancer = Driven(Publisher::new());
    instancer.0.publish(["a:1".into(), "b:1".into()]);
    let census = Census::default();
    let endpointer = Endpointer::new(&instancer, census.factory(), EndpointerOptions::new());
    assert_eq!(
        endpointer.endpoints().unwrap().len(),
        2,
        "ready when new returns"
    );
    let first = endpointer.endpoints().unwrap();
    assert!(endpointer.is_current(&first));
    instancer
        .0
        .publish(["b:1".into(), "c:1".into(), "bad-entry".into()]);
    settle().await;
    assert!(!endpointer.is_current(&first), "a new set was published");
    drop(first);
    assert!(endpointer.is_current(&endpointer.endpoints().unwrap()));
    assert_eq!(
        endpointer.endpoints().unwrap().len(),
        2,
        "the refused instance is left out"
    );
    assert_eq!(census.made.load(Ordering::SeqCst), 3, "b kept its endpoint");
    assert_eq!(
        census.alive.load(Ordering::SeqCst),
        2,
        "a's endpoint is gone"
    );
    assert_eq!(*census.names.lock().unwrap(), ["a:1", "b:1", "c:1"]);
    // Everything leaves: an empty set, every endpoint closed.
    instancer.0.publish(Vec::new());
    settle().await;
    assert_eq!(endpointer.endpoints().unwrap().len(), 0);
    assert_eq!(census.alive.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_instancer_error_keeps_the_last_good_set_for_the_grace_then_fails_it() {
    let instancer = Driven(Publisher::new());
    instancer.0.publish(["a:1".into()]);
    let census = Census::default();
    let endpointer = Endpointer::new(
        &instancer,
        census.factory(),
        EndpointerOptions::new().invalidate_on_error(Some(Duration::from_secs(10))),
    );
    instancer
        .0
        .fail(Error::unavailable("etcd: connecting: refused"));
    settle().await;
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert_eq!(
        endpointer.endpoints().unwrap().len(),
        1,
        "kept within the grace"
    );
    let kept = endpointer.endpoints().unwrap();
    assert!(endpointer.is_current(&kept));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!endpointer.is_current(&kept), "the set failed");
    drop(kept);
    let err = endpointer.endpoints().unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unavailable, "etcd: connecting: refused")
    );
    assert_eq!(census.alive.load(Ordering::SeqCst), 0);
    // The instancer recovers: a set again, endpoints made again.
    instancer.0.publish(["a:1".into()]);
    settle().await;
    assert_eq!(endpointer.endpoints().unwrap().len(), 1);
    // An error that recovers within the grace changes nothing.
    instancer.0.fail(Error::unavailable("blip"));
    settle().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    instancer.0.publish(["a:1".into(), "b:1".into()]);
    settle().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(endpointer.endpoints().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn before_any_good_set_an_error_fails_at_once_and_none_grace_keeps_for_ever() {
    let instancer = Driven(Publisher::new());
    let census = Census::default();
    let endpointer = Endpointer::new(&instancer, census.factory(), EndpointerOptions::new());
    assert_eq!(
        endpointer.endpoints().unwrap_err().message(),
        "no instances resolved yet"
    );
    let keeps = Endpointer::new(
        &instancer,
        census.factory(),
        EndpointerOptions::new().invalidate_on_error(None),
    );
    instancer.0.publish(["a:1".into()]);
    settle().await;
    instancer.0.fail(Error::unavailable("down"));
    settle().await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(keeps.endpoints().unwrap().len(), 1);
    assert!(endpointer.endpoints().is_err());
}
