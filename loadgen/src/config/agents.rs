//! `--coordinator`, `--agents`, `--agents-wait` and `--agent-source-ips`,
//! checked into an [`AgentsConfig`] before the run starts.
//!
//! Agents on other machines cannot reach an embedded node on this one, so
//! agents need `--url`; each agent gets its own source addresses, because
//! two machines cannot share one address and one machine's port range.

use crate::config::error::{ConfigError, bad};
use crate::config::ips::parse_ip_range;
use crate::opts::LoadOpts;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Most agents one controller takes (bounds its per-agent books).
pub const MAX_AGENTS: u32 = 1024;

/// A run measured by remote agents.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentsConfig {
    /// `redis://HOST:PORT[/DB]`, as given.
    pub coordinator: String,
    /// Agents that share the run (`--agents`), 1 to [`MAX_AGENTS`].
    pub count: u32,
    /// Longest wait for them (`--agents-wait`). Default: 60 s.
    pub wait: Duration,
    /// Each agent's source addresses, by agent index (empty lists: the
    /// kernel's choice). Default: `--source-ips` split into `count` parts.
    pub source_ips: Vec<Vec<Ipv4Addr>>,
}

/// `None` without `--coordinator`.
pub fn agents_config(
    o: &LoadOpts,
    wait: Duration,
    source_ips: &[Ipv4Addr],
) -> Result<Option<AgentsConfig>, ConfigError> {
    let (Some(url), Some(count)) = (&o.coordinator, o.agents) else {
        return Ok(None);
    };
    if !(1..=MAX_AGENTS).contains(&count) {
        return bad(format!("--agents must be 1 to {MAX_AGENTS}"));
    }
    if redis::Client::open(url.as_str()).is_err() || !url.starts_with("redis://") {
        return bad(format!(
            "--coordinator {url:?} is not a Redis URL; write it like redis://10.0.0.5:6379"
        ));
    }
    if o.urls.is_empty() {
        return bad(
            "--agents needs --url: agents on other machines cannot reach an embedded node on this one",
        );
    }
    if o.workers > 1 {
        return bad("--agents and --workers both split the run: drop --workers");
    }
    if o.group_size.is_some() {
        return bad("--group-size keeps each group in one process: drop --agents");
    }
    let n = count as usize;
    let split = match &o.agent_source_ips {
        Some(list) => {
            if o.source_ips.is_some() {
                return bad(
                    "--agent-source-ips gives every agent its addresses: drop --source-ips",
                );
            }
            let ranges = list
                .split(',')
                .map(|r| parse_ip_range(r.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            if ranges.len() != n {
                return bad(format!(
                    "--agent-source-ips has {} ranges for --agents {count}: give one range per agent",
                    ranges.len()
                ));
            }
            ranges
        }
        None if source_ips.is_empty() => vec![Vec::new(); n],
        None if source_ips.len() < n => {
            return bad(format!(
                "--source-ips has {} addresses for --agents {count}: every agent needs its own, give at least {count}",
                source_ips.len()
            ));
        }
        None => split_even(source_ips, n),
    };
    Ok(Some(AgentsConfig {
        coordinator: url.clone(),
        count,
        wait,
        source_ips: split,
    }))
}

/// `v` in `n` contiguous parts whose sizes differ by at most one.
fn split_even(v: &[Ipv4Addr], n: usize) -> Vec<Vec<Ipv4Addr>> {
    let (base, extra) = (v.len() / n, v.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push(v[at..at + len].to_vec());
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::opts::Opts;
    use clap::Parser;

    fn cfg(extra: &str) -> Result<Config, String> {
        let line = format!("loadgen --coordinator redis://127.0.0.1:6379 --agents 3 {extra}");
        let o = Opts::try_parse_from(line.split_whitespace()).map_err(|e| e.to_string())?;
        Config::from_opts(&o.load).map_err(|e| e.0)
    }

    #[test]
    fn impossible_agent_runs_are_refused_with_a_fix() {
        let url = "--url ws://127.0.0.1:9/ws/chat";
        for (extra, says) in [
            ("", "needs --url"),
            (&format!("{url} --workers 2")[..], "drop --workers"),
            (
                &format!("{url} --source-ips 127.0.0.2-127.0.0.3"),
                "at least 3",
            ),
            (
                &format!("{url} --agent-source-ips 127.0.0.2,127.0.0.3"),
                "one range per agent",
            ),
            (&format!("{url} --agents-wait soon"), "--agents-wait"),
        ] {
            let e = cfg(extra).expect_err(extra);
            assert!(e.contains(says), "{extra}: {e}");
        }
        let o = Opts::try_parse_from(
            "loadgen --coordinator http://x --agents 2 --url ws://127.0.0.1:9/ws/chat".split(' '),
        )
        .unwrap();
        assert!(Config::from_opts(&o.load).is_err());
        // --agents without --coordinator is a parse error.
        assert!(Opts::try_parse_from(["loadgen", "--agents", "2"]).is_err());
        let ok = cfg(&format!(
            "{url} --agent-source-ips 127.0.1.1-127.0.1.9,127.0.2.1,127.0.3.1"
        ))
        .unwrap();
        let a = ok.agents.unwrap();
        assert_eq!(
            a.source_ips.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![9, 1, 1]
        );
    }

    #[test]
    fn source_ips_split_into_disjoint_parts() {
        let v = parse_ip_range("127.0.0.2-127.0.0.11").unwrap();
        let parts = split_even(&v, 3);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(parts.concat(), v);
    }
}
