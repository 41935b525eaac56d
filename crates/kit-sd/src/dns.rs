//! DNS SRV records: the [`SrvInstancer`] watches one SRV name (`_addsvc._tcp.example.com`) on
//! the name servers it is given, and re-resolves it when the answer's TTL runs out (go-kit's
//! `sd/dnssrv`, with the targets resolved to addresses).
//!
//! Limits and their defaults, set in [`SrvOptions::new`]:
//!
//! | limit | default | what |
//! |---|---|---|
//! | [`ttl_floor`](SrvOptions::ttl_floor) | 1 s | the least time between two resolutions, whatever the TTL; also the wait after an empty answer |
//! | [`ttl_cap`](SrvOptions::ttl_cap) | 60 s | the most time between two resolutions, whatever the TTL |
//! | [`timeout`](SrvOptions::timeout) | 5 s | how long one try of one query waits; each query is tried 3 times |
//! | backoff while failing | 100 ms doubling to 3 s, full jitter | the wait before the next resolution after a failed one |
//! | address lookups at a time | 8 | targets whose addresses the answer did not carry, asked for concurrently |

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use kit_core::Error;
use kit_log::Logger;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backoff::Failures;
use crate::task::Task;
use crate::{Event, Instancer, Publisher};

/// Targets whose addresses are asked for at the same time, at most: enough for a large service,
/// few enough to stay under hickory's 32 requests in flight per connection.
const ADDRESS_LOOKUPS: usize = 8;

/// How many times hickory retries a query that got no answer (timeout, I/O error, refused),
/// so 3 tries in all; set here rather than left to hickory's default, so the docs stay true.
const RETRIES: usize = 2;

/// How an [`SrvInstancer`] behaves; defaults set in [`SrvOptions::new`] and nowhere else.
#[derive(Clone)]
pub struct SrvOptions {
    ttl_floor: Duration,
    ttl_cap: Duration,
    timeout: Duration,
    logger: Logger,
}

impl SrvOptions {
    /// Re-resolve no sooner than 1 s and no later than 60 s after an answer, whatever its TTL;
    /// wait 5 s for each try of a query; log nothing.
    ///
    /// 1 s: many registries answer with TTL 0 (Consul, dnsmasq by default), which would
    /// otherwise have the name asked for in a loop. 60 s: zone files often say an hour, and a
    /// change of instances should not wait that long to be seen. 5 s: the resolv.conf default.
    pub fn new() -> Self {
        SrvOptions {
            ttl_floor: Duration::from_secs(1),
            ttl_cap: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            logger: Logger::new(slog::Discard),
        }
    }

    /// The least time between two resolutions, whatever the TTL (at least 1 ms); also the
    /// wait after an empty answer (NXDOMAIN or no records). When above the cap, the floor wins.
    pub fn ttl_floor(mut self, floor: Duration) -> Self {
        self.ttl_floor = floor.max(Duration::from_millis(1));
        self
    }

    /// The most time between two resolutions, whatever the TTL: how late a change is seen at
    /// worst when the name servers give long TTLs.
    pub fn ttl_cap(mut self, cap: Duration) -> Self {
        self.ttl_cap = cap;
        self
    }

    /// How long one try of one query (the SRV name, or a target's addresses) waits for an
    /// answer (at least 1 ms). A query is tried 3 times, so a name server that does not answer
    /// is reported (an unavailable error event) after about three times this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Logs skipped targets (port 0, no address) and failed resolutions to `logger`.
    pub fn logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// The wait before the next resolution of an answer valid until `valid_until`.
    fn next_after(&self, valid_until: Instant) -> Duration {
        valid_until
            .saturating_duration_since(Instant::now())
            .min(self.ttl_cap)
            .max(self.ttl_floor)
    }
}

impl Default for SrvOptions {
    fn default() -> Self {
        SrvOptions::new()
    }
}

