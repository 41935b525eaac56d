//! Shared by the gRPC tests: the generated code of the test proto, a kit server behind the
//! Echo service, and finding the Python peer.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use kit_core::{Context, Error, ErrorKind, endpoint_fn};
use kit_transport_grpc::{Client, Health, Listener, RequestInfo, Server, ServerOptions};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod pb {
    include!("../generated/kittest.rs");
}

/// The endpoint's view of a call: the text, the tenant from metadata, whether a deadline came.
#[derive(Clone)]
pub struct Tenant(pub String);

pub type SayServer = Server<
    kit_core::BoxEndpoint<(String, i32), String>,
    pb::SayRequest,
    pb::SayReply,
    (String, i32),
    String,
>;

pub struct Echo {
    pub say: SayServer,
}

#[tonic::async_trait]
impl pb::echo_server::Echo for Echo {
    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayReply>, Status> {
        self.say.serve(request).await
    }
}

pub fn kind_for(code: &str) -> Error {
    match code {
        "invalid" => Error::invalid_argument("bad text"),
        "notfound" => Error::not_found("no such text"),
        "business" => Error::business("texts must be polite"),
        "overloaded" => Error::overloaded("too many texts"),
        "unavailable" => Error::unavailable("backend down"),
        "internal" => Error::internal("broken"),
        _ => Error::new(ErrorKind::Unknown, "unknown error"),
    }
}

pub fn echo_server() -> Echo {
    let say = endpoint_fn(|cx: Context, (text, times): (String, i32)| async move {
        if let Some(code) = text.strip_prefix("fail:") {
            return Err(kind_for(code));
        }
        if let Some(ms) = text.strip_prefix("sleep:") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                err = cx.done() => return Err(err),
            }
        }
        let deadline = cx
            .remaining()
            .map_or("none".to_owned(), |_| "set".to_owned());
        let tenant = cx.get::<Tenant>().map_or(String::new(), |t| t.0.clone());
        Ok(format!(
            "{}|{tenant}|{deadline}",
            text.repeat(times.max(0) as usize)
        ))
    });
    let say = Server::new(
        kit_core::BoxEndpoint::new(say),
        |_cx, r: pb::SayRequest| {
            if r.times > 100 {
                return Err(Error::invalid_argument("times must be at most 100"));
            }
            Ok((r.text, r.times))
        },
        |_cx, out: String| {
            let mut parts = out.splitn(3, '|');
            let text = parts.next().unwrap_or_default().to_owned();
            let tenant = parts.next().unwrap_or_default().to_owned();
            let deadline = parts.next().unwrap_or_default();
            Ok(pb::SayReply {
                text: format!("{text}#{deadline}"),
                tenant,
            })
        },
    )
    .options(
        ServerOptions::new()
            .before(|cx, call| {
                match call
                    .metadata()
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(t) => cx.with_value(Tenant(t.to_owned())),
                    None => cx,
                }
            })
            .after(|cx, headers, trailers| {
                headers.insert("x-served-by", MetadataValue::from_static("kit"));
                trailers.insert("x-reply-bytes", MetadataValue::from(4));
                // The method called, as the wire layer recorded it.
                if let Some(method) = cx.get::<RequestInfo>().and_then(RequestInfo::method) {
                    headers.insert("x-method", method.parse().expect("ASCII"));
                }
            }),
    );
    Echo { say }
}

/// A kit [`Listener`] on a free loopback port serving Echo and the health service.
pub async fn serve() -> SocketAddr {
    serve_with(|l| l, Health::new(), std::future::pending())
        .await
        .0
}

/// Like [`serve`], with the listener adjusted by `configure`, `health` served, and a shutdown
/// future; the handle answers the serve's result.
pub async fn serve_with(
    configure: impl FnOnce(Listener) -> Listener,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = configure(
        Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
            .health(&health),
    );
    let addr = listener.local_addr();
    let routes = kit_transport_grpc::Routes::new(pb::echo_server::EchoServer::new(echo_server()));
    (addr, tokio::spawn(listener.serve(routes, shutdown)))
}

/// A kit [`Listener`] on a free loopback port, with a health service, serving Echo with `say`.
pub async fn serve_say(say: SayServer) -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .health(&Health::new());
    let addr = listener.local_addr();
    let routes = kit_transport_grpc::Routes::new(pb::echo_server::EchoServer::new(Echo { say }));
    tokio::spawn(listener.serve(routes, std::future::pending()));
    addr
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub fn say_client(
    channel: Channel,
) -> Client<pb::SayRequest, pb::SayReply, (String, i32), pb::SayReply> {
    Client::new(
        channel,
        "/kittest.Echo/Say",
        |_cx, (text, times): (String, i32)| Ok(pb::SayRequest { text, times }),
        |_cx, reply: pb::SayReply| Ok(reply),
    )
    .unwrap()
}

/// A Python with grpcio and grpcio-tools: `KIT_PYTHON`, or the venv `.ci/test` makes in
/// `target/pyvenv`, or `python3` if it has them. Missing: under `CI=true` the test fails;
/// elsewhere it prints a visible skip line.
pub fn python() -> Option<std::path::PathBuf> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("KIT_PYTHON").map(Into::into),
        Some(workspace.join("target/pyvenv/bin/python")),
        Some("python3".into()),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|python: &std::path::PathBuf| {
            std::process::Command::new(python)
                .args(["-c", "import grpc, grpc_tools"])
                .output()
                .is_ok_and(|out| out.status.success())
        });
    if found.is_none() {
        let why =
            "no Python with grpcio and grpcio-tools (.ci/test installs them in target/pyvenv)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    found
}

/// The Python peer script.
pub fn peer_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py")
}

/// The TCP keep-alive timer of the server's end of the connection from `client` to `server`
/// (both IPv4), as the kernel reports it in /proc/net/tcp: the time left until the next probe,
/// or `None` when no keep-alive timer runs.
pub fn keep_alive_timer(server: SocketAddr, client: SocketAddr) -> Option<Duration> {
    let hex_addr = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let (local, remote) = (hex_addr(server), hex_addr(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
    let row = table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|row| row.get(1) == Some(&local.as_str()) && row.get(2) == Some(&remote.as_str()))
        .unwrap_or_else(|| panic!("no socket {server} <- {client} in /proc/net/tcp"));
    let (timer, when) = row[5].split_once(':').unwrap();
    // Timer 2 is keep-alive; `when` is in clock ticks, 100 a second.
    (timer == "02").then(|| Duration::from_millis(u64::from_str_radix(when, 16).unwrap() * 10))
}
