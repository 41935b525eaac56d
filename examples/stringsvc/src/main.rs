//! stringsvc: the smallest kit-rs service, after go-kit's stringsvc1. Two endpoints over
//! HTTP/JSON: `POST /uppercase {"s":"hello"}` answers `{"v":"HELLO"}` (an empty string is a
//! 400 error), `POST /count {"s":"hello"}` answers `{"v":5}` (the length in bytes, as go-kit's
//! `len`).
//!
//! `cargo run -p stringsvc` listens on :8080 (`stringsvc --listen 127.0.0.1:9000` elsewhere) and
//! drains on SIGINT or SIGTERM. Built with `--features etcd`, `--etcd-addr HOST:PORT` registers it
//! in etcd under `--etcd-prefix` (default `/services/stringsvc/`) as `--advertise-host` (default
//! `127.0.0.1`) with the listener's port, with a 5 s lease kept alive, deregistered when the
//! drain starts.

use kit_core::{Error, endpoint_fn};
use kit_server::Group;
use kit_transport_http::{Listener, Router, Server, json};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct StringRequest {
    // Absent is empty, as Go's decoder leaves it.
    #[serde(default)]
    s: String,
}

#[derive(Serialize)]
struct Reply<T> {
    v: T,
}

fn uppercase(s: &str) -> Result<String, Error> {
    if s.is_empty() {
        return Err(Error::invalid_argument("empty string"));
    }
    Ok(s.to_uppercase())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = <Flags as clap::Parser>::parse();
    let uppercase =
        endpoint_fn(|_cx, r: StringRequest| async move { uppercase(&r.s).map(|v| Reply { v }) });
    let count = endpoint_fn(|_cx, r: StringRequest| async move {
        Ok::<_, Error>(Reply {
            // Bytes, as go-kit's `len(s)`.
            v: r.s.len(),
        })
    });
    let router = Router::new()
        .post(
            "/uppercase",
            Server::new(uppercase, json::decode_request, json::encode_response),
        )
        .post(
            "/count",
            Server::new(count, json::decode_request, json::encode_response),
        );

    let listener = Listener::bind(flags.listen).await?;
    eprintln!("listening on {}", listener.local_addr());
    let mut group = Group::new();
    group.stop_on_signals()?;
    if let Some(etcd) = &flags.etcd_addr {
        register(&mut group, etcd, &flags, listener.local_addr().port()).await?;
    }
    group.serve_http("HTTP", listener, router);
    Ok(group.run().await?)
}

/// stringsvc's command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "stringsvc",
    version,
    about = "The smallest kit-rs service: uppercase and count over HTTP/JSON"
)]
struct Flags {
    /// Listen address
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// etcd endpoints to register in, comma-separated (with the `etcd` feature)
    #[arg(long, value_delimiter = ',')]
    etcd_addr: Option<Vec<String>>,
    /// The service's etcd key prefix
    #[arg(long, default_value = "/services/stringsvc/")]
    etcd_prefix: String,
    /// The host registered with the listener's port
    #[arg(long, default_value = "127.0.0.1")]
    advertise_host: String,
}

#[cfg(feature = "etcd")]
async fn register(
    group: &mut Group,
    etcd: &[String],
    flags: &Flags,
    port: u16,
) -> Result<(), Box<dyn std::error::Error>> {
    use kit_sd::Registrar;
    use kit_sd::etcd::{EtcdOptions, EtcdRegistrar};
    let instance = format!("{}:{port}", flags.advertise_host);
    let registrar = EtcdRegistrar::new(
        etcd.to_vec(),
        format!("{}http/{instance}", flags.etcd_prefix),
        instance,
        std::time::Duration::from_secs(5),
        EtcdOptions::new(),
    );
    registrar.register().await?;
    eprintln!("registered in etcd under {}", flags.etcd_prefix);
    let draining = group.draining();
    // Out of the registry as soon as the drain starts.
    group.spawn("etcd", async move {
        draining.wait().await;
        if let Err(err) = registrar.deregister().await {
            eprintln!("deregistering: {err}");
        }
        Ok::<_, Error>(())
    });
    Ok(())
}

#[cfg(not(feature = "etcd"))]
async fn register(
    _: &mut Group,
    _: &[String],
    _: &Flags,
    _: u16,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("-etcd-addr: this stringsvc was built without etcd (cargo build --features etcd)".into())
}
