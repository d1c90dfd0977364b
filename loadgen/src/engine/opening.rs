//! A profile's opening steps on a fresh connection: send what it says,
//! wait for the frames it expects (answering keep-alives and skipping
//! ignored frames meanwhile). The connection is ready after the last step.
//! With a profile's `token`, the token the last awaited frame carries is
//! returned, to present when the connection is made again.

use crate::net::connect::{WsRead, WsWrite};
use crate::net::frames::{OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT};
use crate::placeholders::Values;
use crate::profile::doc::Doc;
use crate::profile::flat::Members;
use crate::profile::rules::{Profile, Step};
use fastwebsockets::{Frame, Payload};

/// Run the steps; the error names the step that failed and why.
pub async fn open(
    p: &Profile,
    rx: &mut WsRead,
    tx: &mut WsWrite,
    vars: &Values<'_>,
    deadline: tokio::time::Instant,
) -> Result<Option<String>, String> {
    let token_ptr = p.token.as_ref().map(|(ptr, _)| ptr.as_str());
    let mut token = None;
    for (i, step) in p.open.iter().enumerate() {
        let n = i + 1;
        match step {
            Step::Send(t) => {
                let mut bytes = t.render(vars).into_bytes();
                tx.write_frame(Frame::text(Payload::BorrowedMut(&mut bytes)))
                    .await
                    .map_err(|e| format!("profile open step {n} (send): {e}"))?;
            }
            Step::Expect(m, what) => loop {
                let frame = match tokio::time::timeout_at(deadline, rx.next()).await {
                    Err(_) => {
                        return Err(format!("profile open step {n}: no {what} within --timeout"));
                    }
                    Ok(Err(e)) => {
                        return Err(format!(
                            "profile open step {n} (waiting for {what}): the connection failed: {e}"
                        ));
                    }
                    Ok(Ok(f)) => f,
                };
                match frame.opcode {
                    OP_PING => {
                        let pong = Frame::pong(Payload::Owned(rx.payload(&frame).to_vec()));
                        let _ = tx.write_frame(pong).await;
                        continue;
                    }
                    OP_CLOSE => {
                        return Err(format!(
                            "profile open step {n}: the server closed the connection while {what} was due"
                        ));
                    }
                    OP_TEXT | OP_BINARY => {}
                    _ => continue,
                }
                let data = rx.payload(&frame);
                let text = std::str::from_utf8(data).unwrap_or("");
                let mut members = Members::default();
                let json: Option<Doc<'_, '_>> = if p.needs_json {
                    Doc::parse(data, &mut members)
                } else {
                    None
                };
                if m.matches(text, json.as_ref()) {
                    token = token_ptr
                        .and_then(|ptr| json.as_ref().and_then(|j| j.pointer(ptr)))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    break;
                }
                if let Some((_, reply)) = p
                    .answers
                    .iter()
                    .find(|(a, _)| a.matches(text, json.as_ref()))
                {
                    let mut bytes = reply.render(vars).into_bytes();
                    let _ = tx
                        .write_frame(Frame::text(Payload::BorrowedMut(&mut bytes)))
                        .await;
                    continue;
                }
                if p.ignores.iter().any(|g| g.matches(text, json.as_ref())) {
                    continue;
                }
                let mut shown: String = text.chars().take(80).collect();
                if shown.len() < text.len() {
                    shown.push('…');
                }
                return Err(format!(
                    "profile open step {n}: expected {what}, got {shown:?}"
                ));
            },
        }
    }
    Ok(token)
}
