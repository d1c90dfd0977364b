//! The one run path: probe → monitor → measuring backend → checks →
//! report, whatever measures.
//!
//! The backend is chosen once, from the [`Role`]: the local engine, the
//! `--workers` parent, or the controller of remote agents (`--agents`). Both return the same [`Measured`] value and feed the
//! same per-second sinks (the report's series with the resource monitor,
//! the progress line, the HdrHistogram log), so a run is graded and
//! reported the same way however it was measured. A worker process does
//! not come through here: it runs `workers::child` and reports to its
//! parent.

pub mod emit;
pub mod environment;
pub mod probe;

use crate::agents::collect;
use crate::agents::controller::{self, Agents};
use crate::config::target::{Target, parse_url};
use crate::config::{Config, Targets};
use crate::embedded;
use crate::engine::backend;
use crate::engine::collect::SecondSink;
use crate::engine::ctx::RunCtx;
use crate::engine::measured::Measured;
use crate::engine::settings::Share;
use crate::error::Error;
use crate::limits;
use crate::live::expo::RunLabels;
use crate::live::http::MetricsServer;
use crate::live::sink::LiveSink;
use crate::monitor::procs::{Monitor, ProcRole};
use crate::monitor::servers::watch_servers;
use crate::net::dial::Dialer;
use crate::opts::LoadOpts;
use crate::report::build::build;
use crate::report::hdrlog::HdrLog;
use crate::report::inputs::Inputs;
use crate::report::model::Report;
use crate::report::phases::Phases;
use crate::report::progress::Progress;
use crate::report::series::Series;
use crate::workers::parent::{self, Workers};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    /// 0 when every graded metric reached --fail-on, 1 otherwise.
    pub exit_code: u8,
    /// The full report (None for `merge`, `__node` and worker processes).
    pub report: Option<Report>,
}

impl Outcome {
    /// A command that produces no report.
    pub fn code(exit_code: u8) -> Outcome {
        Outcome {
            exit_code,
            report: None,
        }
    }
}

/// How this process measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Alone: the local engine measures.
    Solo,
    /// Parent of `workers` worker processes that share the connections.
    Parent { workers: u32 },
    /// Controller of remote agents (`--coordinator`, `--agents`).
    Controller { agents: u32 },
}

impl Role {
    pub fn of(cfg: &Config) -> Role {
        if let Some(a) = &cfg.agents {
            Role::Controller { agents: a.count }
        } else if cfg.workers > 1 {
            Role::Parent {
                workers: cfg.workers,
            }
        } else {
            Role::Solo
        }
    }
}

/// The chosen measuring backend, ready to start.
enum Backend {
    Local(Arc<Config>, Vec<Target>, String),
    Workers(Box<Workers>),
    Agents(Box<Agents>),
}

impl Backend {
    /// Match the role, once: build the backend that measures.
    async fn prepare(
        cfg: &Arc<Config>,
        targets: &[Target],
        run_id: &str,
    ) -> Result<Backend, Error> {
        Ok(match Role::of(cfg) {
            Role::Solo => Backend::Local(cfg.clone(), targets.to_vec(), run_id.to_string()),
            Role::Parent { workers } => {
                let exe = match &cfg.exe {
                    Some(p) => p.clone(),
                    None => std::env::current_exe()
                        .map_err(|e| Error::io("finding loadgen's own executable", e))?,
                };
                Backend::Workers(Box::new(
                    parent::spawn(&exe, workers, &cfg.load, targets, run_id, cfg.threads).await?,
                ))
            }
            Role::Controller { .. } => match &cfg.agents {
                Some(a) => Backend::Agents(Box::new(
                    controller::gather(a, &cfg.load, targets, run_id).await?,
                )),
                None => return Err(Error::Agents("--agents without its settings".into())),
            },
        })
    }

    /// Watch the processes that generate the load.
    fn watch(&self, mon: &mut Monitor) {
        match self {
            Backend::Local(..) => mon.watch(ProcRole::Loadgen, "loadgen", std::process::id()),
            Backend::Workers(w) => {
                let pids = w.pids();
                let share = 1.0 / pids.len().max(1) as f64;
                for (i, pid) in pids.into_iter().enumerate() {
                    mon.watch_share(ProcRole::Loadgen, format!("loadgen worker {i}"), pid, share);
                }
            }
            // Remote processes: their machines are not this one's to watch.
            Backend::Agents(_) => {}
        }
    }

