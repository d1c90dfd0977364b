//! `wscluster health [URL]`: probe a node's `/health` once with the
//! cluster's own blocking client (`wsnode health` does the same from the
//! node binary, for container images that ship only wsnode).

use super::args::HealthArgs;
use crate::error::ClusterError;
use crate::http;

pub fn health(a: HealthArgs) -> Result<i32, ClusterError> {
    let url = match a.url {
        Some(u) => u,
        None => {
            let listen = std::env::var("WSNODE_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
            let addr = http::probe_addr(&listen).ok_or_else(|| {
                ClusterError::Invalid(format!("WSNODE_LISTEN={listen} is not host:port"))
            })?;
            format!("http://{addr}/health")
        }
    };
    let (addr, path) = http::parse_url(&url).ok_or_else(|| {
        ClusterError::Invalid(format!(
            "{url}: expected http://IP:PORT/PATH or http://localhost:PORT/PATH"
        ))
    })?;
    match http::get(addr, &path, a.timeout) {
        Ok((200, body)) => {
            println!("{url}: 200 {}", body.trim());
            Ok(0)
        }
        Ok((code, body)) => {
            eprintln!("{url}: HTTP {code} {}", body.trim());
            Ok(1)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispatch::main;
    use std::ffi::OsString;

    fn run(args: &[&str]) -> i32 {
        main(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn health_probe() {
        assert_eq!(run(&["health", "ftp://x"]), 2);
        // Nothing listens on a port we just released.
        let port = crate::ports::free_port().unwrap();
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(run(&["health", &url, "--timeout", "1s"]), 1);
    }
}
