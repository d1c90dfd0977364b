//! Where an answer's text comes from: the [`Generator`] hook.
//!
//! An answer outlives the node that started it: when that node dies, another
//! node takes the stream over (a new lease, a higher fencing token) and asks
//! its generator to go on from the first chunk not yet written. So the hook
//! is "resume", and starting is resuming from chunk 0 with nothing written.
//!
//! [`Simulated`] is wsnode's: deterministic text (`protocol::chunk`), so the
//! continuation is exactly what the dead node would have produced. A real
//! model cannot replay itself; its implementation asks the model again with
//! the question (`plan.prompt`) and the answer so far (`prefix`) as the start
//! of its reply, and streams what follows, chunked as before.

use crate::broker::{AnswerPlan, Replay};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use protocol::ServerMsg;
use protocol::chunk::chunk_text;
use std::sync::Arc;
use std::time::Duration;

/// Why a generator could not produce the next chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("generator failed: {0}")]
pub struct GenerateError(pub String);

/// The chunks of one answer, in index order, each when it is ready.
pub type Chunks = BoxStream<'static, Result<String, GenerateError>>;

/// Produces an answer's chunks; the node writes each through the broker.
pub trait Generator: Send + Sync + 'static {
    /// Whether [`resume`](Self::resume) needs the answer so far. The node
    /// then reads it back from the broker before resuming (a model does; the
    /// simulation does not).
    fn wants_prefix(&self) -> bool;

    /// The chunks `from..plan.chunks` of answer `message_id`, paced as they
    /// are produced. `prefix` is the text of chunks `0..from` joined, as the
    /// broker stored them: empty when the answer starts, or when
    /// [`wants_prefix`](Self::wants_prefix) is false. The stream may end
    /// early (the model finished); the node then ends the answer `done` with
    /// the chunks written.
    fn resume(&self, message_id: &str, plan: &AnswerPlan, from: u32, prefix: String) -> Chunks;
}

/// wsnode's simulated model: `chunk_text(message_id, index, chunk_size)`,
/// one chunk per `plan.interval`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulated;

impl Generator for Simulated {
    fn wants_prefix(&self) -> bool {
        false
    }

    fn resume(&self, message_id: &str, plan: &AnswerPlan, from: u32, _prefix: String) -> Chunks {
        let (id, size, interval) = (Arc::<str>::from(message_id), plan.chunk_size, plan.interval);
        Box::pin(stream::iter(from..plan.chunks).then(move |index| {
            let id = id.clone();
            async move {
                pace(interval).await;
                Ok(chunk_text(&id, index, size))
            }
        }))
    }
}

/// Wait `interval` (a zero interval still yields, so one busy answer does
/// not starve the node's other tasks).
async fn pace(interval: Duration) {
    if interval.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(interval).await;
    }
}

/// The answer so far, from a replay of the stream from chunk 0: every
/// chunk frame's text, joined in order (what a model resumes after).
pub fn prefix_of(replay: &Replay) -> String {
    replay
        .chunks
        .iter()
        .filter_map(
            |frame| match ServerMsg::from_json(std::str::from_utf8(frame).ok()?) {
                Ok(ServerMsg::Chunk { text, .. }) => Some(text),
                _ => None,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use protocol::StreamStatus;

    fn plan(chunks: u32) -> AnswerPlan {
        AnswerPlan {
            chunks,
            interval: Duration::ZERO,
            chunk_size: 8,
            prompt: "q".into(),
        }
    }

    #[tokio::test]
    async fn a_resumed_simulation_is_the_rest_of_the_whole_one() {
        let whole: Vec<String> = Simulated
            .resume("m-1", &plan(7), 0, String::new())
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(whole.len(), 7);
        let rest: Vec<String> = Simulated
            .resume("m-1", &plan(7), 4, String::new())
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(rest, whole[4..]);
        let none: Vec<_> = Simulated
            .resume("m-1", &plan(7), 7, String::new())
            .collect()
            .await;
        assert!(none.is_empty());
    }

    #[test]
    fn the_prefix_is_the_stored_chunks_text_in_order() {
        let frame = |i: u32, t: &str| {
            Bytes::from(
                ServerMsg::Chunk {
                    message_id: "m".into(),
                    index: i,
                    text: t.into(),
                }
                .to_json(),
            )
        };
        let replay = Replay {
            message_id: Arc::from("m"),
            status: StreamStatus::Streaming,
            from: 0,
            chunks: vec![frame(0, "Hello, "), frame(1, "world")],
            total: 2,
            end: None,
        };
        assert_eq!(prefix_of(&replay), "Hello, world");
    }
}
