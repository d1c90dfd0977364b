//! A scenario's WebSocket client: tokio-tungstenite (not loadgen's engine),
//! speaking the protocol crate's messages.
//!
//! One task owns the socket, so pings are answered (and idle timeouts
//! avoided) while the scenario does something else; frames reach the
//! scenario through an unbounded channel (a scenario reads a few hundred at
//! most). `freeze` stops the task reading, as a hung browser tab would: the
//! socket stays open but nothing answers the node's pings.

use futures_util::{SinkExt, StreamExt};
use protocol::chunk::verify_chunk;
use protocol::{ClientMsg, ServerMsg, StreamInfo};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// What the socket task reports.
#[derive(Debug)]
pub enum Event {
    Msg(ServerMsg),
    /// The connection ended: the close code, if a close frame came.
    Closed(Option<u16>),
}

enum Cmd {
    Send(String),
    Freeze,
}

/// The welcome frame's fields.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub session_id: String,
    pub node_id: String,
    pub token: String,
    pub streams: Vec<StreamInfo>,
}

pub struct Client {
    pub welcome: Welcome,
    cmds: mpsc::UnboundedSender<Cmd>,
    inbox: mpsc::UnboundedReceiver<Event>,
    closed: Option<Option<u16>>,
}

/// How an answer ended, as this client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Done(u32),
    Interrupted(u32),
    Error(String),
    Closed,
    TimedOut,
}

/// One answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    pub indices: Vec<u32>,
    /// Chunks whose text is not the deterministic text of their index.
    pub bad_text: u32,
    /// Message ids of chunks that belonged to another answer.
    pub foreign: Vec<String>,
    pub end: End,
    /// When the first chunk arrived.
    pub first_chunk: Option<Instant>,
}

/// `URL?session_id=SID[&token=T]`.
pub fn session_url(base: &str, session: &str, token: Option<&str>) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    match token {
        Some(t) => format!("{base}{sep}session_id={session}&token={t}"),
        None => format!("{base}{sep}session_id={session}"),
    }
}

impl Client {
    /// Connect and wait for the welcome frame.
    pub async fn connect(url: &str, wait: Duration) -> Result<Client, String> {
        let deadline = Instant::now() + wait;
        let (ws, _) = timeout_at(deadline, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| format!("connecting to {url}: no answer within {wait:?}"))?
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(pump(ws, cmd_rx, tx));
        let mut c = Client {
            welcome: Welcome {
                session_id: String::new(),
                node_id: String::new(),
                token: String::new(),
                streams: Vec::new(),
            },
            cmds,
            inbox,
            closed: None,
        };
        match c.next_until(deadline).await {
            Some(Event::Msg(ServerMsg::Welcome {
                session_id,
                node_id,
                token,
                streams,
            })) => {
                c.welcome = Welcome {
                    session_id,
                    node_id,
                    token,
                    streams,
                };
                Ok(c)
            }
            other => Err(format!("{url}: expected a welcome frame, got {other:?}")),
        }
    }

    pub fn send(&self, msg: &ClientMsg) {
        let text = serde_json::to_string(msg).unwrap_or_default();
        let _ = self.cmds.send(Cmd::Send(text));
    }

    /// Ask for an answer of `chunks` chunks, `interval_ms` apart.
    pub fn chat(&self, message_id: &str, chunks: u32, interval_ms: u64) {
        self.send(&ClientMsg::Chat {
            message_id: Some(message_id.to_string()),
            text: "scenario".into(),
            chunks: Some(chunks),
            interval_ms: Some(interval_ms),
        });
    }

    /// Resume `message_id` after chunk `last_index`.
    pub fn recover(&self, message_id: &str, last_index: Option<i64>) {
        self.send(&ClientMsg::Recover {
            message_id: message_id.to_string(),
            last_index,
        });
    }

    /// Stop answering pings and reading (the socket stays open).
    pub fn freeze(&self) {
        let _ = self.cmds.send(Cmd::Freeze);
    }

    /// The next event, or `None` at the deadline.
    pub async fn next_until(&mut self, deadline: Instant) -> Option<Event> {
        if let Some(code) = self.closed {
            return Some(Event::Closed(code));
        }
        let ev = timeout_at(deadline, self.inbox.recv())
            .await
            .ok()?
            .unwrap_or(Event::Closed(None));
        if let Event::Closed(code) = ev {
            self.closed = Some(code);
        }
        Some(ev)
    }

