//! `wsnode cluster up|down|status`: placeholder until the cluster command lands.

/// Entry point for `wsnode cluster ...`; returns the process exit code.
pub fn main(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("wsnode cluster: not implemented yet");
    2
}
