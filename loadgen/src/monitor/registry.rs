//! The nodes a Redis cluster knows. Every wsnode on Redis registers itself
//! (id, advertised URL, pid, host) in the `nodes:active` hash with each
//! heartbeat, so with `--redis` loadgen monitors every node of the cluster,
//! not only the one a load balancer shows it. Only reads.

use crate::monitor::resp::{self, Resp};
use protocol::health::{NODES_KEY, NodeRegistration, node_alive_key};
use std::net::SocketAddr;

/// The live nodes registered in the Redis at `redis`, by node id. Entries
/// of nodes that died without deregistering stay until a node's cleanup
/// removes them: only those whose liveness key exists are returned.
pub async fn registered_nodes(redis: SocketAddr) -> Result<Vec<NodeRegistration>, String> {
    let all = resp::command(redis, &["HGETALL", NODES_KEY])
        .await
        .ok_or_else(|| format!("redis at {redis} did not answer HGETALL {NODES_KEY}"))?;
    if let Resp::Error(e) = all {
        return Err(format!("redis at {redis}: HGETALL {NODES_KEY}: {e}"));
    }
    let mut live = Vec::new();
    for pair in all.items().chunks_exact(2) {
        let Some(n) = pair[1]
            .text()
            .and_then(|v| serde_json::from_str::<NodeRegistration>(v).ok())
        else {
            continue;
        };
        let alive = resp::command(redis, &["EXISTS", &node_alive_key(&n.node_id)]).await;
        if alive == Some(Resp::Int(1)) {
            live.push(n);
        }
    }
    live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    Ok(live)
}
