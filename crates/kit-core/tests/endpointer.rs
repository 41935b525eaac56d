//! Endpoint sets: fixed, and published by a discoverer while callers read.

use std::sync::Arc;

use kit_core::{
    BoxEndpoint, Context, Endpoint, EndpointSet, Endpointer, Error, FixedEndpointer, endpoint_fn,
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
    assert_eq!(call_all(&*reader).await.unwrap(), Vec::<u32>::new());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_while_readers_read_gives_whole_snapshots() {
    let set = EndpointSet::new();
    let writer = {
        let set = set.clone();
        tokio::spawn(async move {
            for n in 1..=500u32 {
                // Every snapshot holds n copies of n: a torn one would mix values or lengths.
                set.publish((0..n).map(|_| constant(n)).collect::<Vec<_>>());
                tokio::task::yield_now().await;
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let set = set.clone();
        readers.push(tokio::spawn(async move {
            for _ in 0..500 {
                let got = call_all(&set).await.unwrap();
                let n = got.len() as u32;
                assert!(got.iter().all(|&v| v == n), "torn snapshot: {got:?}");
                tokio::task::yield_now().await;
            }
        }));
    }
    writer.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
}
