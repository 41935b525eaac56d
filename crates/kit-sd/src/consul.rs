//! Consul: instances are the entries of a service in the agent's health endpoint (go-kit's
//! `sd/consul`), followed with blocking queries; this instance registers with the local agent
//! under a TTL check that it keeps passing.
//!
//! The instancer asks `GET /v1/health/service/<service>` (with `passing`, each `tag`, and `dc`
//! as configured), then asks again with `index` set to the answer's `X-Consul-Index` and a
//! `wait`: the agent holds that query until the service changes or the wait is over, so a
//! change is seen at once and an idle service costs one query per `wait`. Each entry's
//! instance is `Service.Address:Service.Port`, or `Node.Address:Service.Port` when the service
//! has no address of its own (an IPv6 address in brackets). An entry without an address, with
//! a port of 0 or out of range, or whose address is not a host is skipped and logged (once
//! while it stays); the rest of the set still works. Tags are also checked on the answer, and
//! with `passing` so are the checks' states, so the set is right even from an agent that
//! ignores a parameter.
//!
//! Consul's rules for blocking queries (its "Blocking Queries" page) are kept:
//! - an index lower than the previous one (a snapshot restored, an agent restarted) resets the
//!   index to 0: the next query reads afresh instead of waiting on an index that may not come
//!   back for a long time;
//! - an index of 0 (or none) is taken as 1, so that the next query blocks rather than
//!   answering at once for ever (a Consul bug that sent clients into busy loops);
//! - the loop is rate limited with a token bucket with a burst of two: a change after a quiet
//!   spell is read at once, while an index that keeps moving (or a server that never blocks)
//!   degrades into one query per `query_interval`;
//! - the HTTP read outlives the wait, to which the server adds up to `wait / 16` of jitter.
//!
//! While the agent cannot be reached, or answers an error status, an answer over the body
//! limit or one that is not the JSON expected, the instancer publishes an error (the
//! [`Endpointer`](crate::Endpointer) keeps the last good set for its grace time) and backs off
//! exponentially with jitter, capped at 3 s; the first query after a failure reads afresh
//! (index 0), so the set is published again as soon as the agent answers.
//!
//! The registrar registers the service with the agent (`PUT /v1/agent/service/register`) with a
//! TTL check `service:<id>`, initially passing, and passes it (`PUT
//! /v1/agent/check/pass/service:<id>`) every third of the TTL from its own task. When the agent
//! no longer knows the check (404 "Unknown check ID" from current agents, 500 "does not have
//! associated TTL" from older ones: the agent restarted without its state, or reaped the
//! service after it was critical) it registers again by itself. A process that dies stops
//! passing: its check turns critical after the TTL, which takes it out of `passing` answers,
//! and the agent deregisters it after `deregister_critical_after`.
//!
//! Limits and defaults, all set in [`ConsulOptions::new`]:
//! - `wait`: 5 min (Consul's default; at most 10 min, Consul's limit);
//! - `request_timeout`: 10 s for each agent call, and the slack a blocking query's read gets
//!   beyond `wait + wait / 16`;
//! - `connect_timeout`: 2 s;
//! - `query_interval`: 1 s between queries once two have gone back to back;
//! - `passing_only`: true;
//! - `tags`: none; `datacenter`: the agent's; `token`: none (the agent's default token);
//! - `max_body`: 4 MiB per answer (a larger one is an error, not unbounded memory);
//! - `deregister_critical_after`: 1 min (Consul's minimum);
//! - the logger discards.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use kit_sd::consul::{ConsulInstancer, ConsulOptions, ConsulRegistrar, ServiceRegistration};
//! use kit_sd::{Instancer, Registrar};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kit_core::Error> {
//! let agent = "http://127.0.0.1:8500";
//! // This instance, in Consul for as long as it runs (and passes its TTL check).
//! let me = ServiceRegistration::new("addsvc-10.0.0.1-8081", "addsvc", "10.0.0.1", 8081)
//!     .tags(["v1"]);
//! let registrar = ConsulRegistrar::new(agent, me, Duration::from_secs(15), ConsulOptions::new())?;
//! registrar.register().await?;
//! // Its peers: the passing addsvc instances tagged v1 (give this to an Endpointer).
//! let peers = ConsulInstancer::new(agent, "addsvc", ConsulOptions::new().tags(["v1"]))?;
//! let mut events = peers.subscribe();
//! let _ = events.changed().await;
//! println!("{:?}", *events.borrow());
//! // On a clean stop: out of Consul at once.
//! registrar.deregister().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kit_core::{BoxError, Error};
use kit_log::Logger;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::backoff::Failures;
use crate::task::Task;
use crate::{Event, Instancer, Publisher, Registrar};

