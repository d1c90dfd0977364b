//! Who an agent is: a unique id for the keys, a name for the reports.

use crate::agents::keys::{self, ALIVE_TTL};

/// An agent process.
#[derive(Debug, Clone)]
pub struct Me {
    /// Unique per process: `{name}-{pid}-{random}`; names its Redis keys.
    pub id: String,
    /// `--name`, or the host name.
    pub name: String,
    pub host: String,
}

impl Me {
    pub fn new(name: Option<&str>) -> Me {
        let host = hostname();
        let name: String = name
            .unwrap_or(&host)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .take(64)
            .collect();
        let name = if name.is_empty() {
            "agent".into()
        } else {
            name
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Me {
            id: format!("{name}-{}-{nanos:08x}", std::process::id()),
            name,
            host,
        }
    }
}

impl Me {
    /// Add "this agent is alive" (its heartbeat key, expiring) to `p`.
    pub fn beat(&self, p: &mut redis::Pipeline) {
        p.cmd("SET")
            .arg(keys::agent_alive(&self.id))
            .arg(&self.name)
            .arg("PX")
            .arg(ALIVE_TTL.as_millis() as u64)
            .ignore();
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
