//! Per-connection delivery filter: exactly once, in order, per stream.
//!
//! A broker may hand a connection chunks it joined too late for, or the same
//! chunk twice (live and in a recovery replay). This filter keeps, for each
//! stream the connection follows, the next index it owes the client, and
//! turns whatever arrives into a gap-free, duplicate-free sequence:
//!
//! - a stream is followed from its chunk 0, or from a recovery replay;
//!   chunks of a stream joined mid-way are dropped (the welcome frame lists
//!   the stream, and the client recovers it if it wants it);
//! - between `RecoverStart` and the replay, live chunks are held, then
//!   merged after the replay, skipping what the replay already sent;
//! - a chunk past the next expected index is a gap: the filter holds the
//!   stream again and asks the connection to fetch the missing part;
//! - so is an end frame whose chunk count is past it: the last chunks were
//!   lost on the way (a Pub/Sub message is gone for good while a node
//!   re-subscribes), and without this check the client would get the end
//!   with a chunk missing before it.
//!
//! It knows nothing about brokers or sockets, so it is tested on its own.

use crate::broker::{Out, Replay, StreamFrame};
use bytes::Bytes;
use protocol::ServerMsg;
use std::collections::HashMap;
use std::sync::Arc;

/// Streams followed at once by one connection; chunk 0 of one more is dropped.
pub const MAX_FOLLOWED: usize = 64;

enum Follow {
    Live {
        next: u32,
    },
    Held {
        chunks: Vec<(u32, Bytes)>,
        /// The stream's end frame, if it arrived; its `index` is the chunk count.
        end: Option<Arc<StreamFrame>>,
    },
}

/// A frame to write, as the filter emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A JSON text frame.
    Text(Bytes),
    /// Answer to a client's ping, with its payload.
    Pong(Bytes),
    /// The node's heartbeat (added by the writer, never by the filter).
    Ping,
    /// Bytes of a frame already begun on the wire, written as they are.
    Raw(Bytes),
}

/// What the connection must do besides writing the emitted frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Chunks of `message_id` from `from` on are missing: read them from the broker.
    Refetch {
        message_id: Arc<str>,
        from: u32,
    },
    /// More items are held than allowed: close the connection as a slow consumer.
    Overflow,
}

pub struct Delivery {
    follows: HashMap<Arc<str>, Follow>,
    /// Items that arrived before the welcome frame.
    before_welcome: Option<Vec<Out>>,
    /// Bound on held chunks per stream and on items waiting for the welcome.
    max_held: usize,
}

impl Delivery {
    pub fn new(max_held: usize) -> Delivery {
        Delivery {
            follows: HashMap::new(),
            before_welcome: Some(Vec::new()),
            max_held,
        }
    }

    /// The welcome frame went out another way (a connection loop wrote it,
    /// or queued its unwritten end first): nothing waits for it.
    pub fn skip_welcome(&mut self) {
        if let Some(waiting) = self.before_welcome.take() {
            debug_assert!(waiting.is_empty());
        }
    }

    /// Whether the welcome frame went out (nothing is held back for it).
    pub fn welcomed(&self) -> bool {
        self.before_welcome.is_none()
    }

    /// Streams currently followed or held.
    #[cfg(test)]
    pub fn followed(&self) -> usize {
        self.follows.len()
    }