/// Consul's limit on a blocking query's `wait` (and the longest pace between queries).
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Agent, query and registration settings for Consul; defaults set in [`ConsulOptions::new`]
/// and nowhere else.
#[derive(Clone)]
pub struct ConsulOptions {
    wait: Duration,
    request_timeout: Duration,
    connect_timeout: Duration,
    query_interval: Duration,
    passing_only: bool,
    tags: Vec<String>,
    datacenter: Option<String>,
    token: Option<String>,
    max_body: usize,
    deregister_critical_after: Option<Duration>,
    logger: Logger,
}

impl ConsulOptions {
    /// Blocking queries wait 5 min; each agent call has 10 s (a blocking query 10 s beyond its
    /// wait and jitter), a connection 2 s; after two back-to-back queries, one per second;
    /// passing instances only, any tag, the agent's datacenter and token; answers up to 4 MiB;
    /// a critical registration deregistered after 1 min; log nothing.
    ///
    /// 5 min is Consul's own default wait: an idle service costs one query per 5 min, and a
    /// change is seen at once anyway. 1 s between queries: when the index keeps moving (churn,
    /// or a broken server that never blocks) the loop polls once a second instead of spinning,
    /// while a change after a quiet spell is still read at once. 4 MiB holds the health
    /// entries of a few thousand instances. 1 min is the least Consul accepts for
    /// `DeregisterCriticalServiceAfter`.
    pub fn new() -> Self {
        ConsulOptions {
            wait: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            query_interval: Duration::from_secs(1),
            passing_only: true,
            tags: Vec::new(),
            datacenter: None,
            token: None,
            max_body: 4 << 20,
            deregister_critical_after: Some(Duration::from_secs(60)),
            logger: Logger::new(slog::Discard),
        }
    }

    /// How long the agent may hold a blocking query when nothing changes (the `wait`
    /// parameter), kept between 1 s and Consul's limit of 10 min. The server adds up to
    /// `wait / 16` of jitter.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait.clamp(Duration::from_secs(1), MAX_WAIT);
        self
    }

    /// How long one agent call (a read, a registration, a TTL pass) may take; a blocking
    /// query gets this much beyond `wait + wait / 16`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting to the agent may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The pace of the instancer's queries when they come back fast: two may go back to back,
    /// then one per `interval` (a token bucket, as Consul advises for blocking loops), at most
    /// 10 min. Zero lifts the limit (failures still back off).
    pub fn query_interval(mut self, interval: Duration) -> Self {
        self.query_interval = interval.min(MAX_WAIT);
        self
    }

    /// Whether only instances whose checks all pass are published (Consul's `passing`), as
    /// go-kit's `passingOnly`.
    pub fn passing_only(mut self, passing_only: bool) -> Self {
        self.passing_only = passing_only;
        self
    }

    /// Only instances carrying every one of `tags` are published.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Queries `datacenter` (Consul's `dc`) instead of the agent's own.
    pub fn datacenter(mut self, datacenter: impl Into<String>) -> Self {
        self.datacenter = Some(datacenter.into());
        self
    }

    /// Sends `token` as the ACL token (header `X-Consul-Token`) with every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The largest answer read from the agent, in bytes; a larger one is an error.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a registration's check may stay critical before the agent deregisters the
    /// service (`DeregisterCriticalServiceAfter`; Consul applies at least 1 min and reaps every
    /// 30 s); `None` leaves a dead instance registered, critical, for ever.
    pub fn deregister_critical_after(mut self, after: Option<Duration>) -> Self {
        self.deregister_critical_after = after;
        self
    }

    /// Logs agent failures, index anomalies, registrations and skipped entries to `logger`.
    pub fn logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }
}

impl Default for ConsulOptions {
    fn default() -> Self {
        ConsulOptions::new()
    }
}

impl fmt::Debug for ConsulOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulOptions")
            .field("wait", &self.wait)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_interval", &self.query_interval)
            .field("passing_only", &self.passing_only)
            .field("tags", &self.tags)
            .field("datacenter", &self.datacenter)
            // A secret: never in a log line.
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body", &self.max_body)
            .field("deregister_critical_after", &self.deregister_critical_after)
            .finish_non_exhaustive()
    }
}

