//! The messages a `--workers` parent and its worker processes exchange,
//! both ways, as typed serde values (one JSON line each).
//!
//! The plan goes to a worker as data, never as re-rendered command-line
//! flags, and everything measured comes back losslessly: histograms travel
//! as (value, count) pairs, which add exactly into histograms of the same
//! bounds. Pipes carry these messages between local processes; Redis
//! Streams carry the same types between a controller and its remote agents
//! (`agents::transport`), which add a start instant and a clock reading.

use crate::config::target::Target;
use crate::engine::collect::Second;
use crate::engine::measured::Measured;
use crate::engine::settings::{Settings, Share};
use crate::engine::stats::{Counts, Recorder, hist_from_pairs, hist_to_pairs};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Parent to worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToWorker {
    /// The worker's part of the run; always the first message.
    Start(Box<Assignment>),
    /// Every process is up and its baseline taken: start connecting now.
    Go,
    /// Stop early (Ctrl-C at the parent), then report as usual.
    Stop,
    /// Remote agents: start at this instant of the coordinator's clock
    /// (Redis TIME, microseconds since the Unix epoch), all together.
    GoAt { unix_us: u64 },
}

/// What one worker runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The engine's settings, exactly as the parent validated them.
    pub settings: Settings,
    /// The resolved targets (the embedded node's URL included).
    pub targets: Vec<Target>,
    /// The run's id, shared by every worker, so session ids never collide.
    pub run_id: String,
    /// Which global slots this worker owns.
    pub share: Share,
    /// Tokio worker threads for this process.
    pub threads: usize,
}

/// Worker to parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromWorker {
    /// Started and waiting for `Go`.
    Ready,
    /// Remote agents: who took the assignment, and its clock against the
    /// coordinator's; sent before `Ready`.
    Hello(Box<AgentHello>),
    /// One second, with its histograms, so the parent merges per-second
    /// percentiles exactly.
    Second(Box<SecondRecord>),
    /// Everything the worker measured; its last message.
    Result(Box<WorkerResult>),
}

/// An agent introducing itself to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHello {
    /// `--name` (default: the host name).
    pub name: String,
    pub host: String,
    /// Its clock minus the coordinator's, microseconds (the midpoint of its
    /// best Redis TIME sample).
    pub clock_offset_us: i64,
    /// Round trip of that sample, microseconds: the offset's uncertainty.
    pub clock_rtt_us: u64,
}

/// A [`Second`] as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondRecord {
    pub start_us: u64,
    pub len_us: u64,
    pub open: i64,
    pub delta: Counts,
    pub corrected: Vec<(u64, u64)>,
    pub uncorrected: Vec<(u64, u64)>,
    /// Connection times of the second (absent from older workers: empty).
    #[serde(default)]
    pub conn_time: Vec<(u64, u64)>,
    /// Send lags of the second.
    #[serde(default)]
    pub send_lag: Vec<(u64, u64)>,
}

impl From<&Second> for SecondRecord {
    fn from(s: &Second) -> SecondRecord {
        SecondRecord {
            start_us: s.start.as_micros() as u64,
            len_us: s.len.as_micros() as u64,
            open: s.open,
            delta: s.delta,
            corrected: hist_to_pairs(&s.corrected),
            uncorrected: hist_to_pairs(&s.uncorrected),
            conn_time: hist_to_pairs(&s.conn_time),
            send_lag: hist_to_pairs(&s.send_lag),
        }
    }
}

impl SecondRecord {
    pub fn to_second(&self) -> Second {
        Second {
            start: Duration::from_micros(self.start_us),
            len: Duration::from_micros(self.len_us),
            open: self.open,
            delta: self.delta,
            corrected: hist_from_pairs(&self.corrected),
            uncorrected: hist_from_pairs(&self.uncorrected),
            conn_time: hist_from_pairs(&self.conn_time),
            send_lag: hist_from_pairs(&self.send_lag),
        }
    }
}

/// A worker's [`Measured`], losslessly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerResult {
    pub counts: Counts,
    pub conn_time: Vec<(u64, u64)>,
    pub conn_tcp: Vec<(u64, u64)>,
    pub conn_tls: Vec<(u64, u64)>,
    pub conn_upgrade: Vec<(u64, u64)>,
    pub corrected: Vec<(u64, u64)>,
    pub uncorrected: Vec<(u64, u64)>,
    pub send_lag: Vec<(u64, u64)>,
    pub chunk_gap: Vec<(u64, u64)>,
    pub done_time: Vec<(u64, u64)>,
    #[serde(default)]
    pub parts: Vec<(u64, u64)>,
    pub failover: Vec<(u64, u64)>,
    pub recovery: Vec<(u64, u64)>,
    pub peak_open: i64,
    pub notes: Vec<(String, u64)>,
    pub abandoned: usize,
    pub elapsed_us: u64,
}

