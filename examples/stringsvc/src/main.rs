//! stringsvc: the smallest kit-rs service, after go-kit's stringsvc1. Two endpoints over
//! HTTP/JSON: `POST /uppercase {"s":"hello"}` answers `{"v":"HELLO"}` (an empty string is a
//! 400 error), `POST /count {"s":"hello"}` answers `{"v":5}` (the length in bytes, as go-kit's
//! `len`).
//!
//! `cargo run -p stringsvc` listens on :8080 (`stringsvc -listen 127.0.0.1:9000` elsewhere) and
//! drains on SIGINT or SIGTERM. Built with `--features etcd`, `-etcd-addr HOST:PORT` registers it
//! in etcd under `-etcd-prefix` (default `/services/stringsvc/`) as `-advertise-host` (default
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
    let flags = Flags::parse(std::env::args().skip(1))?;
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

    let listener = Listener::bind(flags.listen.parse()?).await?;
    eprintln!("listening on {}", listener.local_addr());
    let mut group = Group::new();
    group.stop_on_signals()?;
    if let Some(etcd) = &flags.etcd {
        register(&mut group, etcd, &flags, listener.local_addr().port()).await?;
    }
    group.spawn("HTTP", listener.serve(router, group.stopping().wait()));
    Ok(group.run().await?)
}

/// The command line: `[-listen HOST:PORT] [-etcd-addr HOST:PORT[,...]] [-etcd-prefix P]
/// [-advertise-host H]`.
struct Flags {
    listen: String,
    etcd: Option<Vec<String>>,
    etcd_prefix: String,
    advertise_host: String,
}

impl Flags {
    fn parse(args: impl Iterator<Item = String>) -> Result<Flags, String> {
        let usage = "usage: stringsvc [-listen HOST:PORT] [-etcd-addr HOST:PORT[,...]] \
                     [-etcd-prefix PREFIX] [-advertise-host HOST]";
        let mut flags = Flags {
            listen: "0.0.0.0:8080".to_owned(),
            etcd: None,
            etcd_prefix: "/services/stringsvc/".to_owned(),
            advertise_host: "127.0.0.1".to_owned(),
        };
        let args: Vec<String> = args.collect();
        for pair in args.chunks(2) {
            let [flag, value] = pair else {
                return Err(usage.to_owned());
            };
            match flag.trim_start_matches('-') {
                "listen" => flags.listen = value.clone(),
                "etcd-addr" => {
                    flags.etcd = Some(value.split(',').map(|a| a.trim().to_owned()).collect())
                }
                "etcd-prefix" => flags.etcd_prefix = value.clone(),
                "advertise-host" => flags.advertise_host = value.clone(),
                _ => return Err(usage.to_owned()),
            }
        }
        Ok(flags)
    }
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
