//! The [`Instancer`] contract, and the [`Publisher`] every backend publishes through.

use std::sync::Arc;

use kit_core::Error;
use tokio::sync::watch;

/// The instances of one service: addresses (`host:port`), de-duplicated and sorted, so that two
/// answers with the same members compare equal whatever order the backend gave them in.
pub type Instances = Arc<[String]>;

/// What an instancer knows now: the current set, or why it has none (the backend failed, or
/// has not answered yet). go-kit's `sd.Event`.
pub type Event = Result<Instances, Error>;

/// The live set of instances of one service, from a registry (go-kit's `sd.Instancer`).
///
/// Both a current read and a stream of changes, through one `tokio::sync::watch` receiver:
/// `borrow()` is the current event, `changed().await` waits for the next. A receiver sees every
/// latest state, never a stale one, but may skip intermediate states that were replaced before
/// it looked: what a consumer of a set wants. Errors are events, not a closed channel; a
/// backend's loop keeps trying (with backoff) and publishes the set again when it can.
///
/// Dropping the instancer stops its backend's loop; receivers then see the channel close.
pub trait Instancer: Send + Sync {
    /// A receiver of this instancer's events, starting at the current one.
    fn subscribe(&self) -> watch::Receiver<Event>;

    /// The current event.
    fn current(&self) -> Event {
        self.subscribe().borrow().clone()
    }
}

/// The sending side of an instancer: normalises each set (trim, drop empties, de-duplicate,
/// sort) and publishes only changes, so that a backend that re-reads the same answer, or gets
/// it in another order, does not churn the endpoints downstream.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<Event>,
}

impl Publisher {
    /// A publisher whose first event is "no instances resolved yet" (unavailable).
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Err(Error::unavailable("no instances resolved yet")));
        Publisher { tx }
    }

    /// Publishes `instances` as the current set, if it differs from the current event.
    pub fn publish(&self, instances: impl IntoIterator<Item = String>) {
        let mut set: Vec<String> = instances
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        set.sort();
        set.dedup();
        self.tx.send_if_modified(|current| match current {
            Ok(old) if **old == *set => false,
            _ => {
                *current = Ok(set.into());
                true
            }
        });
    }

    /// Publishes `err` as the current event, if the current event is not the same error.
    pub fn fail(&self, err: Error) {
        self.tx.send_if_modified(|current| match current {
            Err(old) if old.kind() == err.kind() && old.message() == err.message() => false,
            _ => {
                *current = Err(err);
                true
            }
        });
    }

    /// A receiver of the events, starting at the current one.
    pub fn subscribe(&self) -> watch::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Whether anyone still listens (a backend may stop its loop when nobody does).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher::new()
    }
}

/// A fixed list of instances (go-kit's `sd.FixedInstancer`): for tests, for services whose
/// peers never move, and for the default of a flag.
///
/// ```
/// use kit_sd::{Fixed, Instancer};
///
/// let peers = Fixed::new(["10.0.0.2:8081", "10.0.0.1:8081", "10.0.0.1:8081"]);
/// assert_eq!(&*peers.current().unwrap(), ["10.0.0.1:8081", "10.0.0.2:8081"]);
/// ```
#[derive(Debug)]
pub struct Fixed {
    publisher: Publisher,
}

impl Fixed {
    /// These instances, normalised as every set is.
    pub fn new<S: Into<String>>(instances: impl IntoIterator<Item = S>) -> Self {
        let publisher = Publisher::new();
        publisher.publish(instances.into_iter().map(Into::into));
        Fixed { publisher }
    }
}

impl Instancer for Fixed {
    fn subscribe(&self) -> watch::Receiver<Event> {
        self.publisher.subscribe()
    }
}

impl<I: Instancer + ?Sized> Instancer for Arc<I> {
    fn subscribe(&self) -> watch::Receiver<Event> {
        (**self).subscribe()
    }
}

/// An instance address from a registry entry: UTF-8 `host:port` (a name, an IPv4 address or a
/// bracketed IPv6 one) with a port from 1 to 65535; the reason otherwise, for the log line of a
/// skipped entry. Every backend that reads entries written by others checks them this way.
#[cfg_attr(
    not(any(feature = "etcd", feature = "zookeeper", feature = "consul")),
    allow(dead_code)
)]
pub(crate) fn instance_address(entry: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(entry).map_err(|_| "the entry is not UTF-8")?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the entry is empty");
    }
    let (host, port) = text.rsplit_once(':').ok_or("the entry is not host:port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match port.parse::<u16>() {
        Ok(port) if port > 0 && !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(text.to_owned())
        }
        _ => Err("the entry is not host:port"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_port_entries_are_instances() {
        assert_eq!(
            instance_address(b"10.0.0.1:8081"),
            Ok("10.0.0.1:8081".to_owned())
        );
        assert_eq!(
            instance_address(b" addsvc-1:80 "),
            Ok("addsvc-1:80".to_owned())
        );
        assert_eq!(instance_address(b"[::1]:8081"), Ok("[::1]:8081".to_owned()));
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"   ",
            b"not an address",
            b"host:",
            b":8081",
            b"host:0",
            b"host:65536",
            b"host:http",
            b"two words:80",
        ] {
            assert!(instance_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sets_are_normalised_and_only_changes_are_published() {
        let p = Publisher::new();
        let mut rx = p.subscribe();
        assert!(rx.borrow_and_update().is_err());
        p.publish([
            "b:1".to_owned(),
            " a:1 ".to_owned(),
            String::new(),
            "b:1".to_owned(),
        ]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(&**rx.borrow_and_update().as_ref().unwrap(), ["a:1", "b:1"]);
        // The same members in another order: no event.
        p.publish(["b:1".to_owned(), "a:1".to_owned()]);
        assert!(!rx.has_changed().unwrap());
        p.fail(Error::unavailable("etcd down"));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        p.fail(Error::unavailable("etcd down"));
        assert!(!rx.has_changed().unwrap());
    }
}
