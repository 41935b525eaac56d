//! Endpoint sets: fixed, and published by a discoverer while callers read.

use std::sync::Arc;

use kit_core::{
    BoxEndpoint, Context, Endpoint, EndpointSet, Endpointer, Error, ErrorKind, FixedEndpointer,
    endpoint_fn,
};

fn constant(n: u32) -> BoxEndpoint<(), u32> {
    BoxEndpoint::new(endpoint_fn(move |_cx, ()| async move { Ok(n) }))
}

async fn call_all(set: &dyn Endpointer<(), u32>) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    for ep in set.endpoints()?.iter() {
        out.push(ep.call(Context::new(), ()).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn a_fixed_set_returns_the_same_snapshot() {
    let fixed = FixedEndpointer::new(vec![constant(1), constant(2)]);
    assert_eq!(call_all(&fixed).await.unwrap(), [1, 2]);
    assert!(Arc::ptr_eq(
        &fixed.endpoints().unwrap(),
        &fixed.endpoints().unwrap()
    ));
}

#[tokio::test]
async fn readers_see_what_the_publisher_publishes() {
    let publisher = EndpointSet::new();
    let reader: Arc<dyn Endpointer<(), u32>> = Arc::new(publisher.clone());

    publisher.publish(vec![constant(1), constant(2)]);
    let before = reader.endpoints().unwrap();
    assert_eq!(call_all(&*reader).await.unwrap(), [1, 2]);

    publisher.publish(vec![constant(3)]);
    assert_eq!(call_all(&*reader).await.unwrap(), [3]);
    // A snapshot taken earlier is unchanged, and a change is visible by pointer.
    assert_eq!(before.len(), 2);
    assert!(!Arc::ptr_eq(&before, &reader.endpoints().unwrap()));

    publisher.fail(Error::unavailable("zookeeper session expired"));
    let err = call_all(&*reader).await.unwrap_err();
    assert_eq!(err.to_string(), "zookeeper session expired");
    assert!(format!("{publisher:?}").contains("error"));

    publisher.publish(vec![constant(4)]);
    assert_eq!(call_all(&*reader).await.unwrap(), [4]);
}

#[test]
fn an_unpublished_set_is_unknown_not_empty() {
    let set = EndpointSet::<(), u32>::new();
    let err = set.endpoints().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.to_string(), "no endpoints published yet");
    set.publish(Vec::new());
    assert_eq!(set.endpoints().unwrap().len(), 0);
}

/// An endpoint that reads the set it belongs to when it is dropped, as one closing its
/// connection might.
struct ReadsSetOnDrop(EndpointSet<(), u32>);

impl Endpoint<()> for ReadsSetOnDrop {
    type Response = u32;
    async fn call(&self, _cx: Context, (): ()) -> Result<u32, Error> {
        Ok(0)
    }
}

impl Drop for ReadsSetOnDrop {
    fn drop(&mut self) {
        let _ = self.0.endpoints();
    }
}

#[test]
fn replaced_endpoints_are_dropped_outside_the_lock() {
    let set = EndpointSet::<(), u32>::new();
    set.publish(vec![BoxEndpoint::new(ReadsSetOnDrop(set.clone()))]);
    // Replacing drops the last reference to the old endpoint. Were that done under the write
    // lock, its Drop would deadlock (or panic) on the read: run it on a thread and time it out.
    let (done, finished) = std::sync::mpsc::channel();
    let publisher = set.clone();
    std::thread::spawn(move || {
        publisher.publish(vec![constant(1)]);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("publish returned");
    assert_eq!(set.endpoints().unwrap().len(), 1);
}

/// An endpointer that only implements `endpoints`: `is_current` is the trait's default.
struct OnlyEndpoints(EndpointSet<(), u32>);

impl Endpointer<(), u32> for OnlyEndpoints {
    fn endpoints(&self) -> Result<kit_core::Endpoints<(), u32>, Error> {
        self.0.endpoints()
    }
}

#[test]
fn is_current_holds_until_another_set_is_published_or_the_set_fails() {
    let fixed = FixedEndpointer::new(vec![constant(1)]);
    let snapshot = fixed.endpoints().unwrap();
    assert!(fixed.is_current(&snapshot));
    let same_members: kit_core::Endpoints<(), u32> = snapshot.iter().cloned().collect();
    assert!(!fixed.is_current(&same_members), "a copy is another set");

    let publisher = EndpointSet::new();
    let default = OnlyEndpoints(publisher.clone());
    // Through an Arc<dyn Endpointer>, as balancers often hold one: the override is used.
    let shared: Arc<dyn Endpointer<(), u32>> = Arc::new(publisher.clone());
    for reader in [&shared as &dyn Endpointer<(), u32>, &default] {
        assert!(!reader.is_current(&snapshot), "nothing published yet");
    }
    publisher.publish(Arc::clone(&snapshot));
    for reader in [&shared as &dyn Endpointer<(), u32>, &default] {
        assert!(reader.is_current(&snapshot));
    }
    publisher.publish(vec![constant(1)]);
    for reader in [&shared as &dyn Endpointer<(), u32>, &default] {
        assert!(!reader.is_current(&snapshot), "replaced");
    }
    let current = shared.endpoints().unwrap();
    publisher.fail(Error::unavailable("discovery down"));
    for reader in [&shared as &dyn Endpointer<(), u32>, &default] {
        assert!(!reader.is_current(&current), "failed");
    }
}
