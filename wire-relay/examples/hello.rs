//! The ceiling: a bare hyper HTTP/1.1 server from this workspace's dependency set that
//! reads the request body and answers a small JSON body, with no routing, auth, storage
//! or fsync. Relay throughput is reported as a ratio to this server's, at the same
//! concurrency, on the same machine, in the same session (docs/BENCHMARKS.md).
//!
//! `cargo run --release -p wire-relay --example hello -- 127.0.0.1:9100`
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!("hello listening on {}", listener.local_addr().unwrap());
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"seq\":1,\"duplicate\":false}"))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