    async fn measure(self, sinks: &mut [&mut dyn SecondSink]) -> Result<Measured, Error> {
        match self {
            Backend::Local(cfg, targets, run_id) => {
                let tls = targets.iter().any(|t| t.tls);
                let dialer = Dialer::new(&cfg.load.dial, tls).map_err(Error::Unreachable)?;
                let settings = Arc::new(cfg.load.clone());
                let ctx = RunCtx::new(settings, targets, run_id, Share::ALL, dialer)
                    .map_err(Error::Unreachable)?;
                Ok(backend::measure(Arc::new(ctx), sinks).await)
            }
            Backend::Workers(w) => w.measure(sinks).await,
            Backend::Agents(a) => collect::measure(*a, sinks).await,
        }
    }
}

/// Validate the options, then run. Blocking: builds its own tokio runtime.
pub fn load(o: &LoadOpts) -> Result<Outcome, Error> {
    let cfg = Config::from_opts(o)?;
    let (soft, hard) = limits::raise_nofile();
    cfg.check_capacity(soft, hard)?;
    let rt = runtime(cfg.threads)?;
    let cfg = Arc::new(cfg);
    let out = rt.block_on(load_async(cfg));
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

/// The mode as the options spell it (`echo`, `chat`, `raw`, `profile`).
fn mode_label(mode: crate::opts::Mode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The multi-threaded tokio runtime a run measures on.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the tokio runtime", e))
}

/// A run id that is unique enough to keep runs' sessions apart.
pub fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    format!("{:08x}", x as u32)
}

/// Where runs send their load: the embedded node started for them, or the
/// `--url` targets. Several runs may share one (`loadgen capacity`).
pub struct Site {
    node: Option<embedded::NodeChild>,
    pub targets: Vec<Target>,
}

impl Site {
    /// Start the embedded node when there is no `--url`.
    pub async fn open(cfg: &Config) -> Result<Site, Error> {
        Ok(match &cfg.targets {
            Targets::Embedded { node_args } => {
                let n = embedded::spawn(cfg.exe.as_deref(), node_args).await?;
                let t = parse_url(&format!("ws://{}/ws/chat", n.addr))?;
                Site {
                    node: Some(n),
                    targets: vec![t],
                }
            }
            Targets::Urls(v) => Site {
                node: None,
                targets: v.clone(),
            },
        })
    }

    /// The embedded node's pid, if this site started one.
    pub fn embedded_pid(&self) -> Option<u32> {
        self.node.as_ref().map(|n| n.pid)
    }

    /// Stop the embedded node. An unreachable target's error gets the
    /// node's last stderr lines; a node that had to be killed, a note.
    pub async fn close<T>(self, result: Result<T, Error>) -> Result<(T, Option<String>), Error> {
        let Some(n) = self.node else {
            return result.map(|v| (v, None));
        };
        let tail = n.stderr_tail();
        let note = n.stop().await;
        match result {
            Err(Error::Unreachable(m)) if !tail.is_empty() => Err(Error::Unreachable(format!(
                "{m}\nembedded node stderr:\n{tail}"
            ))),
            r => r.map(|v| (v, note)),
        }
    }
}

