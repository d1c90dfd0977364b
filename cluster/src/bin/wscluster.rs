//! The `wscluster` binary: a local wsbench cluster (redis-server, wsnode
//! nodes, nginx) from a shell. Everything is in [`cluster::cli`]; this only
//! hands it the arguments and exits with its code.

fn main() {
    std::process::exit(cluster::cli::main(std::env::args_os().skip(1).collect()));
}