    /// Feed one queue item; frames to write go to `emit`, in order.
    pub fn accept(&mut self, out: Out, emit: &mut impl FnMut(Wire)) -> Action {
        if let Some(waiting) = &mut self.before_welcome {
            match out {
                Out::Welcome(frame) => {
                    emit(Wire::Text(frame));
                    let waiting = std::mem::take(waiting);
                    self.before_welcome = None;
                    let mut action = Action::None;
                    for item in waiting {
                        let a = self.accept(item, emit);
                        if a != Action::None {
                            action = a;
                        }
                    }
                    return action;
                }
                other if waiting.len() < self.max_held => {
                    waiting.push(other);
                    return Action::None;
                }
                _ => return Action::Overflow,
            }
        }
        match out {
            Out::Welcome(frame) | Out::Frame(frame) => {
                emit(Wire::Text(frame));
                Action::None
            }
            Out::Pong(payload) => {
                emit(Wire::Pong(payload));
                Action::None
            }
            Out::Chunk(c) => self.chunk(&c.message_id, c.index, &c.frame, emit),
            Out::End(e) => self.end(e, emit),
            Out::RecoverStart { message_id } => {
                if self.follows.len() >= MAX_FOLLOWED && !self.follows.contains_key(&message_id) {
                    return Action::Overflow;
                }
                self.follows.insert(
                    message_id,
                    Follow::Held {
                        chunks: Vec::new(),
                        end: None,
                    },
                );
                Action::None
            }
            Out::Replay { replay, announce } => self.replay(*replay, announce, emit),
            Out::RecoverAbort(a) => {
                self.follows.remove(&a.message_id);
                emit(Wire::Text(a.frame.clone()));
                Action::None
            }
            Out::Rest(bytes) => {
                emit(Wire::Raw(bytes));
                Action::None
            }
        }
    }

    fn end(&mut self, e: Arc<StreamFrame>, emit: &mut impl FnMut(Wire)) -> Action {
        match self.follows.get_mut(&e.message_id) {
            // `index` is the chunk count (0 when the sender could not say).
            Some(Follow::Live { next }) if e.index > *next => {
                let (message_id, from) = (e.message_id.clone(), *next);
                self.follows.insert(
                    message_id.clone(),
                    Follow::Held {
                        chunks: Vec::new(),
                        end: Some(e),
                    },
                );
                return Action::Refetch { message_id, from };
            }
            Some(Follow::Live { .. }) => {
                emit(Wire::Text(e.frame.clone()));
                self.follows.remove(&e.message_id);
            }
            Some(Follow::Held { end, .. }) => *end = Some(e),
            None => {}
        }
        Action::None
    }

    fn chunk(
        &mut self,
        id: &Arc<str>,
        index: u32,
        frame: &Bytes,
        emit: &mut impl FnMut(Wire),
    ) -> Action {
        let frame = frame.clone();
        match self.follows.get_mut(id) {
            Some(Follow::Live { next }) => {
                if index == *next {
                    *next += 1;
                    emit(Wire::Text(frame));
                } else if index > *next {
                    let from = *next;
                    self.follows.insert(
                        id.clone(),
                        Follow::Held {
                            chunks: vec![(index, frame)],
                            end: None,
                        },
                    );
                    return Action::Refetch {
                        message_id: id.clone(),
                        from,
                    };
                }
                Action::None
            }
            Some(Follow::Held { chunks, .. }) => {
                if chunks.len() >= self.max_held {
                    return Action::Overflow;
                }
                chunks.push((index, frame));
                Action::None
            }
            None => {
                if index == 0 && self.follows.len() < MAX_FOLLOWED {
                    self.follows.insert(id.clone(), Follow::Live { next: 1 });
                    emit(Wire::Text(frame));
                }
                Action::None
            }
        }
    }

