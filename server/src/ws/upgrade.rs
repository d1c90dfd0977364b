//! The `/ws/chat` upgrade: everything that can be refused is refused here,
//! with an HTTP status and a JSON body, before the connection becomes a
//! WebSocket: bad session id (400), no upgrade headers (426), foreign Origin
//! or wrong token (403), limits or shutdown (503).

use super::conn::Conn;
use crate::broker::{AttachRequest, Broker, BrokerError, ConnSink};
use crate::metrics::inc;
use crate::respond::{Body, error};
use crate::sessions::new_session_id;
use crate::state::Node;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use protocol::ids::is_valid_id;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Query parameters of `/ws/chat`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ChatQuery<'a> {
    session_id: Option<&'a str>,
    token: Option<&'a str>,
}

fn parse_query(q: &str) -> Result<ChatQuery<'_>, &'static str> {
    let mut out = ChatQuery::default();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "session_id" => {
                if !is_valid_id(v) {
                    return Err("session_id must be 1-128 characters of [A-Za-z0-9_.:-]");
                }
                out.session_id = Some(v);
            }
            "token" => {
                if !is_valid_id(v) {
                    return Err("token must be 1-128 characters of [A-Za-z0-9_.:-]");
                }
                out.token = Some(v);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn origin_allowed(allowed: &Option<Vec<String>>, req: &Request<Incoming>) -> bool {
    let (Some(list), Some(origin)) = (allowed, req.headers().get(header::ORIGIN)) else {
        return true;
    };
    let origin = origin
        .to_str()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    list.contains(&origin)
}

pub async fn upgrade<B: Broker>(
    node: &Arc<Node<B>>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let refuse = |code, kind, msg| {
        inc(&node.metrics.rejected_upgrades);
        error(code, kind, msg)
    };
    let query = match parse_query(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, "bad_request", msg),
    };
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint speaks WebSocket only",
        );
    }
    if !origin_allowed(&node.cfg.allowed_origins, &req) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "Origin not allowed",
        );
    }
    if node.is_shutting_down() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        );
    }
    let Ok(permit) = node.conn_slots.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "max connections reached",
        );
    };
    let session_id = query
        .session_id
        .map_or_else(new_session_id, Arc::<str>::from);
    let conn_id = node.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (sink, rx, overflow) = ConnSink::new(conn_id, node.cfg.outbound_queue);
    let attach = AttachRequest {
        session_id: session_id.clone(),
        token: query.token.map(Arc::from),
    };
    let attached = match node.broker.attach(attach, sink.clone()).await {
        Ok(a) => a,
        Err(BrokerError::Unauthorized) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "unauthorized",
                "this session exists: attach with its token",
            );
        }
        Err(BrokerError::Unavailable(_)) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                "session store unavailable",
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                &e.to_string(),
            );
        }
    };
    // Take hyper's upgrade handle first: the connection then gets the bare
    // TcpStream back (see `Conn::run`); fastwebsockets only builds the 101
    // response here (its own upgrade future finds the handle gone and is dropped).
    let on_upgrade = hyper::upgrade::on(&mut req);
    let response = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok((response, _)) => response,
        Err(e) => {
            node.broker.detach(&session_id, conn_id).await;
            return refuse(StatusCode::BAD_REQUEST, "bad_handshake", &e.to_string());
        }
    };
    let conn = Conn::new(node.clone(), attached, sink, peer);
    let alive = node.alive.clone();
    tokio::spawn(async move {
        conn.run(on_upgrade, rx, overflow).await;
        drop(permit);
        drop(alive);
    });
    response.map(|_| Body::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query("session_id=load_test_1&token=abc&x=1").unwrap(),
            ChatQuery {
                session_id: Some("load_test_1"),
                token: Some("abc")
            }
        );
        assert_eq!(parse_query("").unwrap(), ChatQuery::default());
        assert!(parse_query("session_id=").is_err());
        assert!(parse_query("session_id=a%20b").is_err());
        assert!(parse_query("token=").is_err());
    }
}