impl fmt::Debug for SrvOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrvOptions")
            .field("ttl_floor", &self.ttl_floor)
            .field("ttl_cap", &self.ttl_cap)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The instances of one service from its DNS SRV records (go-kit's `dnssrv.Instancer`).
///
/// Each resolution asks the name servers for the SRV records of the name, then turns each
/// record into instances `IP:port`, one per address of its target: the addresses the answer
/// carries in its additional section when it has any for that target (many servers send them;
/// dnsmasq does for its `host-record`s), else those of an A and AAAA lookup of the target on
/// the same name servers.
/// Priority and weight are not used: every instance goes to the balancer.
///
/// - The set is re-resolved when the answer's TTL (the least of the SRV records' and the
///   addresses') runs out, clamped between the options' floor and cap. Nothing is cached in
///   between: each resolution asks the name servers again.
/// - NXDOMAIN or no SRV records: the service has no instances, and the set is empty; asked
///   again after the floor.
/// - A target on port 0, or with no address, is left out and logged; so is a target `.`
///   (RFC 2782's "not available here"), without a log. The rest of the set is published.
/// - Any other failure (timeout, refused, I/O error), also on a target's addresses, fails the
///   whole resolution rather than publish part of the set: an unavailable error event, then
///   another try after an exponential backoff with jitter (100 ms doubling to 3 s); the
///   [`Endpointer`](crate::Endpointer) keeps the last good set meanwhile.
///
/// Made inside a tokio runtime: it spawns the task that resolves, which ends when the instancer
/// is dropped.
///
/// ```no_run
/// use kit_sd::dns::{SrvInstancer, SrvOptions};
/// use kit_sd::Instancer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), kit_core::Error> {
/// let instances = SrvInstancer::new(
///     "_addsvc._tcp.example.com",
///     vec!["10.0.0.53:53".parse().unwrap()],
///     SrvOptions::new(),
/// )?;
/// let mut events = instances.subscribe();
/// events.changed().await.unwrap();
/// println!("{:?}", *events.borrow());
/// # Ok(()) }
/// ```
pub struct SrvInstancer {
    name: Name,
    publisher: Arc<Publisher>,
    _task: Task,
}

impl SrvInstancer {
    /// Watches the SRV records of `name`, asking `nameservers` (over UDP, and TCP for answers
    /// too large for UDP, each server on its own port; another server is tried when one
    /// fails).
    ///
    /// `name` is taken as fully qualified, with or without its final dot: there is no search
    /// list. The first resolution starts at once; until it answers, the current event is an
    /// unavailable error.
    ///
    /// # Errors
    ///
    /// An invalid-argument error if `name` is not a valid domain name, or `nameservers` is
    /// empty.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(
        name: &str,
        nameservers: Vec<SocketAddr>,
        options: SrvOptions,
    ) -> Result<Self, Error> {
        let mut name = Name::from_str_relaxed(name.trim())
            .map_err(|err| Error::invalid_argument(format!("bad SRV name {name:?}: {err}")))?;
        if name.num_labels() == 0 {
            return Err(Error::invalid_argument("bad SRV name: empty"));
        }
        // No search list: a relative name would be tried as is anyway; say so once, here.
        name.set_fqdn(true);
        if nameservers.is_empty() {
            return Err(Error::invalid_argument(format!(
                "no name servers given for SRV name {name}"
            )));
        }
        let resolver = resolver(&nameservers, &options)?;
        let publisher = Arc::new(Publisher::new());
        let watch = Watch {
            resolver,
            name: name.clone(),
            options,
            publisher: Arc::clone(&publisher),
        };
        Ok(SrvInstancer {
            name,
            publisher,
            _task: Task::spawn(watch.run()),
        })
    }
}

/// A resolver that asks only `nameservers`, caches nothing and reads no hosts file.
fn resolver(nameservers: &[SocketAddr], options: &SrvOptions) -> Result<TokioResolver, Error> {
    let servers = nameservers
        .iter()
        .map(|addr| {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            server
        })
        .collect();
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    );
    let opts: &mut ResolverOpts = builder.options_mut();
    // A cache of size 0 stores nothing (moka disables the map): every re-resolve, timed by
    // the TTL, must reach the name servers, or a change would be seen a TTL late.
    opts.cache_size = 0;
    // Only the given name servers answer; /etc/hosts must not shadow a target.
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = options.timeout;
    opts.attempts = RETRIES;
    builder
        .build()
        .map_err(|err| Error::internal(format!("cannot build the DNS resolver: {err}")))
}

impl Instancer for SrvInstancer {
    fn subscribe(&self) -> watch::Receiver<Event> {
        self.publisher.subscribe()
    }
}

impl fmt::Debug for SrvInstancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrvInstancer")
            .field("name", &format_args!("{}", self.name))
            .field("current", &*self.publisher.subscribe().borrow())
            .finish_non_exhaustive()
    }
}

/// The resolving task's state.
struct Watch {
    resolver: TokioResolver,
    name: Name,
    options: SrvOptions,
    publisher: Arc<Publisher>,
}

/// One resolution's result: the full set, and until when it holds.
struct Resolved {
    instances: Vec<String>,
    valid_until: Instant,
}