/// The agent's HTTP API: one client, the base URI, the token and the limits.
#[derive(Clone)]
struct Agent {
    /// `http://host:port` (and a path prefix, if one was given), without a trailing `/`.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<HeaderValue>,
    request_timeout: Duration,
    max_body: usize,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An agent's answer: its status, its `X-Consul-Index`, and its body (within the limit).
struct Answer {
    status: StatusCode,
    index: Option<u64>,
    body: Bytes,
}

impl Agent {
    fn new(agent: &str, options: &ConsulOptions) -> Result<Agent, Error> {
        let base = base_uri(agent)?;
        let token = match &options.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(token).map_err(|_| {
                    Error::invalid_argument("consul: the ACL token is not a valid header value")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        Ok(Agent {
            base,
            client: Client::builder(TokioExecutor::new()).build(connector),
            token,
            request_timeout: options.request_timeout,
            max_body: options.max_body,
        })
    }

    /// One call: `method` on `path` (with its query), the whole exchange (body included)
    /// within `timeout`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        let doing = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|_| Error::invalid_argument(format!("consul: {doing}: not a valid URI")))?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|err| Error::internal(format!("consul: {doing}: {err}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| unavailable(&doing, err))?;
            let status = response.status();
            let index = response
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|err| {
                    if err.is::<LengthLimitError>() {
                        Error::unavailable(format!(
                            "consul: {doing}: the answer is over the limit of {} bytes",
                            self.max_body
                        ))
                    } else {
                        unavailable(&doing, err)
                    }
                })?
                .to_bytes();
            Ok(Answer {
                status,
                index,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::unavailable(format!(
                "consul: {doing}: no answer within {timeout:?}"
            ))),
        }
    }
}

/// A failed exchange, with the chain of causes in the message (hyper's own message alone, such
/// as "client error (Connect)", does not say what happened).
fn unavailable(doing: &str, err: impl Into<BoxError>) -> Error {
    let err: BoxError = err.into();
    let mut message = format!("consul: {doing}: {err}");
    let mut cause = err.source();
    while let Some(next) = cause {
        let _ = write!(message, ": {next}");
        cause = next.source();
    }
    Error::unavailable(message).with_source(err)
}

/// An answer with an error status, with the start of its body (Consul says why there).
fn status_error(doing: &str, answer: &Answer) -> Error {
    let start = &answer.body[..answer.body.len().min(200)];
    let message = format!(
        "consul: {doing}: answered {}: {}",
        answer.status,
        String::from_utf8_lossy(start).trim()
    );
    match answer.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::permission_denied(message),
        _ => Error::unavailable(message),
    }
}

