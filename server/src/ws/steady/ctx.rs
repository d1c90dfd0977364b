//! What a connection loop knows of its node.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a loop needs of its node. Not the node itself: the node holds the
/// loops' inboxes, and a loop holding the node would keep it alive forever.
#[derive(Clone)]
pub struct LoopCtx {
    pub metrics: Arc<Metrics>,
    /// The node's shutdown: every connection then goes back to its task,
    /// which closes it with 1001.
    pub shutdown: watch::Receiver<bool>,
    pub node_id: Arc<str>,
    /// `node_id` as a JSON string, for the echo replies written in place.
    pub node_id_json: Arc<str>,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
}
