//! loadgen: an open-model WebSocket load generator for wsnode (and any
//! WebSocket echo server).
//!
//! The library exports [`Opts`] and [`run`] so tests drive exactly what the
//! binary drives; `main.rs` only parses, calls [`run`] and maps the result to
//! an exit code. A run is: validate options into a [`config::Config`], start
//! the embedded node if there is no `--url`, probe the target, follow the
//! [`plan`] with one task per connection ([`conn`]), sample resources each
//! second ([`monitor`]), then grade and print the [`report`].

pub mod cluster;
pub mod config;
pub mod conn;
pub mod engine;
pub mod error;
pub mod hdrlog;
pub mod health;
pub mod limits;
pub mod monitor;
pub mod node;
pub mod opts;
pub mod plan;
pub mod report;
pub mod stats;
pub mod wire;
pub mod ws;
pub mod wsread;

pub use error::Error;
pub use opts::{Command, LoadOpts, Mode, Opts};
pub use report::Report;

use config::{Config, Target, Targets};
use engine::RunCtx;
use monitor::{Monitor, Role};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    /// 0 when every graded metric reached --fail-on, 1 otherwise.
    pub exit_code: u8,
    /// The full report (None for `merge`, `__node` and worker processes).
    pub report: Option<Report>,
}

/// Run whatever `opts` asks for. Blocking: builds its own tokio runtime.
pub fn run(opts: Opts) -> Result<Outcome, Error> {
    match opts.command {
        Some(Command::Merge(m)) => hdrlog::run_merge(&m).map(|exit_code| Outcome {
            exit_code,
            report: None,
        }),
        Some(Command::Node { args }) => node::serve(args).map(|exit_code| Outcome {
            exit_code,
            report: None,
        }),
        None => load(&opts.load),
    }
}

fn load(o: &LoadOpts) -> Result<Outcome, Error> {
    let cfg = Config::from_opts(o)?;
    let (soft, hard) = limits::raise_nofile();
    cfg.check_capacity(soft, hard)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the tokio runtime", e))?;
    let cfg = Arc::new(cfg);
    let out = rt.block_on(load_async(cfg));
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

/// A run id that is unique enough to keep runs' sessions apart.
fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    format!("{:08x}", x as u32)
}

async fn load_async(cfg: Arc<Config>) -> Result<Outcome, Error> {
    let started = SystemTime::now();
    let started_at = humantime::format_rfc3339_seconds(started).to_string();
    let run_id = new_run_id();
    let mut node = None;
    let targets: Vec<Target> = match &cfg.targets {
        Targets::Embedded { node_args } => {
            let n = node::spawn(cfg.exe.as_deref(), node_args).await?;
            let t = config::parse_url(&format!("ws://{}/ws/chat", n.addr))?;
            node = Some(n);
            vec![t]
        }
        Targets::Urls(v) => v.clone(),
    };
    let result = if cfg.workers > 1 && cfg.worker_slot.is_none() {
        cluster::measure(&cfg, targets, node.as_ref(), run_id, started_at).await
    } else {
        measure(&cfg, targets, node.as_ref(), run_id, started_at).await
    };
    let stop_note = match node {
        Some(n) => {
            let tail = n.stderr_tail();
            let note = n.stop().await;
            if let Err(Error::Unreachable(m)) = &result
                && !tail.is_empty()
            {
                return Err(Error::Unreachable(format!(
                    "{m}\nembedded node stderr:\n{tail}"
                )));
            }
            note
        }
        None => None,
    };
    let mut out = result?;
    if let (Some(note), Some(r)) = (stop_note, out.report.as_mut()) {
        r.warnings.push(note);
    }
    if cfg.worker_slot.is_none()
        && let Some(r) = &out.report
    {
        emit(&cfg, r)?;
        out.exit_code = r.exit_code;
    }
    Ok(out)
}