impl Watch {
    async fn run(self) {
        let mut failures = Failures::new();
        loop {
            match self.resolve().await {
                Ok(resolved) => {
                    failures.reset();
                    self.publisher.publish(resolved.instances);
                    let wait = self.options.next_after(resolved.valid_until);
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        "DNS SRV resolution failed",
                        "name",
                        format_args!("{}", self.name),
                        "err",
                        format_args!("{err}")
                    );
                    self.publisher.fail(err);
                    failures.wait().await;
                }
            }
        }
    }

    async fn resolve(&self) -> Result<Resolved, Error> {
        let lookup = match self.resolver.srv_lookup(self.name.clone()).await {
            Ok(lookup) => lookup,
            // The service has no instances: an answer, not a failure. Valid until now, so the
            // next try comes after the floor.
            Err(err) if is_no_records(&err) => {
                return Ok(Resolved {
                    instances: Vec::new(),
                    valid_until: Instant::now(),
                });
            }
            Err(err) => {
                return Err(Error::unavailable(format!(
                    "DNS SRV lookup of {} failed: {err}",
                    self.name
                ))
                .with_source(err));
            }
        };
        let mut valid_until = lookup.valid_until();

        // Each target once, with all its ports: a host may serve the service on several.
        let mut targets: BTreeMap<Name, Vec<u16>> = BTreeMap::new();
        for record in lookup.answers() {
            // Skips the CNAMEs a chain to the SRV records may bring.
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            let target = &srv.target;
            if target.is_root() {
                continue;
            }
            if srv.port == 0 {
                kit_log::warn!(
                    self.options.logger,
                    "msg",
                    format_args!("SRV target {target} has port 0"),
                    "name",
                    format_args!("{}", self.name)
                );
                continue;
            }
            targets.entry(target.clone()).or_default().push(srv.port);
        }

        // The addresses the server sent along: no second round trip for those targets.
        let now = Instant::now();
        let mut addresses: HashMap<Name, Vec<IpAddr>> = HashMap::new();
        for record in lookup.additionals() {
            if let Some(ip) = record.data.ip_addr()
                && targets.contains_key(&record.name)
            {
                addresses.entry(record.name.clone()).or_default().push(ip);
                valid_until = valid_until.min(now + Duration::from_secs(record.ttl.into()));
            }
        }

        let missing = targets
            .keys()
            .filter(|target| !addresses.contains_key(*target))
            .cloned()
            .collect();
        for (target, found) in self.lookup_addresses(missing).await? {
            match found {
                Some((ips, until)) => {
                    valid_until = valid_until.min(until);
                    addresses.insert(target, ips);
                }
                None => {
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        format_args!("SRV target {target} has no address"),
                        "name",
                        format_args!("{}", self.name)
                    );
                }
            }
        }

        let mut instances = Vec::new();
        for (target, ports) in &targets {
            for ip in addresses.get(target).into_iter().flatten() {
                for port in ports {
                    instances.push(SocketAddr::new(*ip, *port).to_string());
                }
            }
        }
        Ok(Resolved {
            instances,
            valid_until,
        })
    }

    /// The addresses of `targets` (A and AAAA), a few lookups at a time; `None` for a target
    /// that has none. Fails on the first lookup that fails otherwise: a partial set would drop
    /// instances that are still there.
    async fn lookup_addresses(&self, mut targets: Vec<Name>) -> Result<Vec<Looked>, Error> {
        let mut found = Vec::with_capacity(targets.len());
        // Dropped on an early return, which aborts the lookups still running.
        let mut lookups = JoinSet::new();
        loop {
            while lookups.len() < ADDRESS_LOOKUPS
                && let Some(target) = targets.pop()
            {
                let resolver = self.resolver.clone();
                lookups.spawn(async move {
                    let result = resolver.lookup_ip(target.clone()).await;
                    (target, result)
                });
            }
            let Some(joined) = lookups.join_next().await else {
                return Ok(found);
            };
            let (target, result) = joined.map_err(|err| {
                Error::internal(format!(
                    "an address lookup for SRV name {} did not finish: {err}",
                    self.name
                ))
            })?;
            match result {
                Ok(ips) => {
                    let until = ips.valid_until();
                    let ips: Vec<IpAddr> = ips.iter().collect();
                    let found_any = (!ips.is_empty()).then_some((ips, until));
                    found.push((target, found_any));
                }
                Err(err) if is_no_records(&err) => found.push((target, None)),
                Err(err) => {
                    return Err(Error::unavailable(format!(
                        "address lookup of SRV target {target} failed: {err}"
                    ))
                    .with_source(err));
                }
            }
        }
    }
}

/// A target, and its addresses with until when they hold, if it has any.
type Looked = (Name, Option<(Vec<IpAddr>, Instant)>);

/// Whether the name servers answered that there is nothing there (NXDOMAIN, or the name exists
/// without records of that type): an answer, unlike a failure to get one.
fn is_no_records(err: &NetError) -> bool {
    matches!(
        err,
        NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        }))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_ttl_clamped_between_floor_and_cap() {
        let options = SrvOptions::new()
            .ttl_floor(Duration::from_secs(2))
            .ttl_cap(Duration::from_secs(30));
        let now = Instant::now();
        assert_eq!(options.next_after(now), Duration::from_secs(2));
        let wait = options.next_after(now + Duration::from_secs(10));
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
        assert_eq!(
            options.next_after(now + Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        // A floor above the cap wins: never a loop faster than the floor.
        let inverted = SrvOptions::new()
            .ttl_floor(Duration::from_secs(5))
            .ttl_cap(Duration::from_secs(1));
        assert_eq!(inverted.next_after(now), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn bad_names_and_no_name_servers_are_invalid_arguments() {
        let ns = vec![SocketAddr::from(([127, 0, 0, 1], 53))];
        for bad in ["", ".", "a..b", &"x".repeat(64)] {
            let err = SrvInstancer::new(bad, ns.clone(), SrvOptions::new()).unwrap_err();
            assert_eq!(err.kind(), kit_core::ErrorKind::InvalidArgument, "{bad:?}");
        }
        let err = SrvInstancer::new("_a._tcp.kit.test", Vec::new(), SrvOptions::new()).unwrap_err();
        assert_eq!(err.kind(), kit_core::ErrorKind::InvalidArgument);
    }
}