    fn replay(&mut self, r: Replay, announce: bool, emit: &mut impl FnMut(Wire)) -> Action {
        if announce {
            emit(Wire::Text(crate::frames::msg(&ServerMsg::Recovered {
                message_id: r.message_id.to_string(),
                status: r.status,
                from_index: r.from,
                chunks: r.total,
            })));
        }
        let (held, held_end) = match self.follows.remove(&r.message_id) {
            Some(Follow::Held { chunks, end }) => (chunks, end),
            _ => (Vec::new(), None),
        };
        let mut next = r.from;
        for frame in r.chunks {
            emit(Wire::Text(frame));
            next += 1;
        }
        if let Some(end) = r.end {
            // Read after the stream finished: the replay holds all it ever will.
            emit(Wire::Text(end));
            return Action::None;
        }
        for (index, frame) in held {
            if index == next {
                emit(Wire::Text(frame));
                next += 1;
            } else if index > next {
                // Still missing some: hold what is left and fetch again.
                self.follows.insert(
                    r.message_id.clone(),
                    Follow::Held {
                        chunks: vec![(index, frame)],
                        end: held_end,
                    },
                );
                return Action::Refetch {
                    message_id: r.message_id,
                    from: next,
                };
            }
        }
        match held_end {
            // Ended after the read, with chunks neither the replay nor the
            // live feed brought: fetch them (the next read sees the end).
            Some(end) if end.index > next => {
                self.follows.insert(
                    r.message_id.clone(),
                    Follow::Held {
                        chunks: Vec::new(),
                        end: Some(end),
                    },
                );
                return Action::Refetch {
                    message_id: r.message_id,
                    from: next,
                };
            }
            Some(end) => emit(Wire::Text(end.frame.clone())),
            None => {
                self.follows.insert(r.message_id, Follow::Live { next });
            }
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::StreamStatus;

    fn id() -> Arc<str> {
        "m".into()
    }
    fn chunk(i: u32) -> Out {
        Out::Chunk(Arc::new(StreamFrame {
            message_id: id(),
            index: i,
            frame: Bytes::from(format!("c{i}")),
        }))
    }
    fn end() -> Out {
        Out::End(Arc::new(StreamFrame {
            message_id: id(),
            index: 0,
            frame: Bytes::from_static(b"end"),
        }))
    }
    fn refetch(from: u32) -> Action {
        Action::Refetch {
            message_id: id(),
            from,
        }
    }
    /// An end frame that says the stream has `count` chunks.
    fn end_of(count: u32) -> Out {
        Out::End(Arc::new(StreamFrame {
            message_id: id(),
            index: count,
            frame: Bytes::from_static(b"end"),
        }))
    }
    fn replay(from: u32, to: u32, finished: bool) -> Out {
        Out::Replay {
            replay: Box::new(Replay {
                message_id: id(),
                status: if finished {
                    StreamStatus::Done
                } else {
                    StreamStatus::Streaming
                },
                from,
                chunks: (from..to).map(|i| Bytes::from(format!("c{i}"))).collect(),
                total: to,
                end: finished.then(|| Bytes::from_static(b"end")),
            }),
            announce: false,
        }
    }

    fn run(d: &mut Delivery, items: Vec<Out>) -> (Vec<String>, Vec<Action>) {
        let mut out = Vec::new();
        let mut actions = Vec::new();
        for item in items {
            let a = d.accept(item, &mut |w| match w {
                Wire::Text(b) => out.push(String::from_utf8(b.to_vec()).unwrap()),
                other => out.push(format!("{other:?}")),
            });
            if a != Action::None {
                actions.push(a);
            }
        }
        (out, actions)
    }

    fn welcomed() -> Delivery {
        let mut d = Delivery::new(100);
        run(&mut d, vec![Out::Welcome(Bytes::from_static(b"w"))]);
        d
    }

    #[test]
    fn items_before_welcome_wait_for_it() {
        let mut d = Delivery::new(100);
        let (out, _) = run(
            &mut d,
            vec![chunk(0), Out::Welcome(Bytes::from_static(b"w")), chunk(1)],
        );
        assert_eq!(out, ["w", "c0", "c1"]);
    }

    #[test]
    fn live_stream_in_order_without_duplicates() {
        let mut d = welcomed();
        let (out, _) = run(
            &mut d,
            vec![chunk(0), chunk(1), chunk(1), chunk(2), end(), chunk(2)],
        );
        assert_eq!(out, ["c0", "c1", "c2", "end"]);
        assert_eq!(d.followed(), 0);
    }

    #[test]
    fn joined_mid_stream_is_dropped_until_recovered() {
        let mut d = welcomed();
        let (out, _) = run(&mut d, vec![chunk(5), chunk(6), end()]);
        assert!(out.is_empty());
    }

    #[test]
    fn recovery_merges_held_live_chunks_without_gap_or_duplicate() {
        let mut d = welcomed();
        // Live chunk 7 arrived before the client asked; 8 and 9 arrive while
        // the replay (4..=8) is read, overlapping it on 8.
        let items = vec![
            chunk(7),
            Out::RecoverStart { message_id: id() },
            chunk(8),
            chunk(9),
            replay(4, 9, false),
            chunk(10),
            end(),
        ];
        let (out, actions) = run(&mut d, items);
        assert_eq!(out, ["c4", "c5", "c6", "c7", "c8", "c9", "c10", "end"]);
        assert!(actions.is_empty());
    }

    #[test]
    fn recovery_of_finished_stream_ends_it() {
        let mut d = welcomed();
        let (out, _) = run(
            &mut d,
            vec![
                Out::RecoverStart { message_id: id() },
                replay(2, 4, true),
                chunk(3),
            ],
        );
        assert_eq!(out, ["c2", "c3", "end"]);
        assert_eq!(d.followed(), 0);
    }

    #[test]
    fn gap_asks_for_a_refetch_then_heals() {
        let mut d = welcomed();
        let (out, actions) = run(&mut d, vec![chunk(0), chunk(1), chunk(4), chunk(5)]);
        assert_eq!(out, ["c0", "c1"]);
        assert_eq!(actions, [refetch(2)]);
        let (out, actions) = run(&mut d, vec![replay(2, 5, false), chunk(6)]);
        assert_eq!(out, ["c2", "c3", "c4", "c5", "c6"]);
        assert!(actions.is_empty());
    }

    #[test]
    fn an_end_counting_chunks_that_never_arrived_fetches_them_before_ending() {
        // The soak's "the end says 20 parts but 19 arrived": the last chunk's
        // Pub/Sub message was lost, the end's was not.
        let mut d = welcomed();
        let (out, actions) = run(&mut d, vec![chunk(0), chunk(1), end_of(3)]);
        assert_eq!(out, ["c0", "c1"]);
        assert_eq!(actions, [refetch(2)]);
        let (out, actions) = run(&mut d, vec![replay(2, 3, true)]);
        assert_eq!(out, ["c2", "end"]);
        assert!(actions.is_empty());
        assert_eq!(d.followed(), 0);
    }

    #[test]
    fn an_end_held_during_a_recovery_waits_for_the_chunks_it_counts() {
        let mut d = welcomed();
        // Read before chunks 3 and 4 were written; their messages were lost,
        // the end's arrived while the replay was read.
        let items = vec![
            Out::RecoverStart { message_id: id() },
            end_of(5),
            replay(0, 3, false),
        ];
        let (out, actions) = run(&mut d, items);
        assert_eq!(out, ["c0", "c1", "c2"]);
        assert_eq!(actions, [refetch(3)]);
        let (out, _) = run(&mut d, vec![replay(3, 5, true)]);
        assert_eq!(out, ["c3", "c4", "end"]);
    }

    #[test]
    fn an_end_that_counts_no_more_than_arrived_ends_at_once() {
        let mut d = welcomed();
        let (out, actions) = run(&mut d, vec![chunk(0), chunk(1), end_of(2), end()]);
        assert_eq!(out, ["c0", "c1", "end"]);
        assert!(actions.is_empty());
    }

    #[test]
    fn held_chunks_are_bounded() {
        let mut d = Delivery::new(2);
        run(&mut d, vec![Out::Welcome(Bytes::from_static(b"w"))]);
        let (_, actions) = run(
            &mut d,
            vec![
                Out::RecoverStart { message_id: id() },
                chunk(1),
                chunk(2),
                chunk(3),
            ],
        );
        assert_eq!(actions, [Action::Overflow]);
    }

    #[test]
    fn announced_replay_starts_with_recovered_frame() {
        let mut d = welcomed();
        let mut r = replay(0, 1, false);
        if let Out::Replay { announce, .. } = &mut r {
            *announce = true;
        }
        let (out, _) = run(&mut d, vec![r]);
        assert!(out[0].contains(r#""type":"recovered""#), "{out:?}");
        assert_eq!(out[1], "c0");
    }
}