async fn load_async(cfg: Arc<Config>) -> Result<Outcome, Error> {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let run_id = new_run_id();
    let metrics = match cfg.metrics_listen {
        Some(addr) => Some(bind_metrics(addr).await?),
        None => None,
    };
    // Zeros from the start, so a scrape before the first second sees every family.
    let mut live = metrics.as_ref().map(|m| {
        let labels = RunLabels {
            run: run_id.clone(),
            mode: mode_label(cfg.load.mode),
            workers: cfg.workers,
        };
        LiveSink::new(&cfg.load.plan, labels, m.exposition())
    });
    if let Some(m) = &metrics {
        eprintln!("loadgen: metrics on http://{}/metrics", m.addr());
    }
    let site = Site::open(&cfg).await?;
    let result = measure(&cfg, &site, run_id, started_at, live.as_mut()).await;
    let (mut report, stop_note) = site.close(result).await?;
    if let Some(note) = stop_note {
        report.warnings.push(note);
    }
    emit::emit(&cfg, &report)?;
    if let Some(m) = &metrics
        && !cfg.metrics_linger.is_zero()
    {
        eprintln!(
            "loadgen: http://{}/metrics serves the final figures for {} more (--metrics-linger)",
            m.addr(),
            humantime::format_duration(cfg.metrics_linger)
        );
        // The run took over SIGINT (tokio keeps it for the process), so
        // Ctrl-C has to end the linger here.
        tokio::select! {
            _ = tokio::time::sleep(cfg.metrics_linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    Ok(Outcome {
        exit_code: report.exit_code,
        report: Some(report),
    })
}

/// Bind `--metrics-listen` before any work. A port in use is the user's
/// to fix: exit 2. Where it is (the port may have been 0) is said once the
/// first figures (zeros) are in place, so no scrape finds it empty.
async fn bind_metrics(addr: std::net::SocketAddr) -> Result<MetricsServer, Error> {
    let server = MetricsServer::bind(addr).await.map_err(|e| {
        crate::config::error::ConfigError(format!(
            "--metrics-listen {addr}: {e}; choose another address, or port 0 for any free one"
        ))
    })?;
    Ok(server)
}

/// One measured run against `site`: probe, monitor, measure with the
/// role's backend, check, build the report (printed by the caller).
pub async fn measure(
    cfg: &Arc<Config>,
    site: &Site,
    run_id: String,
    started_at: String,
    mut live: Option<&mut LiveSink>,
) -> Result<Report, Error> {
    let (targets, embedded_pid) = (&site.targets[..], site.embedded_pid());
    // The servers' baselines come before this run's first connection to
    // them, the probe's included; loadgen's own once its workers exist.
    let mut mon = Monitor::new();
    let pollers = watch_servers(cfg, targets, embedded_pid, &mut mon).await;
    mon.baseline();
    probe::probe(&cfg.load, targets, &run_id).await?;
    let backend = Backend::prepare(cfg, targets, &run_id).await?;
    backend.watch(&mut mon);
    mon.baseline();

    let plan = &cfg.load.plan;
    let max_len = (plan.total().as_secs() + cfg.load.timeout.as_secs() + 16) as usize;
    let mut series = Series::new(mon, max_len);
    let mut phases = Phases::new(plan, max_len);
    let mut progress = Progress::new();
    let mut hdr = match &cfg.hdr_log {
        Some(p) => Some(HdrLog::create(p, SystemTime::now())?),
        None => None,
    };
    let measured = {
        let mut sinks: Vec<&mut dyn SecondSink> = vec![&mut series, &mut phases];
        if !cfg.quiet && std::io::stderr().is_terminal() {
            sinks.push(&mut progress);
        }
        if let Some(h) = hdr.as_mut() {
            sinks.push(h);
        }
        if let Some(l) = live.as_deref_mut() {
            sinks.push(l);
        }
        backend.measure(&mut sinks).await
    };
    progress.finish();
    if let Some(l) = live {
        l.finish();
    }
    drop(pollers);
    let mut m = measured?;
    if let Some(e) = hdr.and_then(|h| h.failed) {
        m.warnings.push(format!("--hdr-log: {e}"));
    }
    let c = &m.total.counts;
    if c.conn_ok == 0 {
        let why = m
            .notes
            .first()
            .map_or_else(|| "no attempt completed".to_string(), |(n, _)| n.clone());
        return Err(Error::Unreachable(format!(
            "no connection could be established during the run ({} attempts failed): {why}",
            c.conn_failed
        )));
    }
    let lost_part = m.part_lost();
    let resources = series.monitor.report(m.peak_open);
    let host = series.monitor.host(m.peak_open);
    let load = &cfg.load;
    let mut report = build(
        &m.total,
        Inputs {
            started_at,
            duration_s: m.elapsed.as_secs_f64(),
            mode: load.mode,
            wait_reply: load.wait_reply,
            reconnect: load.reconnect,
            rate_per_conn: plan.rate,
            payload_size: load.payload_size,
            targets: targets.iter().map(|t| t.url.clone()).collect(),
            environment: environment::environment(cfg, embedded_pid, &resources, &m.parts),
            workers: cfg.agents.as_ref().map_or(cfg.workers, |a| a.count),
            target_conns: plan.max_conns(),
            peak_open: m.peak_open,
            resources,
            host,
            series: series.samples,
            notes: m.notes,
            thresholds: &cfg.thresholds,
            fail_on: cfg.fail_on,
            grade_phase: cfg.grade_phase,
            phases: &phases,
            min_success_rate: cfg.min_success_rate,
            embedded: embedded_pid.is_some(),
            abandoned: m.abandoned,
            timeout_us: load.timeout.as_micros() as u64,
        },
    );
    if lost_part {
        report.exit_code = 1;
    }
    report.warnings.extend(m.warnings);
    report.agents = m.parts;
    if load.dial.insecure {
        report.warnings.push(
            "--insecure: server certificates were not verified; this run says nothing about the TLS set-up".into(),
        );
    }
    Ok(report)
}