impl From<&Measured> for WorkerResult {
    fn from(m: &Measured) -> WorkerResult {
        let t = &m.total;
        WorkerResult {
            counts: t.counts,
            conn_time: hist_to_pairs(&t.conn_time),
            conn_tcp: hist_to_pairs(&t.conn_tcp),
            conn_tls: hist_to_pairs(&t.conn_tls),
            conn_upgrade: hist_to_pairs(&t.conn_upgrade),
            corrected: hist_to_pairs(&t.corrected),
            uncorrected: hist_to_pairs(&t.uncorrected),
            send_lag: hist_to_pairs(&t.send_lag),
            chunk_gap: hist_to_pairs(&t.chunk_gap),
            done_time: hist_to_pairs(&t.done_time),
            parts: hist_to_pairs(&t.parts),
            failover: hist_to_pairs(&t.failover),
            recovery: hist_to_pairs(&t.recovery),
            peak_open: m.peak_open,
            notes: m.notes.clone(),
            abandoned: m.abandoned,
            elapsed_us: m.elapsed.as_micros() as u64,
        }
    }
}

impl WorkerResult {
    pub fn recorder(&self) -> Recorder {
        Recorder {
            counts: self.counts,
            conn_time: hist_from_pairs(&self.conn_time),
            conn_tcp: hist_from_pairs(&self.conn_tcp),
            conn_tls: hist_from_pairs(&self.conn_tls),
            conn_upgrade: hist_from_pairs(&self.conn_upgrade),
            corrected: hist_from_pairs(&self.corrected),
            uncorrected: hist_from_pairs(&self.uncorrected),
            send_lag: hist_from_pairs(&self.send_lag),
            chunk_gap: hist_from_pairs(&self.chunk_gap),
            done_time: hist_from_pairs(&self.done_time),
            parts: hist_from_pairs(&self.parts),
            failover: hist_from_pairs(&self.failover),
            recovery: hist_from_pairs(&self.recovery),
            batch: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Targets};
    use crate::engine::stats::{new_hist, record};
    use crate::opts::Opts;
    use clap::Parser;

    #[test]
    fn the_assignment_arrives_as_validated() {
        let o = Opts::try_parse_from([
            "loadgen",
            "--url",
            "ws://127.0.0.1:9/ws/chat",
            "--stages",
            "1s:10,2s:4",
            "--rate",
            "2.5",
            "--timeout",
            "750ms",
            "--mode",
            "chat",
            "--wait-reply",
            "--workers",
            "3",
            "--chat-chunks",
            "2",
            "--source-ips",
            "127.0.0.2-127.0.0.4",
        ])
        .unwrap();
        let cfg = Config::from_opts(&o.load).unwrap();
        let Targets::Urls(targets) = &cfg.targets else {
            panic!("--url gives URL targets");
        };
        let a = Assignment {
            settings: cfg.load.clone(),
            targets: targets.clone(),
            run_id: "ab12".into(),
            share: Share { index: 1, of: 3 },
            threads: 1,
        };
        let line = serde_json::to_string(&ToWorker::Start(Box::new(a.clone()))).unwrap();
        let ToWorker::Start(back) = serde_json::from_str(&line).unwrap() else {
            panic!("{line}");
        };
        assert_eq!(*back, a);
        assert!(back.settings.wait_reply);
        assert_eq!(back.settings.chat_chunks, Some(2));
        assert_eq!(back.settings.source_ips.len(), 3);
        assert!(serde_json::from_str::<ToWorker>("{\"start\":{}}").is_err());
    }

    #[test]
    fn seconds_and_results_survive_the_pipe_exactly() {
        let mut h = new_hist();
        for v in [3, 900, 45_000, 2_000_000] {
            record(&mut h, v);
        }
        let s = Second {
            start: Duration::from_millis(1000),
            len: Duration::from_millis(1003),
            open: 12,
            delta: Counts {
                sent: 40,
                received: 39,
                ..Counts::default()
            },
            corrected: h.clone(),
            uncorrected: h.clone(),
            conn_time: h.clone(),
            send_lag: h.clone(),
        };
        let line = serde_json::to_string(&FromWorker::Second(Box::new((&s).into()))).unwrap();
        let FromWorker::Second(back) = serde_json::from_str(&line).unwrap() else {
            panic!("{line}");
        };
        let back = back.to_second();
        assert_eq!((back.start, back.len, back.open), (s.start, s.len, 12));
        assert_eq!(back.delta, s.delta);
        assert_eq!(back.corrected, h);
        assert_eq!((&back.conn_time, &back.send_lag), (&h, &h));
        // A second from a worker that sends no connection times reads as none.
        let mut old = serde_json::to_value(SecondRecord::from(&s)).unwrap();
        for field in ["conn_time", "send_lag"] {
            old.as_object_mut().unwrap().remove(field);
        }
        let old: SecondRecord = serde_json::from_value(old).unwrap();
        assert!(old.to_second().conn_time.is_empty());
        assert_eq!(old.to_second().corrected, h);

        let mut total = Recorder::default();
        total.latency(7, 5);
        record(&mut total.failover, 1234);
        let m = Measured {
            total,
            peak_open: 3,
            notes: vec![("x".into(), 2)],
            ..Measured::default()
        };
        let r = WorkerResult::from(&m);
        let line = serde_json::to_string(&FromWorker::Result(Box::new(r.clone()))).unwrap();
        let FromWorker::Result(back) = serde_json::from_str(&line).unwrap() else {
            panic!("{line}");
        };
        assert_eq!(*back, r);
        assert_eq!(back.recorder().corrected, m.total.corrected);
        assert_eq!(back.recorder().failover, m.total.failover);
    }
}
