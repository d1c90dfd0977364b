//! `wscluster`'s entry point: parse, dispatch to a subcommand, map the
//! outcome to an exit code (0 success, 1 failure, 2 bad usage).

use super::args::{Cli, Cmd};
use super::{health, members, up_down};
use crate::error::ClusterError;
use clap::Parser;
use std::ffi::OsString;

/// Entry point for `wscluster ARGS...` (`args` without the program name);
/// returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("wscluster")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.cmd {
        Cmd::Up(a) => up_down::up(a),
        Cmd::Down(a) => up_down::down(a),
        Cmd::Status(a) => members::status(a),
        Cmd::Stop(a) => members::stop(a),
        Cmd::Start(a) => members::start(a),
        Cmd::Health(a) => health::health(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wscluster: {e}");
            match e {
                ClusterError::Invalid(_) => 2,
                _ => 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> i32 {
        main(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert_eq!(run(&[]), 2);
        assert_eq!(run(&["sideways"]), 2);
        assert_eq!(run(&["up", "--nodes", "0"]), 2);
        assert_eq!(run(&["up", "--nodes", "99"]), 2);
        assert_eq!(run(&["up", "--ready-timeout", "soon"]), 2);
        assert_eq!(run(&["up", "--balance", "random"]), 2);
        assert_eq!(run(&["--help"]), 0);
        assert_eq!(run(&["up", "--help"]), 0);
    }

    #[test]
    fn node_args_that_the_cluster_sets_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("s.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["up", "--state", st, "--", "--node-id", "x"]), 2);
        assert_eq!(run(&["up", "--state", st, "--", "--redis=redis://x"]), 2);
        assert_eq!(run(&["up", "--state", st, "--dir", "/nonexistent/dir"]), 2);
    }

    #[test]
    fn down_and_status_without_a_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("none.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["down", "--state", st]), 0, "nothing to stop is fine");
        assert_eq!(run(&["status", "--state", st]), 1, "nothing runs");
        assert_eq!(run(&["status", "--json", "--state", st]), 1);
    }

    #[test]
    fn stop_and_start_need_a_cluster_and_known_names() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("none.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["stop", "--state", st, "node1"]), 2);
        assert_eq!(run(&["start", "--state", st, "node1"]), 2);
        assert_eq!(run(&["stop", "--state", st]), 2, "a name is required");
    }
}