/// The agent's base URI from `http://host:port` (or `host:port`); https is refused, as no TLS
/// client is built in (the agent is local, plain HTTP on 8500, as Consul ships it).
fn base_uri(agent: &str) -> Result<String, Error> {
    let agent = agent.trim();
    let full = if agent.contains("://") {
        agent.to_owned()
    } else {
        format!("http://{agent}")
    };
    let invalid = |why: &str| Error::invalid_argument(format!("consul: agent {agent:?}: {why}"));
    let uri: Uri = full.parse().map_err(|_| invalid("not a URI"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(
                "https is not supported; give the agent's http address",
            ));
        }
        _ => return Err(invalid("not an http URI")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if uri.query().is_some() {
        return Err(invalid("a query is not expected"));
    }
    Ok(format!(
        "http://{authority}{}",
        uri.path().trim_end_matches('/')
    ))
}

/// `text` as one path segment or query value: unreserved characters (and `:`, for check IDs)
/// as they are, every other byte percent-encoded, so that a name with `/`, `&` or a space stays
/// one value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A duration as Consul parses it (Go's `time.ParseDuration`): whole seconds as `15s`,
/// otherwise milliseconds (`1500ms`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The index of the next query after an answer carrying `returned` to a query made at
/// `previous`, by Consul's rules for blocking queries; and why it is not simply `returned`,
/// for the log.
fn next_index(previous: u64, returned: Option<u64>) -> (u64, Option<&'static str>) {
    match returned {
        // Blocking at 0 answers at once: waiting at 1 is always safe.
        None | Some(0) => (1, Some("consul answered index 0; waiting at index 1")),
        // Waiting at an index the server may not reach again would miss changes.
        Some(r) if r < previous => (0, Some("consul index went backwards; reading afresh")),
        Some(r) => (r, None),
    }
}

/// The pace of a blocking-query loop: a token bucket with a burst of two (Consul's advice), so
/// that the happy case never waits while a loop whose queries come back at once degrades into
/// one query per `interval` instead of spinning.
struct Pace {
    interval: Duration,
    /// When the bucket will next be full (the "theoretical arrival time" of a cell rate).
    next: Instant,
}

impl Pace {
    const BURST: u32 = 2;

    fn new(interval: Duration) -> Self {
        Pace {
            interval,
            next: Instant::now(),
        }
    }

    /// Waits until a query may go.
    async fn ready(&mut self) {
        let slack = self.interval * (Pace::BURST - 1);
        if let Some(earliest) = self.next.checked_sub(slack)
            && earliest > Instant::now()
        {
            tokio::time::sleep_until(earliest).await;
        }
        self.next = self.next.max(Instant::now()) + self.interval;
    }
}

/// One entry of `/v1/health/service/:service`, as far as it is read. Every field may be missing
/// or `null` (Consul writes `"Tags": null`); what an instance needs is checked afterwards.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HealthEntry {
    node: Option<NodeEntry>,
    service: Option<ServiceEntry>,
    checks: Option<Vec<CheckEntry>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NodeEntry {
    node: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ServiceEntry {
    #[serde(rename = "ID")]
    id: Option<String>,
    address: Option<String>,
    port: Option<i64>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CheckEntry {
    status: Option<String>,
}

impl HealthEntry {
    /// A name for the log and the skip set: node and service ID.
    fn name(&self) -> String {
        let node = self.node.as_ref().and_then(|n| n.node.as_deref());
        let id = self.service.as_ref().and_then(|s| s.id.as_deref());
        format!("{}/{}", node.unwrap_or("?"), id.unwrap_or("?"))
    }

    /// Whether the entry carries every tag asked for.
    fn has_tags(&self, tags: &[String]) -> bool {
        let have = self.service.as_ref().and_then(|s| s.tags.as_deref());
        let have = have.unwrap_or_default();
        tags.iter().all(|tag| have.contains(tag))
    }

    /// Whether every check of the entry passes.
    fn passing(&self) -> bool {
        self.checks
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|c| c.status.as_deref() == Some("passing"))
    }

    /// The instance: the service's address (the node's when the service has none) and port.
    fn instance(&self) -> Result<String, &'static str> {
        let service = self.service.as_ref().ok_or("the entry has no Service")?;
        let address = non_empty(service.address.as_deref())
            .or_else(|| non_empty(self.node.as_ref().and_then(|n| n.address.as_deref())))
            .ok_or("the entry has no address")?;
        let port = service
            .port
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("the entry's port is not 1-65535")?;
        let host = if address.parse::<Ipv6Addr>().is_ok() {
            format!("[{address}]")
        } else if address.contains(':') {
            return Err("the entry's address is not a host");
        } else {
            address.to_owned()
        };
        crate::instancer::instance_address(format!("{host}:{port}").as_bytes())
    }
}

/// `text` trimmed, unless that leaves nothing.
fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// The entries of a health answer: a JSON array (`null` is taken as empty). An element that is
/// not an entry is kept as `Err`, to be skipped alone.
fn parse_entries(body: &[u8]) -> Result<Vec<Result<HealthEntry, String>>, Error> {
    let values: Option<Vec<serde_json::Value>> = serde_json::from_slice(body).map_err(|err| {
        Error::unavailable(format!("consul: the answer is not a JSON array: {err}"))
    })?;
    Ok(values
        .unwrap_or_default()
        .into_iter()
        .map(|value| serde_json::from_value(value).map_err(|err| err.to_string()))
        .collect())
}

/// The instances of one service: the entries of the agent's health endpoint, followed with
/// blocking queries.
///
/// Made inside a tokio runtime: it spawns the loop that follows Consul, which ends when the
/// instancer is dropped.
#[derive(Debug)]
pub struct ConsulInstancer {
    publisher: Arc<Publisher>,
    _task: Task,
}

impl ConsulInstancer {
    /// Follows `service` through the agent at `agent` (`http://127.0.0.1:8500`, or
    /// `127.0.0.1:8500`). Fails at once, with an invalid-argument error, on an agent address
    /// that is not an http URI, an empty service name, or a token that cannot be a header.
    pub fn new(agent: &str, service: &str, options: ConsulOptions) -> Result<Self, Error> {
        if service.trim().is_empty() {
            return Err(Error::invalid_argument("consul: the service name is empty"));
        }
        let mut params = Vec::new();
        if options.passing_only {
            params.push("passing=1".to_owned());
        }
        // Sent for the agent to filter (`tag` may repeat; newer agents deprecate it for
        // `filter` but still serve it), and checked on the answer too.
        params.extend(options.tags.iter().map(|t| format!("tag={}", encode(t))));
        if let Some(dc) = &options.datacenter {
            params.push(format!("dc={}", encode(dc)));
        }
        let follower = Follower {
            agent: Agent::new(agent, &options)?,
            path: format!("/v1/health/service/{}", encode(service)),
            params,
            service: service.to_owned(),
            publisher: Arc::new(Publisher::new()),
            skipped: HashSet::new(),
            options,
        };
        let publisher = Arc::clone(&follower.publisher);
        Ok(ConsulInstancer {
            publisher,
            _task: Task::spawn(follower.run()),
        })
    }
}

impl Instancer for ConsulInstancer {
    fn subscribe(&self) -> watch::Receiver<Event> {
        self.publisher.subscribe()
    }
}

/// The instancer's loop and what it keeps between queries.
struct Follower {
    agent: Agent,
    /// `/v1/health/service/<service>`.
    path: String,
    /// The query parameters of every read: `passing`, `tag`s, `dc`.
    params: Vec<String>,
    service: String,
    options: ConsulOptions,
    publisher: Arc<Publisher>,
    /// The entries skipped at the last read, so that a bad entry is logged once while it stays,
    /// not at every change of its service.
    skipped: HashSet<String>,
}

impl Follower {
    async fn run(mut self) {
        let mut failures = Failures::new();
        let mut pace = Pace::new(self.options.query_interval);
        let mut index = 0;
        loop {
            pace.ready().await;
            match self.query(index).await {
                Ok((instances, returned)) => {
                    failures.reset();
                    self.publisher.publish(instances);
                    let (next, why) = next_index(index, returned);
                    if let Some(why) = why {
                        kit_log::warn!(
                            self.options.logger,
                            "msg",
                            why,
                            "service",
                            self.service.as_str(),
                            "index",
                            index,
                            "returned",
                            returned.unwrap_or(0)
                        );
                    }
                    index = next;
                }
                Err(err) => {
                    kit_log::warn!(
                        self.options.logger,
                        "msg",
                        "consul instancer",
                        "service",
                        self.service.as_str(),
                        "err",
                        format_args!("{err}")
                    );
                    self.publisher.fail(err);
                    // Read afresh when the agent answers again: a blocking query at the old
                    // index would hold the first good answer for a whole `wait` (and an agent
                    // that restarted may be behind that index).
                    index = 0;
                    failures.wait().await;
                }
            }
        }
    }

    /// One read (blocking at `index` when it is above 0): the instances, and the answer's index.
    async fn query(&mut self, index: u64) -> Result<(Vec<String>, Option<u64>), Error> {
        let mut params = self.params.clone();
        let timeout = if index > 0 {
            let wait = self.options.wait;
            params.push(format!("index={index}"));
            params.push(format!("wait={}", go_duration(wait)));
            // The server holds the query up to `wait` plus up to `wait / 16` of jitter.
            (wait + wait / 16).saturating_add(self.options.request_timeout)
        } else {
            self.options.request_timeout
        };
        let path = if params.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, params.join("&"))
        };
        let answer = self.agent.call(Method::GET, &path, None, timeout).await?;
        if !answer.status.is_success() {
            return Err(status_error(&format!("GET {}", self.path), &answer));
        }
        let entries = parse_entries(&answer.body)?;
        Ok((self.instances(entries), answer.index))
    }

    /// The instances of the entries that pass the filters; bad entries skipped and logged.
    fn instances(&mut self, entries: Vec<Result<HealthEntry, String>>) -> Vec<String> {
        let mut instances = Vec::with_capacity(entries.len());
        let mut skipped = HashSet::new();
        for (n, entry) in entries.into_iter().enumerate() {
            let (name, why) = match entry {
                Ok(entry) => {
                    if !entry.has_tags(&self.options.tags)
                        || (self.options.passing_only && !entry.passing())
                    {
                        continue;
                    }
                    match entry.instance() {
                        Ok(instance) => {
                            instances.push(instance);
                            continue;
                        }
                        Err(why) => (entry.name(), why.to_owned()),
                    }
                }
                Err(why) => (format!("entry #{n}"), why),
            };
            if !self.skipped.contains(&name) {
                kit_log::warn!(
                    self.options.logger,
                    "msg",
                    "consul entry skipped",
                    "service",
                    self.service.as_str(),
                    "entry",
                    name.as_str(),
                    "err",
                    why.as_str()
                );
            }
            skipped.insert(name);
        }
        self.skipped = skipped;
        instances
    }
}