/// Check that each target accepts a WebSocket at all, so an unreachable or
/// non-WebSocket target fails fast with exit code 3 instead of a report full
/// of errors.
pub(crate) async fn probe(cfg: &Config, targets: &[Target], run_id: &str) -> Result<(), Error> {
    let mut seen = Vec::new();
    for t in targets {
        if seen.contains(&t.addr) {
            continue;
        }
        seen.push(t.addr);
        let path = if cfg.mode == Mode::Raw {
            t.path.clone()
        } else {
            let sep = if t.path.contains('?') { '&' } else { '?' };
            format!(
                "{}{sep}session_id={}",
                t.path,
                cfg.session_pattern.render(run_id, 0)
            )
        };
        let r = tokio::time::timeout(
            cfg.timeout,
            ws::connect(t, &path, cfg.source_ips.first().copied()),
        )
        .await;
        match r {
            Ok(Ok(mut c)) => {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    c.tx.write_frame(fastwebsockets::Frame::close(protocol::close::NORMAL, b"")),
                )
                .await;
            }
            Ok(Err(e)) => {
                let hint = match e {
                    ws::ConnectError::Tcp { .. } => "is the node running and listening there?",
                    ws::ConnectError::Handshake { .. } => {
                        "is this a WebSocket endpoint (right path)?"
                    }
                };
                return Err(Error::Unreachable(format!("{}: {e}; {hint}", t.url)));
            }
            Err(_) => {
                return Err(Error::Unreachable(format!(
                    "{}: no WebSocket handshake within --timeout {:?}",
                    t.url, cfg.timeout
                )));
            }
        }
    }
    Ok(())
}

async fn measure(
    cfg: &Arc<Config>,
    targets: Vec<Target>,
    node: Option<&node::NodeChild>,
    run_id: String,
    started_at: String,
) -> Result<Outcome, Error> {
    if cfg.worker_slot.is_none() {
        probe(cfg, &targets, &run_id).await?;
    }
    let mut mon = Monitor::new();
    let mut pollers = Vec::new();
    if cfg.worker_slot.is_none() {
        pollers = watch_servers(cfg, &targets, node, &mut mon).await;
    }
    if let Some((i, _)) = cfg.worker_slot {
        cluster::worker_wait_for_go(i).await?;
    }
    mon.watch(Role::Loadgen, "loadgen", std::process::id());
    mon.baseline();
    let ctx = Arc::new(RunCtx::new(cfg.clone(), targets.clone(), run_id));
    let done = Arc::new(tokio::sync::Notify::new());
    let sink: Option<Box<dyn engine::IntervalSink>> = match (&cfg.hdr_log, cfg.worker_slot) {
        (Some(p), None) => Some(Box::new(hdrlog::HdrLog::create(p, SystemTime::now())?)),
        _ => None,
    };
    let collector = tokio::spawn(engine::collect(ctx.clone(), mon, sink, done.clone()));
    let ctrl_c = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nloadgen: interrupted; stopping (unanswered messages count as in flight)"
                );
                ctx.abort();
            }
        }
    });
    let t_start = Instant::now();
    let abandoned = engine::drive(ctx.clone()).await;
    done.notify_one();
    let collected = collector
        .await
        .map_err(|e| Error::Other(format!("the collector task failed: {e}")))?;
    ctrl_c.abort();
    for p in pollers {
        p.abort();
    }
    let elapsed = t_start.elapsed().as_secs_f64();
    let total = ctx.stats.total();
    let peak_open = ctx
        .stats
        .peak_open
        .load(std::sync::atomic::Ordering::Relaxed);
    let notes = ctx.notes();
    if let Some((i, _)) = cfg.worker_slot {
        cluster::print_worker_result(i, &total, peak_open, &notes, abandoned)?;
        return Ok(Outcome {
            exit_code: 0,
            report: None,
        });
    }
    if total.counts.conn_ok == 0 {
        let why = notes
            .first()
            .map_or_else(|| "no attempt completed".to_string(), |(m, _)| m.clone());
        return Err(Error::Unreachable(format!(
            "no connection could be established during the run ({} attempts failed): {why}",
            total.counts.conn_failed
        )));
    }
    let resources = collected.monitor.report();
    let host = collected.monitor.host();
    let embedded = node.is_some();
    let report = report::build(
        &total,
        report::Inputs {
            started_at,
            duration_s: elapsed,
            mode: cfg.mode,
            wait_reply: cfg.wait_reply,
            reconnect: cfg.reconnect,
            rate_per_conn: cfg.plan.rate,
            payload_size: cfg.payload_size,
            targets: targets.iter().map(|t| t.url.clone()).collect(),
            environment: environment(cfg, node, &resources),
            workers: cfg.workers,
            target_conns: cfg.plan.max_conns(),
            peak_open,
            resources,
            host,
            series: collected.series,
            notes,
            thresholds: &cfg.thresholds,
            fail_on: cfg.fail_on,
            min_success_rate: cfg.min_success_rate,
            embedded,
            abandoned,
            timeout_us: cfg.timeout.as_micros() as u64,
        },
    );
    Ok(Outcome {
        exit_code: report.exit_code,
        report: Some(report),
    })
}