    /// An echo round trip; the node id that answered.
    pub async fn echo(&mut self, id: u64, wait: Duration) -> Result<String, String> {
        self.send(&ClientMsg::Echo {
            id,
            ts: 0,
            payload: None,
        });
        let deadline = Instant::now() + wait;
        loop {
            match self.next_until(deadline).await {
                Some(Event::Msg(ServerMsg::Echo {
                    id: got, node_id, ..
                })) if got == id => {
                    return Ok(node_id);
                }
                Some(Event::Msg(ServerMsg::Error { code, message, .. })) => {
                    return Err(format!("error {code:?}: {message}"));
                }
                Some(Event::Closed(code)) => return Err(format!("connection closed ({code:?})")),
                Some(Event::Msg(_)) => {}
                None => return Err(format!("no echo reply within {wait:?}")),
            }
        }
    }

    /// Read `message_id`'s chunks until it ends (or `wait` passes), checking
    /// each chunk's text; `recovered` frames are skipped.
    pub async fn collect(&mut self, message_id: &str, wait: Duration) -> Answer {
        self.gather(&[message_id], wait, u32::MAX).await.remove(0)
    }

    /// As [`collect`](Self::collect), but return after `stop_after` chunks.
    pub async fn collect_until(
        &mut self,
        message_id: &str,
        wait: Duration,
        stop_after: u32,
    ) -> Answer {
        self.gather(&[message_id], wait, stop_after).await.remove(0)
    }

    /// Several answers streaming at once, until all end, `wait` passes or
    /// `stop_after` chunks (of all of them) arrived. Chunks of any other
    /// answer are counted as foreign in the first.
    pub async fn gather(&mut self, ids: &[&str], wait: Duration, stop_after: u32) -> Vec<Answer> {
        let deadline = Instant::now() + wait;
        let mut answers: Vec<Answer> = ids
            .iter()
            .map(|_| Answer {
                indices: Vec::new(),
                bad_text: 0,
                foreign: Vec::new(),
                end: End::TimedOut,
                first_chunk: None,
            })
            .collect();
        let mut open = ids.len();
        let mut received = 0u32;
        while open > 0 && received < stop_after {
            let ev = self.next_until(deadline).await;
            let (m, end) = match ev {
                Some(Event::Msg(ServerMsg::Chunk {
                    message_id: m,
                    index,
                    text,
                })) => {
                    match ids.iter().position(|id| *id == m) {
                        Some(i) => {
                            let a = &mut answers[i];
                            a.first_chunk.get_or_insert_with(Instant::now);
                            a.bad_text += u32::from(!verify_chunk(&m, index, &text));
                            a.indices.push(index);
                            received += 1;
                        }
                        None => answers[0].foreign.push(m),
                    }
                    continue;
                }
                Some(Event::Msg(ServerMsg::Done { message_id, chunks })) => {
                    (message_id, End::Done(chunks))
                }
                Some(Event::Msg(ServerMsg::Interrupted { message_id, chunks })) => {
                    (message_id, End::Interrupted(chunks))
                }
                Some(Event::Msg(ServerMsg::Error {
                    code,
                    message,
                    message_id,
                })) => (
                    message_id.unwrap_or_else(|| ids[0].to_string()),
                    End::Error(format!("{code:?}: {message}")),
                ),
                Some(Event::Closed(_)) => {
                    for a in answers.iter_mut().filter(|a| a.end == End::TimedOut) {
                        a.end = End::Closed;
                    }
                    break;
                }
                Some(Event::Msg(_)) => continue,
                None => break,
            };
            if let Some(i) = ids.iter().position(|id| *id == m) {
                if answers[i].end == End::TimedOut {
                    answers[i].end = end;
                    open -= 1;
                }
            }
        }
        answers
    }

    /// Wait for the connection to end; its close code if it did.
    pub async fn wait_closed(&mut self, wait: Duration) -> Option<Option<u16>> {
        let deadline = Instant::now() + wait;
        loop {
            match self.next_until(deadline).await? {
                Event::Closed(code) => return Some(code),
                Event::Msg(_) => {}
            }
        }
    }
}

/// The socket task: writes what the scenario sends, forwards what arrives.
/// Ends when the socket closes or the [`Client`] is dropped (which drops
/// the TCP connection without a close frame, as a crashed browser would).
async fn pump(
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        let _ = events.send(Event::Closed(None));
                        return;
                    }
                }
                Some(Cmd::Freeze) => {
                    // Hold the socket, read nothing, until the client is dropped.
                    while cmds.recv().await.is_some() {}
                    return;
                }
                None => return,
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let ev = match serde_json::from_str::<ServerMsg>(t.as_str()) {
                        Ok(m) => Event::Msg(m),
                        Err(_) => continue,
                    };
                    if events.send(ev).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = events.send(Event::Closed(frame.map(|f| u16::from(f.code))));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = events.send(Event::Closed(None));
                    return;
                }
            },
        }
    }
}
