//! The seed's topology for loadgen's tests: nginx in front of three nodes
//! on one Redis, every one a real process on loopback.

use cluster::{Balance, ClusterOptions, LocalCluster, NodeProgram};

pub fn start_cluster() -> LocalCluster {
    // `loadgen __node` is wsnode (the same library, embedded): the harness
    // runs this test's own loadgen binary with `__node` before the node's options.
    let program = NodeProgram::new(env!("CARGO_BIN_EXE_loadgen")).arg("__node");
    let mut opts = ClusterOptions::new(program);
    // Sticky by the whole client address, so loadgen's --source-ips spread
    // the connections (ip_hash would put every 127.0.0.x on one node).
    opts.balance = Balance::ConsistentHash;
    opts.worker_connections = 1024;
    LocalCluster::start(opts)
        .expect("nginx, three nodes and redis-server start (scripts/test.sh installs them)")
}