/// Watch the servers under test: the embedded node, `--node-pid`s, each
/// `--url` target (its local pid when `/health/stats` names one, else the
/// figures it reports there), and redis (`--redis-pid`, or `--redis`:
/// its local pid from INFO, else INFO's own figures). Returns the pollers
/// to stop at the end.
pub(crate) async fn watch_servers(
    cfg: &Config,
    targets: &[Target],
    node: Option<&node::NodeChild>,
    mon: &mut Monitor,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut pollers = Vec::new();
    // Connections are spread round-robin over the targets.
    let share = 1.0 / targets.len().max(1) as f64;
    let mut pids: Vec<u32> = Vec::new();
    if let Some(n) = node {
        mon.watch(Role::Node, "embedded node", n.pid);
        pids.push(n.pid);
    }
    for &p in &cfg.node_pids {
        if !pids.contains(&p) {
            mon.watch_share(Role::Node, format!("node pid {p}"), p, share);
            pids.push(p);
        }
    }
    if let Targets::Urls(_) = cfg.targets {
        let mut seen = Vec::new();
        for t in targets {
            if seen.contains(&t.addr) {
                continue;
            }
            seen.push(t.addr);
            if let Some(p) = health::local_pid(t).await {
                if !pids.contains(&p) {
                    mon.watch_share(
                        Role::Node,
                        format!("node {} (pid {p})", t.authority),
                        p,
                        share,
                    );
                    pids.push(p);
                }
            } else if cfg.node_pids.is_empty()
                && let Some((pid, slot, task)) = health::poll_node(t.clone()).await
            {
                let label = format!(
                    "node {} (pid {pid} there; figures from /health/stats)",
                    t.authority
                );
                mon.watch_remote(Role::Node, label, pid, slot, share);
                pollers.push(task);
            }
        }
    }
    if let Some(p) = cfg.redis_pid {
        mon.watch(Role::Redis, "redis-server", p);
    } else if let Some(addr) = cfg.redis {
        match health::redis_info(addr).await {
            Some(i) if health::local_redis(i.pid) => {
                mon.watch(Role::Redis, format!("redis-server {addr}"), i.pid);
            }
            Some(i) => {
                let (slot, task) = health::poll_redis(addr, i);
                let label = format!("redis-server {addr} (figures from INFO)");
                mon.watch_remote(Role::Redis, label, i.pid, slot, 1.0);
                pollers.push(task);
            }
            None => eprintln!(
                "loadgen: warning: redis at {addr} did not answer INFO; Redis CPU will be n/a"
            ),
        }
    }
    pollers
}

/// The "Environment" line of the template.
pub(crate) fn environment(
    cfg: &Config,
    node: Option<&node::NodeChild>,
    res: &[monitor::ProcReport],
) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let nodes = match (node, &cfg.targets) {
        (Some(n), _) => format!(
            "1 node (embedded wsnode child pid {}, in-memory broker, no Redis)",
            n.pid
        ),
        (None, Targets::Urls(v)) => format!(
            "{} target URL{} ({} node process{} monitored), {}",
            v.len(),
            if v.len() == 1 { "" } else { "s" },
            res.iter().filter(|p| p.role == Role::Node).count(),
            if res.iter().filter(|p| p.role == Role::Node).count() == 1 {
                ""
            } else {
                "es"
            },
            if res.iter().any(|p| p.role == Role::Redis) {
                "1 Redis monitored"
            } else {
                "Redis not monitored"
            }
        ),
        (None, Targets::Embedded { .. }) => "embedded node".to_string(),
    };
    let threads = if cfg.workers > 1 {
        (cfg.threads / cfg.workers as usize).max(1)
    } else {
        cfg.threads
    };
    format!(
        "{nodes}; loadgen {} process{} x {threads} thread{} on a {cpus}-CPU host",
        cfg.workers,
        if cfg.workers == 1 { "" } else { "es" },
        if threads == 1 { "" } else { "s" },
    )
}

/// Print the filled template and grade table, and write the requested files.
fn emit(cfg: &Config, r: &Report) -> Result<(), Error> {
    use report::template;
    println!("{}", template::template(r));
    println!("Target Metrics (graded; --fail-on {:?}):", cfg.fail_on);
    println!("{}", template::grade_table(r));
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(p) = &cfg.json {
        let text =
            serde_json::to_string_pretty(r).map_err(|e| Error::Other(format!("--json: {e}")))?;
        std::fs::write(p, text + "\n")
            .map_err(|e| Error::io(format!("--json {}", p.display()), e))?;
    }
    if let Some(p) = &cfg.out_md {
        std::fs::write(p, template::markdown(r))
            .map_err(|e| Error::io(format!("--out-md {}", p.display()), e))?;
    }
    Ok(())
}