/// This instance as registered with the agent: its ID (unique on the agent), the service's
/// name, its address and port, and its tags.
#[derive(Clone, Debug)]
pub struct ServiceRegistration {
    id: String,
    name: String,
    address: String,
    port: u16,
    tags: Vec<String>,
}

impl ServiceRegistration {
    /// The instance `id` of service `name`, at `address` (empty: the agent's node address) and
    /// `port`, without tags. An empty `id` is the name, as Consul does.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        address: impl Into<String>,
        port: u16,
    ) -> Self {
        ServiceRegistration {
            id: id.into(),
            name: name.into(),
            address: address.into(),
            port,
            tags: Vec::new(),
        }
    }

    /// Registers with `tags`.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

/// The body of `PUT /v1/agent/service/register`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterBody<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    address: &'a str,
    port: u16,
    tags: &'a [String],
    check: CheckBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CheckBody<'a> {
    #[serde(rename = "CheckID")]
    check_id: &'a str,
    name: String,
    #[serde(rename = "TTL")]
    ttl: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deregister_critical_service_after: Option<String>,
}

/// Registers this instance with the local Consul agent under a TTL check, passed every third
/// of the TTL from its own task; registers again by itself when the agent has lost the
/// registration (restarted without its state, or reaped it after it was critical).
///
/// Dropping the registrar stops the passes: the check turns critical after the TTL (the
/// instance leaves `passing` answers) and the agent deregisters the service after
/// `deregister_critical_after`. [`deregister`](Registrar::deregister) removes it at once.
#[derive(Debug)]
pub struct ConsulRegistrar {
    shared: Arc<Registration>,
    /// The loop keeping the registration; replaced by `register`, taken by `deregister`,
    /// dropped (stopped) with the registrar.
    task: Mutex<Option<Task>>,
}

