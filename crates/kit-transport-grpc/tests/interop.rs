//! Interop with a real non-Rust gRPC peer: Python's grpcio as a client of a kit server and as a
//! server for a kit client, with metadata both ways, deadlines and status codes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kit_core::{Context, Endpoint, ErrorKind};
use support::{channel, peer_script, python, say_client, serve};
use tonic::metadata::MetadataValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_calls_a_kit_server() {
    let Some(python) = python() else { return };
    let addr = serve().await;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(peer_script())
            .args(["client", &addr.to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "python client: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Kills the Python server when the test ends, however it ends.
struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kit_client_calls_a_python_server() {
    let Some(python) = python() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python)
        .arg(peer_script())
        .args(["server", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let peer = Peer(child);
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("the python server starts")
        .unwrap()
        .unwrap();
    assert_eq!(line.trim(), "ready");

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let served_by = std::sync::Arc::new(std::sync::Mutex::new(None));
    let client = {
        let served_by = std::sync::Arc::clone(&served_by);
        say_client(channel(addr).await)
            .before(|_cx, md| {
                md.insert("x-tenant", MetadataValue::from_static("rust"));
            })
            .after(move |_cx, md| {
                *served_by.lock().unwrap() = md
                    .get("x-served-by")
                    .map(|v| v.to_str().unwrap().to_owned());
            })
    };
    let cx = Context::new().with_timeout(Duration::from_secs(30));
    let reply = client.call(cx, ("hi".into(), 2)).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), reply.tenant.as_str()),
        ("hihi#set", "rust")
    );
    assert_eq!(served_by.lock().unwrap().as_deref(), Some("python"));

    for (code, kind, grpc) in [
        ("not_found", ErrorKind::NotFound, 5),
        ("invalid_argument", ErrorKind::InvalidArgument, 3),
        ("resource_exhausted", ErrorKind::Overloaded, 8),
        ("unavailable", ErrorKind::Unavailable, 14),
    ] {
        let err = client
            .call(Context::new(), (format!("fail:{code}"), 1))
            .await
            .unwrap_err();
        assert_eq!((err.kind(), err.grpc_code()), (kind, grpc), "{code}");
        // A refusal keeps the server's message; a failure's text is the detail only.
        let python = format!("python says {code}");
        match kind.is_failure() {
            true => assert!(err.detail().unwrap().ends_with(&python), "{code}"),
            false => assert_eq!(err.message(), python),
        }
    }

    let cx = Context::new().with_timeout(Duration::from_millis(300));
    let err = client
        .call(cx, ("sleep:60000".into(), 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    drop(peer);
}
