//! The two servers of the gRPC load benchmark (`benches/load.sh`), doing the same work for
//! `kittest.Echo/Say`: the text repeated `times` times.
//!
//! `load_server kit ADDR` serves it through kit-transport-grpc (a kit endpoint behind a
//! [`Server`], on a kit [`Listener`] with its defaults and the health service);
//! `load_server raw ADDR` through tonic alone (the generated service implemented directly, on
//! `tonic::transport::Server` with its defaults), the baseline. `load_server check ADDR` calls
//! a running server once with tonic's client and fails unless the reply is right.

use std::net::SocketAddr;

use kit_core::{BoxEndpoint, Context, endpoint_fn};
use kit_transport_grpc::{Health, Listener, Server};
use tonic::{Request, Response, Status};

#[allow(clippy::all, unreachable_pub, missing_docs)]
mod pb {
    include!("../tests/generated/kittest.rs");
}

struct Raw;

#[tonic::async_trait]
impl pb::echo_server::Echo for Raw {
    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pb::SayReply {
            text: request.text.repeat(request.times.max(0) as usize),
            tenant: String::new(),
        }))
    }
}

type Say =
    Server<BoxEndpoint<(String, i32), String>, pb::SayRequest, pb::SayReply, (String, i32), String>;

struct Kit {
    say: Say,
}

#[tonic::async_trait]
impl pb::echo_server::Echo for Kit {
    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayReply>, Status> {
        self.say.serve(request).await
    }
}

fn kit() -> Kit {
    let endpoint = endpoint_fn(|_cx: Context, (text, times): (String, i32)| async move {
        Ok(text.repeat(times.max(0) as usize))
    });
    let say = Server::new(
        BoxEndpoint::new(endpoint),
        |_cx, r: pb::SayRequest| Ok((r.text, r.times)),
        |_cx, text: String| {
            Ok(pb::SayReply {
                text,
                tenant: String::new(),
            })
        },
    );
    Kit { say }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(addr)) = (args.next(), args.next()) else {
        return Err("usage: load_server kit|raw|check ADDR".into());
    };
    let addr: SocketAddr = addr.parse()?;
    match mode.as_str() {
        "raw" => {
            tonic::transport::Server::builder()
                .add_service(pb::echo_server::EchoServer::new(Raw))
                .serve(addr)
                .await?;
        }
        "kit" => {
            let routes = kit_transport_grpc::Routes::new(pb::echo_server::EchoServer::new(kit()));
            Listener::bind(addr)
                .await?
                .health(&Health::new())
                .serve(routes, std::future::pending())
                .await?;
        }
        "check" => {
            let mut client = pb::echo_client::EchoClient::connect(format!("http://{addr}")).await?;
            let reply = client
                .say(pb::SayRequest {
                    text: "hello".into(),
                    times: 2,
                })
                .await?
                .into_inner();
            if reply.text != "hellohello" {
                return Err(format!("unexpected reply {reply:?}").into());
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}