/// What the registration loop needs: shared with it, never the registrar itself, so that
/// dropping the registrar stops the loop.
struct Registration {
    agent: Agent,
    id: String,
    check_id: String,
    /// The registration's JSON, made once.
    body: Bytes,
    ttl: Duration,
    logger: Logger,
}

impl ConsulRegistrar {
    /// Registers `service` with the agent at `agent` (`http://127.0.0.1:8500`, or
    /// `127.0.0.1:8500`) under a TTL check of `ttl` (at least 1 s). Fails at once, with an
    /// invalid-argument error, on an agent address that is not an http URI, an empty service
    /// name, a port of 0, or a token that cannot be a header.
    pub fn new(
        agent: &str,
        service: ServiceRegistration,
        ttl: Duration,
        options: ConsulOptions,
    ) -> Result<Self, Error> {
        if service.name.trim().is_empty() {
            return Err(Error::invalid_argument("consul: the service name is empty"));
        }
        if service.port == 0 {
            return Err(Error::invalid_argument("consul: the service port is 0"));
        }
        let ttl = ttl.max(Duration::from_secs(1));
        let id = if service.id.is_empty() {
            service.name.clone()
        } else {
            service.id.clone()
        };
        // The ID Consul gives a service's only check, set explicitly so the passes name it.
        let check_id = format!("service:{id}");
        let body = RegisterBody {
            id: &id,
            name: &service.name,
            address: &service.address,
            port: service.port,
            tags: &service.tags,
            check: CheckBody {
                check_id: &check_id,
                name: format!("Service '{}' TTL", service.name),
                ttl: go_duration(ttl),
                // Registered when ready: in passing answers at once, not after the first pass.
                status: "passing",
                deregister_critical_service_after: options
                    .deregister_critical_after
                    .map(go_duration),
            },
        };
        let body = serde_json::to_vec(&body)
            .map_err(|err| Error::internal(format!("consul: encoding the registration: {err}")))?;
        Ok(ConsulRegistrar {
            shared: Arc::new(Registration {
                agent: Agent::new(agent, &options)?,
                id,
                check_id,
                body: Bytes::from(body),
                ttl,
                logger: options.logger,
            }),
            task: Mutex::new(None),
        })
    }
}

