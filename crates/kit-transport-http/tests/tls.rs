//! HTTPS on a Listener (feature `tls`): HTTP/1.1 and HTTP/2 chosen by ALPN over a real rustls
//! handshake with a self-signed certificate; a client that does not speak TLS is dropped and
//! the listener keeps serving.
#![cfg(feature = "tls")]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kit_core::{Error, endpoint_fn};
use kit_transport_http::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use kit_transport_http::{Listener, Router, Server, json};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use support::{Running, parse_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config and a client config that trusts it, for `localhost`.
fn configs() -> (ServerConfig, Arc<ClientConfig>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, Arc::new(client))
}

fn router() -> Router {
    let double = endpoint_fn(|_cx, n: i64| async move { Ok::<_, Error>(n * 2) });
    Router::new().post(
        "/double",
        Server::new(double, json::decode_request, json::encode_response),
    )
}

async fn connect(
    running: &Running,
    client: &Arc<ClientConfig>,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = (**client).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
    stream
}

#[tokio::test]
async fn https_serves_http1_and_http2_by_alpn() {
    let (server_config, client_config) = configs();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .tls(server_config);
    let running = Running::start(listener, router()).await;

    // HTTP/1.1 over TLS.
    let mut h1 = connect(&running, &client_config, b"http/1.1").await;
    h1.write_all(b"POST /double HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n21")
        .await
        .unwrap();
    let mut answer = Vec::new();
    h1.read_to_end(&mut answer).await.ok();
    let answer = parse_response(&String::from_utf8_lossy(&answer));
    assert_eq!((answer.status, answer.body.as_str()), (200, "42"));

    // HTTP/2 over TLS.
    let h2 = connect(&running, &client_config, b"h2").await;
    let (mut send, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("https://localhost/double")
        .body(Full::new(Bytes::from_static(b"50")))
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"100");

    // Plain HTTP to the TLS port gets no HTTP answer; the listener keeps serving.
    let mut plain = TcpStream::connect(running.addr).await.unwrap();
    plain
        .write_all(b"POST /double HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1")
        .await
        .unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).await.ok();
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    drop(send);
    let mut again = connect(&running, &client_config, b"http/1.1").await;
    again
        .write_all(b"POST /double HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nConnection: close\r\n\r\n4")
        .await
        .unwrap();
    let mut answer = Vec::new();
    again.read_to_end(&mut answer).await.ok();
    assert_eq!(parse_response(&String::from_utf8_lossy(&answer)).body, "8");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn silence_after_the_tls_handshake_is_closed_after_the_handshake_timeout() {
    let (server_config, client_config) = configs();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .handshake_timeout(std::time::Duration::from_millis(300))
        .tls(server_config);
    let running = Running::start(listener, router()).await;
    // A finished handshake choosing h2, then nothing: hyper would wait for the preface for ever.
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut silent = connect(&running, &client_config, alpn).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            silent.read_to_end(&mut got),
        )
        .await;
        assert!(read.is_ok(), "{alpn:?}: closed by the server");
    }
    running.stop().await.unwrap();
}
