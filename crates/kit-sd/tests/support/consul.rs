//! A test-side Consul: an HTTP/1.1 server on 127.0.0.1 following Consul's documented HTTP API
//! for what kit-sd uses, since no Consul server can be installed here.
//!
//! - `GET /v1/health/service/:service` with `passing`, `tag` (repeatable), `dc`, and blocking
//!   queries: with `index` above 0 the request is held until the index moves past it or `wait`
//!   (default 5 min, at most 10 min) plus up to `wait / 16` of jitter has passed; every answer
//!   carries `X-Consul-Index`. The answer is an array of `{Node, Service, Checks}` entries.
//! - `PUT /v1/agent/service/register` with a `Check` carrying `TTL`, `CheckID`, `Status`
//!   (default critical, as Consul starts TTL checks) and `DeregisterCriticalServiceAfter`;
//!   `PUT /v1/agent/check/pass/:check_id` (404 "Unknown check ID" for a check it does not
//!   know, as current agents answer); `PUT /v1/agent/service/deregister/:service_id`.
//! - A TTL check not passed within its TTL turns critical, which takes its service out of
//!   `passing` answers; one critical for `DeregisterCriticalServiceAfter` is deregistered (no
//!   1 min minimum here).
//! - One index for the whole catalog, bumped by every change; answers carry it.
//!
//! Test controls: stop and start again on the same port (connections refused meanwhile, open
//! ones cut), forget every registration (an agent restarted without its state), move the index
//! backwards (a snapshot restored: blocked queries return at once with the lower index), answer
//! index 0, answer 500, answer an oversized body, answer a pass for an unknown check the way
//! older agents did (500 "does not have associated TTL"), and a log of the queries received.
//!
//! It runs on its own thread and runtime, so that a test's own thread CPU is the client's.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How the server answers health queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    /// `X-Consul-Index: 0` on every answer (the Consul bug the docs warn about).
    ZeroIndex,
    /// 500 on every health query.
    Fail500,
    /// A 200 whose body is this many bytes of JSON.
    Oversized(usize),
}

/// A health query as received.
#[derive(Clone, Debug)]
pub(crate) struct Query {
    pub(crate) at: Instant,
    pub(crate) service: String,
    pub(crate) index: u64,
    pub(crate) wait: Option<Duration>,
    pub(crate) passing: bool,
    pub(crate) tags: Vec<String>,
    pub(crate) dc: Option<String>,
    pub(crate) token: Option<String>,
}

/// A service instance in the catalog.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) port: i64,
    pub(crate) tags: Vec<String>,
    /// The address of the node it runs on (the agent's node).
    pub(crate) node_address: String,
    pub(crate) check: Option<Check>,
}

impl Entry {
    /// An instance on node 127.0.0.1, without a check (always passing).
    pub(crate) fn new(id: &str, name: &str, address: &str, port: i64) -> Entry {
        Entry {
            id: id.to_owned(),
            name: name.to_owned(),
            address: address.to_owned(),
            port,
            tags: Vec::new(),
            node_address: "127.0.0.1".to_owned(),
            check: None,
        }
    }
}

/// A TTL check.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    pub(crate) id: String,
    pub(crate) ttl: Duration,
    pub(crate) status: String,
    deadline: Instant,
    critical_since: Option<Instant>,
    deregister_after: Option<Duration>,
}

impl Check {
    /// A check in `status` that never expires (for entries put by the test).
    pub(crate) fn fixed(id: &str, status: &str) -> Check {
        Check {
            id: id.to_owned(),
            ttl: Duration::from_secs(3600),
            status: status.to_owned(),
            deadline: Instant::now() + Duration::from_secs(3600),
            critical_since: None,
            deregister_after: None,
        }
    }
}