impl Registrar for ConsulRegistrar {
    async fn register(&self) -> Result<(), Error> {
        let (first, registered) = oneshot::channel();
        let task = Task::spawn(Arc::clone(&self.shared).keep(first));
        // Replacing a running registration stops its loop (dropping its task).
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        match registered.await {
            Ok(result) => result,
            Err(_) => Err(Error::internal("consul registration stopped")),
        }
    }

    async fn deregister(&self) -> Result<(), Error> {
        // Stop the passes first, so that the loop does not register again.
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.shared.deregister().await
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("agent", &self.agent)
            .field("id", &self.id)
            .field("check_id", &self.check_id)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// How a TTL pass failed.
enum PassFailed {
    /// The agent does not know the check: register again.
    Lost(Error),
    /// Anything else (the agent unreachable, an error status): pass again at the next turn.
    Failed(Error),
}

impl Registration {
    /// Registers, then passes the check until the registration is lost; again, for ever.
    async fn keep(self: Arc<Self>, first: oneshot::Sender<Result<(), Error>>) {
        let mut first = Some(first);
        let mut failures = Failures::new();
        loop {
            match self.register().await {
                Ok(()) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    failures.reset();
                    let err = self.pass_until_lost().await;
                    kit_log::warn!(
                        self.logger,
                        "msg",
                        "consul registration lost, registering again",
                        "id",
                        self.id.as_str(),
                        "err",
                        format_args!("{err}")
                    );
                }
                Err(err) => {
                    if let Some(first) = first.take() {
                        // The first registration failed: the caller hears why, and nothing
                        // runs on.
                        let _ = first.send(Err(err));
                        return;
                    }
                    kit_log::warn!(
                        self.logger,
                        "msg",
                        "consul registration failed",
                        "id",
                        self.id.as_str(),
                        "err",
                        format_args!("{err}")
                    );
                }
            }
            failures.wait().await;
        }
    }

    async fn register(&self) -> Result<(), Error> {
        let answer = self
            .agent
            .call(
                Method::PUT,
                "/v1/agent/service/register",
                Some(self.body.clone()),
                self.agent.request_timeout,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(status_error("PUT /v1/agent/service/register", &answer));
        }
        kit_log::info!(
            self.logger,
            "msg",
            "consul registered",
            "id",
            self.id.as_str(),
            "ttl",
            format_args!("{:?}", self.ttl)
        );
        Ok(())
    }

    /// Passes the check every third of the TTL until the agent no longer knows it; why.
    async fn pass_until_lost(&self) -> Error {
        let every = self.ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.pass().await {
                Ok(()) => {}
                Err(PassFailed::Lost(err)) => return err,
                Err(PassFailed::Failed(err)) => {
                    // The check turns critical only after a whole TTL without a pass: two
                    // more turns to get through.
                    kit_log::warn!(
                        self.logger,
                        "msg",
                        "consul TTL pass failed",
                        "id",
                        self.id.as_str(),
                        "err",
                        format_args!("{err}")
                    );
                }
            }
        }
    }

    async fn pass(&self) -> Result<(), PassFailed> {
        let path = format!("/v1/agent/check/pass/{}", encode(&self.check_id));
        let answer = self
            .agent
            .call(Method::PUT, &path, None, self.agent.request_timeout)
            .await
            .map_err(PassFailed::Failed)?;
        if answer.status.is_success() {
            return Ok(());
        }
        let err = status_error("PUT /v1/agent/check/pass", &answer);
        // Current agents answer 404 "Unknown check ID"; older ones 500 "CheckID ... does not
        // have associated TTL".
        let unknown = answer.status == StatusCode::NOT_FOUND
            || (answer.status == StatusCode::INTERNAL_SERVER_ERROR
                && String::from_utf8_lossy(&answer.body).contains("does not have associated TTL"));
        Err(if unknown {
            PassFailed::Lost(err)
        } else {
            PassFailed::Failed(err)
        })
    }

