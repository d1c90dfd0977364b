//! `--source-ips` ranges, shared by the run's options and the agents'.

use crate::config::error::{ConfigError, bad};
use std::net::Ipv4Addr;

/// `127.0.0.2-127.0.0.20` or a single address; at most 65536 addresses.
pub fn parse_ip_range(s: &str) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let parse = |x: &str| {
        x.trim().parse::<Ipv4Addr>().map_err(|_| {
            ConfigError(format!(
                "--source-ips {s:?}: {x:?} is not an IPv4 address; e.g. 127.0.0.2-127.0.0.20"
            ))
        })
    };
    let (lo, hi) = (u32::from(parse(a)?), u32::from(parse(b)?));
    if hi < lo || hi - lo >= 65536 {
        return bad(format!(
            "--source-ips {s:?}: the range must go up and hold at most 65536 addresses"
        ));
    }
    Ok((lo..=hi).map(Ipv4Addr::from).collect())
}
