//! Before any load: check that each target accepts a WebSocket at all, so
//! an unreachable or non-WebSocket target fails fast with exit code 3
//! instead of a report full of errors.

use crate::config::target::Target;
use crate::engine::opening;
use crate::engine::settings::Settings;
use crate::error::Error;
use crate::net::connect::{self, ConnectError};
use crate::net::dial::Dialer;
use crate::placeholders::Values;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Open and close one WebSocket to each distinct target address.
pub async fn probe(load: &Settings, targets: &[Target], run_id: &str) -> Result<(), Error> {
    let source: Option<Ipv4Addr> = load.source_ips.first().copied();
    let dialer =
        Dialer::new(&load.dial, targets.iter().any(|t| t.tls)).map_err(Error::Unreachable)?;
    let profile = load.compile_profile().map_err(Error::Unreachable)?;
    let mut seen = Vec::new();
    for t in targets {
        if seen.contains(&t.addr) {
            continue;
        }
        seen.push(t.addr);
        // A session number past every slot's and one per target: nodes
        // that share a Redis refuse a second attach of one session
        // without its token (403).
        let n = load.plan.max_conns() + seen.len() as u64;
        let session = load.session_pattern.render(run_id, n);
        let path = profile.request_path(t, &session, None);
        let vars = Values {
            session: &session,
            run: run_id,
            ..Values::default()
        };
        let dial = connect::connect(&dialer, t, &path, source, &vars);
        let r = tokio::time::timeout(load.timeout, dial).await;
        match r {
            Ok(Ok(mut c)) => {
                let deadline = tokio::time::Instant::now() + load.timeout;
                opening::open(&profile, &mut c.rx, &mut c.tx, &vars, deadline)
                    .await
                    .map_err(|e| Error::Unreachable(format!("{}: {e}", t.url)))?;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    c.tx.write_frame(fastwebsockets::Frame::close(protocol::close::NORMAL, b"")),
                )
                .await;
            }
            Ok(Err(e)) => {
                let hint = match e {
                    ConnectError::Tcp { .. } => "; is the node running and listening there?",
                    ConnectError::Handshake { .. } => {
                        "; is this a WebSocket endpoint (right path)?"
                    }
                    ConnectError::Tls { .. } | ConnectError::Refused { .. } => "",
                };
                return Err(Error::Unreachable(format!("{}: {e}{hint}", t.url)));
            }
            Err(_) => {
                return Err(Error::Unreachable(format!(
                    "{}: no WebSocket handshake within --timeout {:?}",
                    t.url, load.timeout
                )));
            }
        }
    }
    Ok(())
}