    async fn deregister(&self) -> Result<(), Error> {
        let path = format!("/v1/agent/service/deregister/{}", encode(&self.id));
        let answer = self
            .agent
            .call(Method::PUT, &path, None, self.agent.request_timeout)
            .await?;
        // Gone already (404 from some agents) is deregistered too.
        if !answer.status.is_success() && answer.status != StatusCode::NOT_FOUND {
            return Err(status_error("PUT /v1/agent/service/deregister", &answer));
        }
        kit_log::info!(
            self.logger,
            "msg",
            "consul deregistered",
            "id",
            self.id.as_str()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_consuls_rules() {
        assert_eq!(next_index(0, Some(7)).0, 7);
        assert_eq!(next_index(7, Some(9)), (9, None));
        assert_eq!(next_index(9, Some(9)), (9, None));
        // Backwards: read afresh.
        assert_eq!(next_index(9, Some(3)).0, 0);
        // Zero or missing: never block at 0 (which answers at once).
        assert_eq!(next_index(9, Some(0)).0, 1);
        assert_eq!(next_index(0, None).0, 1);
    }

    #[test]
    fn durations_are_written_as_go_parses_them() {
        assert_eq!(go_duration(Duration::from_secs(300)), "300s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn agent_addresses_and_values_are_checked_and_encoded() {
        assert_eq!(base_uri("127.0.0.1:8500").unwrap(), "http://127.0.0.1:8500");
        assert_eq!(
            base_uri("http://consul.local:8500/").unwrap(),
            "http://consul.local:8500"
        );
        assert_eq!(
            base_uri("http://proxy/consul/").unwrap(),
            "http://proxy/consul"
        );
        assert!(base_uri("https://127.0.0.1:8501").is_err());
        assert!(base_uri("ftp://x").is_err());
        assert!(base_uri("").is_err());
        assert_eq!(encode("service:web-1"), "service:web-1");
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
    }

    fn entry(json: &str) -> HealthEntry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_entry_is_its_service_address_or_its_node_address() {
        let e =
            entry(r#"{"Node":{"Address":"10.0.0.9"},"Service":{"Address":"10.0.0.1","Port":80}}"#);
        assert_eq!(e.instance(), Ok("10.0.0.1:80".to_owned()));
        let e = entry(r#"{"Node":{"Address":"10.0.0.9"},"Service":{"Address":"","Port":80}}"#);
        assert_eq!(e.instance(), Ok("10.0.0.9:80".to_owned()));
        let e = entry(r#"{"Node":{"Address":"::1"},"Service":{"Port":80,"Tags":null}}"#);
        assert_eq!(e.instance(), Ok("[::1]:80".to_owned()));
        for bad in [
            r#"{"Node":{"Address":""},"Service":{"Address":"","Port":80}}"#,
            r#"{"Service":{"Address":"10.0.0.1","Port":0}}"#,
            r#"{"Service":{"Address":"10.0.0.1","Port":70000}}"#,
            r#"{"Service":{"Address":"10.0.0.1:9000","Port":80}}"#,
            r#"{"Service":{"Address":"not an address","Port":80}}"#,
            r#"{"Node":{"Address":"10.0.0.9"}}"#,
        ] {
            assert!(entry(bad).instance().is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_and_checks_are_checked_on_the_answer() {
        let e = entry(
            r#"{"Service":{"Tags":["a","b"]},"Checks":[{"Status":"passing"},{"Status":"critical"}]}"#,
        );
        assert!(e.has_tags(&["a".to_owned()]));
        assert!(!e.has_tags(&["a".to_owned(), "c".to_owned()]));
        assert!(!e.passing());
        assert!(entry(r#"{"Checks":null}"#).passing());
        let parsed =
            parse_entries(br#"[{"Service":{"Port":80}}, 7, {"Service":{"Port":"x"}}]"#).unwrap();
        assert_eq!(parsed.iter().filter(|e| e.is_err()).count(), 2);
        assert!(parse_entries(b"null").unwrap().is_empty());
        assert!(parse_entries(b"{}").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_lets_two_through_then_one_per_interval() {
        let mut pace = Pace::new(Duration::from_secs(1));
        let start = Instant::now();
        pace.ready().await;
        pace.ready().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pace.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        pace.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // After a quiet spell (a query blocked for a while), the next goes at once.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let quiet = Instant::now();
        pace.ready().await;
        assert_eq!(quiet.elapsed(), Duration::ZERO);
    }
}
