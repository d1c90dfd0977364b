//! The `--metrics-listen` endpoint: `GET /metrics` and nothing else.
//!
//! It faces the network, so everything is bounded: at most
//! [`MAX_CONNECTIONS`] connections at once (the permit is taken before
//! `accept`, further clients wait in the backlog), request heads of at most
//! hyper's smallest buffer (8 KiB), a header read timeout, and a lifetime
//! per connection. Bodies are never read. Any other path is 404, any other
//! method on `/metrics` 405.

use crate::live::sink::Exposition;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Connections served at once: Prometheus keeps one, people a few.
pub const MAX_CONNECTIONS: usize = 16;
/// The smallest read buffer hyper accepts; a longer request head is refused.
const MAX_HEAD: usize = 8192;
/// A client that sends no complete head within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A kept-alive connection is closed after this (Prometheus reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint, serving until dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    exposition: Arc<Exposition>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Bind `addr` (port 0: any free port) and start serving an empty
    /// exposition until a [`LiveSink`](crate::live::sink::LiveSink) fills it.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let exposition = Arc::new(Exposition::default());
        let task = tokio::spawn(accept_loop(listener, exposition.clone()));
        Ok(MetricsServer {
            addr,
            exposition,
            task,
        })
    }

    /// The address bound (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the endpoint serves; give it to the run's `LiveSink`.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.exposition.clone()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, exposition: Arc<Exposition>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of fds, most likely: the run needs them more; retry later.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let e = exposition.clone();
                async move { Ok::<_, Infallible>(route(&e, &req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

fn route(exposition: &Exposition, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (req.uri().path(), req.method()) {
        ("/metrics", &Method::GET | &Method::HEAD) => {
            let mut r = Response::new(Full::new(exposition.get()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            return r;
        }
        ("/metrics", _) => (StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n"),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: loadgen serves GET /metrics\n",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    r
}