struct State {
    index: u64,
    /// Bumped when blocked queries must return whatever the index (a restore, a mode change).
    epoch: u64,
    entries: BTreeMap<String, Entry>,
    mode: Mode,
    old_pass_errors: bool,
    queries: Vec<Query>,
    registrations: BTreeMap<String, usize>,
    passes: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change of `state` that blocked queries must look at.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes blocked queries to look again.
    fn wake(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// A change of the catalog: the index moves and blocked queries look again.
    fn change(&self, f: impl FnOnce(&mut State)) {
        {
            let mut state = self.lock();
            f(&mut state);
            state.index += 1;
        }
        self.wake();
    }
}

pub(crate) struct Consul {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    accept: Mutex<Option<JoinHandle<()>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<ThreadHandle<()>>,
}

impl Consul {
    /// A running server on a free loopback port, its index at 100.
    pub(crate) fn start() -> Consul {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("test-consul".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                handle_tx.send(runtime.handle().clone()).unwrap();
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .unwrap();
        let runtime = handle_rx.recv().unwrap();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index: 100,
                epoch: 0,
                entries: BTreeMap::new(),
                mode: Mode::Normal,
                old_pass_errors: false,
                queries: Vec::new(),
                registrations: BTreeMap::new(),
                passes: 0,
            }),
            changed,
        });
        runtime.spawn(expire(Arc::clone(&shared)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let consul = Consul {
            addr: listener.local_addr().unwrap(),
            shared,
            runtime,
            accept: Mutex::new(None),
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        consul.serve(listener);
        consul
    }

    /// The agent address to give kit-sd.
    pub(crate) fn agent(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let task = self
            .runtime
            .spawn(accept(listener, Arc::clone(&self.shared)));
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Stops listening and cuts every open connection (blocked queries included): the agent
    /// is down, connections are refused.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
            while !task.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Listens again on the same port, with the same state.
    pub(crate) fn start_again(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(err) if start.elapsed() < Duration::from_secs(5) => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("rebinding {}: {err}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Forgets every registration, as an agent restarted without its data does.
    pub(crate) fn forget(&self) {
        self.shared.change(|s| s.entries.clear());
    }

    /// Moves the index back to `index` (a snapshot restored): blocked queries return at once.
    pub(crate) fn set_index(&self, index: u64) {
        {
            let mut state = self.shared.lock();
            state.index = index;
            state.epoch += 1;
        }
        self.shared.wake();
    }

    /// Answers health queries this way from now on; blocked ones return at once, and the index
    /// moves, so that a query already on its way does not block at the old one.
    pub(crate) fn set_mode(&self, mode: Mode) {
        {
            let mut state = self.shared.lock();
            state.mode = mode;
            state.index += 1;
            state.epoch += 1;
        }
        self.shared.wake();
    }

    /// Answers a pass for an unknown check as agents before 1.11 did: 500 "CheckID ... does not
    /// have associated TTL".
    pub(crate) fn old_pass_errors(&self, old: bool) {
        self.shared.lock().old_pass_errors = old;
    }

    /// Puts `entry` in the catalog (replacing one with its ID).
    pub(crate) fn put(&self, entry: Entry) {
        self.shared.change(|s| {
            s.entries.insert(entry.id.clone(), entry);
        });
    }

    /// Removes the entry with ID `id`.
    pub(crate) fn remove(&self, id: &str) {
        self.shared.change(|s| {
            s.entries.remove(id);
        });
    }

    pub(crate) fn index(&self) -> u64 {
        self.shared.lock().index
    }

    /// The health queries received so far.
    pub(crate) fn queries(&self) -> Vec<Query> {
        self.shared.lock().queries.clone()
    }

    pub(crate) fn query_count(&self) -> usize {
        self.shared.lock().queries.len()
    }

    /// How many times service `id` was registered.
    pub(crate) fn registrations(&self, id: &str) -> usize {
        self.shared
            .lock()
            .registrations
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// How many TTL passes were received (known checks or not).
    pub(crate) fn passes(&self) -> usize {
        self.shared.lock().passes
    }

    /// The status of the check of service `id`, if registered with one.
    pub(crate) fn check_status(&self, id: &str) -> Option<String> {
        let state = self.shared.lock();
        state
            .entries
            .get(id)?
            .check
            .as_ref()
            .map(|c| c.status.clone())
    }

    /// The IDs of the services registered.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.shared.lock().entries.keys().cloned().collect()
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Turns checks not passed within their TTL critical, and deregisters services critical for
/// longer than their `DeregisterCriticalServiceAfter`.
async fn expire(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        let mut changed = false;
        {
            let mut state = shared.lock();
            let mut reaped = Vec::new();
            for entry in state.entries.values_mut() {
                let Some(check) = &mut entry.check else {
                    continue;
                };
                if check.status != "critical" && now >= check.deadline {
                    check.status = "critical".to_owned();
                    check.critical_since = Some(now);
                    changed = true;
                }
                if let (Some(since), Some(after)) = (check.critical_since, check.deregister_after)
                    && now.duration_since(since) >= after
                {
                    reaped.push(entry.id.clone());
                }
            }
            for id in reaped {
                state.entries.remove(&id);
                changed = true;
            }
            if changed {
                state.index += 1;
            }
        }
        if changed {
            shared.wake();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    // Owned here: aborting this task drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let params = parse_query(req.uri().query().unwrap_or(""));
    let token = req
        .headers()
        .get("X-Consul-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = if let Some(service) = path.strip_prefix("/v1/health/service/") {
        if method != Method::GET {
            answer(StatusCode::METHOD_NOT_ALLOWED, "")
        } else {
            health(&shared, &decode(service), &params, token).await
        }
    } else if method != Method::PUT {
        answer(StatusCode::METHOD_NOT_ALLOWED, "")
    } else if path == "/v1/agent/service/register" {
        register(&shared, &body)
    } else if let Some(check) = path.strip_prefix("/v1/agent/check/pass/") {
        pass(&shared, &decode(check))
    } else if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        let id = decode(id);
        shared.change(|s| {
            s.entries.remove(&id);
        });
        answer(StatusCode::OK, "")
    } else {
        answer(StatusCode::NOT_FOUND, "")
    };
    Ok(response)
}

async fn health(
    shared: &Shared,
    service: &str,
    params: &[(String, String)],
    token: Option<String>,
) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Ok(index) = param("index").unwrap_or("0").parse::<u64>() else {
        return answer(StatusCode::BAD_REQUEST, "Invalid index");
    };
    let wait = match param("wait").map(go_duration) {
        Some(Some(wait)) => Some(wait),
        Some(None) => return answer(StatusCode::BAD_REQUEST, "Invalid wait time"),
        None => None,
    };
    let passing = param("passing").is_some_and(|v| v != "false" && v != "0");
    let tags: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.clone())
        .collect();
    let mut changed = shared.changed.subscribe();
    let epoch = {
        let mut state = shared.lock();
        state.queries.push(Query {
            at: Instant::now(),
            service: service.to_owned(),
            index,
            wait,
            passing,
            tags: tags.clone(),
            dc: param("dc").map(str::to_owned),
            token,
        });
        if state.mode == Mode::Fail500 {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rpc error: test-side failure",
            );
        }
        state.epoch
    };
    if index > 0 {
        // Consul's default wait is 5 min, its limit 10 min, plus up to wait / 16 of jitter.
        let wait = wait
            .unwrap_or(Duration::from_secs(300))
            .min(Duration::from_secs(600));
        let jitter = wait.as_nanos() / 16;
        let nanos = u128::from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
        let deadline = Instant::now()
            + wait
            + Duration::from_nanos(u64::try_from(nanos % (jitter + 1)).unwrap_or(0));
        loop {
            {
                let state = shared.lock();
                if state.index > index || state.epoch != epoch {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep(left) => break,
            }
        }
    }
    let state = shared.lock();
    let header_index = if state.mode == Mode::ZeroIndex {
        0
    } else {
        state.index
    };
    let body: Bytes = match state.mode {
        Mode::Fail500 => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rpc error: test-side failure",
            );
        }
        Mode::Oversized(size) => {
            let mut body = String::with_capacity(size + 4);
            body.push('[');
            while body.len() < size {
                body.push_str("{},");
            }
            body.push_str("{}]");
            body.into()
        }
        _ => {
            let entries: Vec<Value> = state
                .entries
                .values()
                .filter(|e| e.name == service)
                .filter(|e| tags.iter().all(|t| e.tags.contains(t)))
                .filter(|e| !passing || e.check.as_ref().is_none_or(|c| c.status == "passing"))
                .map(health_entry)
                .collect();
            serde_json::to_vec(&entries).unwrap().into()
        }
    };
    let mut response = answer(StatusCode::OK, body);
    response
        .headers_mut()
        .insert("X-Consul-Index", header_index.into());
    response
        .headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    response
}

/// An entry as `/v1/health/service/:service` shows it.
fn health_entry(e: &Entry) -> Value {
    let mut checks = vec![json!({
        "Node": "test-node",
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
    })];
    if let Some(check) = &e.check {
        checks.push(json!({
            "Node": "test-node",
            "CheckID": check.id,
            "Name": format!("Service '{}' check", e.name),
            "Status": check.status,
            "Notes": "",
            "Output": "",
            "ServiceID": e.id,
            "ServiceName": e.name,
            "ServiceTags": e.tags,
        }));
    }
    json!({
        "Node": {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": "test-node",
            "Address": e.node_address,
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": e.node_address, "wan": e.node_address},
            "Meta": {},
        },
        "Service": {
            "ID": e.id,
            "Service": e.name,
            // Consul writes null for a service registered without tags.
            "Tags": if e.tags.is_empty() { Value::Null } else { json!(e.tags) },
            "Address": e.address,
            "Port": e.port,
            "Meta": {},
        },
        "Checks": checks,
    })
}

fn register(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return answer(StatusCode::BAD_REQUEST, "Request decode failed");
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let name = text(&v, "Name");
    if name.is_empty() {
        return answer(StatusCode::BAD_REQUEST, "Missing service name");
    }
    let id = match text(&v, "ID") {
        id if id.is_empty() => name.clone(),
        id => id,
    };
    let check = match v.get("Check") {
        Some(c) if c.is_object() => {
            let Some(ttl) = go_duration(&text(c, "TTL")) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval",
                );
            };
            let status = match text(c, "Status") {
                s if s.is_empty() => "critical".to_owned(),
                s => s,
            };
            let check_id = match text(c, "CheckID") {
                s if s.is_empty() => format!("service:{id}"),
                s => s,
            };
            let deregister_after = go_duration(&text(c, "DeregisterCriticalServiceAfter"));
            Some(Check {
                id: check_id,
                ttl,
                critical_since: (status == "critical").then(Instant::now),
                status,
                deadline: Instant::now() + ttl,
                deregister_after,
            })
        }
        _ => None,
    };
    let entry = Entry {
        id: id.clone(),
        name,
        address: text(&v, "Address"),
        port: v.get("Port").and_then(Value::as_i64).unwrap_or(0),
        tags: v
            .get("Tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        node_address: "127.0.0.1".to_owned(),
        check,
    };
    shared.change(|s| {
        *s.registrations.entry(id.clone()).or_default() += 1;
        s.entries.insert(id, entry);
    });
    answer(StatusCode::OK, "")
}

fn pass(shared: &Shared, check_id: &str) -> Response<Full<Bytes>> {
    let mut became_passing = false;
    let response = {
        let mut state = shared.lock();
        state.passes += 1;
        let old = state.old_pass_errors;
        let check = state
            .entries
            .values_mut()
            .filter_map(|e| e.check.as_mut())
            .find(|c| c.id == check_id);
        match check {
            Some(check) => {
                check.deadline = Instant::now() + check.ttl;
                if check.status != "passing" {
                    check.status = "passing".to_owned();
                    check.critical_since = None;
                    became_passing = true;
                }
                answer(StatusCode::OK, "")
            }
            None if old => answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("CheckID {check_id:?} does not have associated TTL"),
            ),
            None => answer(
                StatusCode::NOT_FOUND,
                format!(
                    "Unknown check ID {check_id:?}. Ensure that the check ID is passed, not the check name."
                ),
            ),
        }
    };
    if became_passing {
        shared.change(|_| {});
    }
    response
}

/// Query parameters, percent-decoded; a bare `passing` has the value "".
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Go duration (`300s`, `1m30s`, `1500ms`); `None` when it is not one.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit_len..];
    }
    Some(total)
}
