//! tcp_floor and loadgen + its embedded wsnode, side by side, at the same
//! connections x rate steps, in one go: the ratios that say how far the
//! product is from what this machine's loopback TCP allows (issue 12).
//!
//! For each step it runs `tcp_floor` (the bare epoll floor, a sibling
//! binary) and then `loadgen` against its embedded node, reads both
//! results (tcp_floor's lines, loadgen's `--json`), and prints one
//! markdown table: p99 latency and CPU per round trip of each, and their
//! ratios. Only 127.0.0.1 is contacted; steps, connections and durations
//! are bounded.
//!
//! ```sh
//! cargo build --release -p loadgen -p wsbench-benches --bins
//! target/release/floor_compare --steps 1000,3000,6000 --rate 10 --duration 15
//! ```

#[path = "../beside.rs"]
mod beside;
#[path = "../bisect.rs"]
mod bisect;
#[path = "../sides.rs"]
mod sides;
use beside::{beside, loadgen_report};
use bisect::Bisect;
use clap::Parser;
use sides::{Round, Side, parse_floor, parse_loadgen, protocol_table, table};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser, Debug)]
#[command(about = "tcp_floor and loadgen + wsnode at the same steps, with their ratios")]
struct Opts {
    /// Connections at each step, comma-separated (at most 10 steps, each
    /// at most 19000). Example: --steps 1000,3000,6000
    #[arg(long, default_value = "1000,3000,6000")]
    steps: String,
    /// Messages per second per connection. Example: --rate 10
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// Seconds measured per run (tcp_floor adds a 3 s warm-up; loadgen's
    /// graded figures are its steady phase). Example: --duration 15
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=600))]
    duration: u64,
    /// The loadgen binary [default: the one beside this program].
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Instead of fixed steps, find each side's highest rate that keeps
    /// p99 under --p99-goal and answers at least 97 % of what it offers:
    /// connections are bisected between --search-from and --search-to
    /// (x --rate), to within --search-resolution connections. The two
    /// sides' runs alternate, so both searches see the host of the same
    /// minutes.
    #[arg(long)]
    search: bool,
    /// Lowest connection count the search tries. Example: --search-from 3000
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    search_from: u32,
    /// Highest connection count the search tries (loadgen and its embedded
    /// node are two processes, each with a descriptor per connection: at
    /// most about 19,000 under a 20,000 fd limit).
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    search_to: u32,
    /// Highest connection count the search tries for tcp_floor (its server
    /// is a process of its own, one fd per connection each side).
    #[arg(long, default_value_t = 19_000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    search_floor_to: u32,
    /// The search stops when its bounds are this close. Example: --search-resolution 250
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(10..=10_000))]
    search_resolution: u32,
    /// The p99 a passing rate must stay under, in ms. Example: --p99-goal 50
    #[arg(long, default_value_t = 50.0)]
    p99_goal: f64,
    /// An option for loadgen's embedded node, passed on as loadgen's
    /// `--node-arg` (repeatable). Example: --node-arg=--threads=1
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    node_args: Vec<String>,
    /// An option for loadgen itself (repeatable), other than those this
    /// program sets (the plan, rate, target and report). Example:
    /// --loadgen-arg=--threads=1
    #[arg(long = "loadgen-arg", value_name = "ARG", allow_hyphen_values = true)]
    loadgen_args: Vec<String>,
    /// During a --search, a step passes only if this many runs in a row
    /// pass, on both sides: the best found is then a rate each side held
    /// every time it was tried, not one lucky pass at the edge. Example: --confirm 2
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    confirm: u32,
    /// After a --search: run tcp_floor at its highest passing rate and
    /// loadgen + node at --goal-ratio of it, alternately, this many times
    /// each, and count the passes: is the goal met reproducibly, under the
    /// host's conditions of the moment, not only once? Example: --verify 3
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    verify: u32,
    /// The share of the floor's highest passing rate loadgen + node must
    /// hold (the issue's goal: 0.9). Example: --goal-ratio 0.9
    #[arg(long, default_value_t = 0.9)]
    goal_ratio: f64,
    /// Seconds loadgen opens its connections over and sends before its
    /// steady phase, as tcp_floor's fixed 3 s warm-up before it measures
    /// (`--stages W:N,D:N`). 0: loadgen's connection storm alone is its
    /// ramp-up (`--duration D+1`), the method before session 6. Example: --warmup 3
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// An option for tcp_floor (repeatable): `--floor-arg=--ws` makes the
    /// floor speak wsnode's protocol over WebSocket, `--floor-arg=--tokio-client
    /// --floor-arg=--tokio-server` puts a tokio task per connection on both
    /// sides (the floor of the runtime loadgen and wsnode are built on).
    #[arg(long = "floor-arg", value_name = "ARG", allow_hyphen_values = true)]
    floor_args: Vec<String>,
    /// At each step, also run the protocol floor (`tcp_floor --ws`: the
    /// messages loadgen sends, masked WebSocket frames of JSON, with
    /// nothing else) and print each side of ours against both floors, with
    /// the issue's CPU goals. Not with --search or --floor-arg.
    #[arg(long, conflicts_with = "search")]
    protocol_floor: bool,
    /// Runs of each step, in rounds (the floor, the protocol floor with
    /// --protocol-floor, then ours): a row per round, and with
    /// --protocol-floor the medians after. Example: --rounds 3
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10), conflicts_with = "search")]
    rounds: u32,
    /// With --verify: each round also runs loadgen + node at the floor's
    /// highest passing rate and tcp_floor at --goal-ratio of it, so both
    /// stacks' pass counts are seen at both rates, in the same minutes. On
    /// a host whose stalls make a pass at the edge a coin toss for either
    /// stack, this says whether ours holds --goal-ratio as often as the
    /// floor holds its own best.
    #[arg(long)]
    paired: bool,
    /// Both stacks in one placement: loadgen --pin (its loops and its
    /// embedded node's, loop i on CPU i, each connection's two ends on one
    /// core) against one tcp_floor per CPU at once (`--cpu N`: its client
    /// loop and server loop on CPU N), the connections split between them.
    /// Neither then pays a wake-up across CPUs per message; without it
    /// both float.
    #[arg(long)]
    pin: bool,
}

fn main() {
    let o = Opts::parse();
    if let Err(e) = run(&o) {
        eprintln!("floor_compare: {e}");
        std::process::exit(1);
    }
}

fn steps(s: &str) -> Result<Vec<u32>, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=19_000).contains(n))
                .ok_or_else(|| format!("--steps: {x:?} is not 1 to 19000 connections"))
        })
        .collect::<Result<_, _>>()?;
    if v.is_empty() || v.len() > 10 {
        return Err("--steps: 1 to 10 steps".into());
    }
    Ok(v)
}

/// loadgen options this program sets itself, or that would measure
/// something other than loadgen and its embedded node.
const OWN_LOADGEN_OPTIONS: [&str; 11] = [
    "--stages",
    "--conns",
    "--duration",
    "--rate",
    "--json",
    "--url",
    "--workers",
    "--agents",
    "--coordinator",
    "--node-arg",
    "--pin",
];

fn check_loadgen_args(args: &[String]) -> Result<(), String> {
    for a in args {
        let name = a.split('=').next().unwrap_or("");
        if !a.starts_with("--") || OWN_LOADGEN_OPTIONS.contains(&name) {
            return Err(format!(
                "--loadgen-arg {a:?}: give one `--name[=value]` option of loadgen's other than {}",
                OWN_LOADGEN_OPTIONS.join(", ")
            ));
        }
    }
    Ok(())
}

fn run(o: &Opts) -> Result<(), String> {
    let steps = steps(&o.steps)?;
    check_loadgen_args(&o.loadgen_args)?;
    if !(o.goal_ratio > 0.0 && o.goal_ratio <= 1.0) {
        return Err(format!(
            "--goal-ratio: {} is not above 0 and at most 1",
            o.goal_ratio
        ));
    }
    if o.protocol_floor && !o.floor_args.is_empty() {
        return Err(
            "--protocol-floor runs the bare floor and `tcp_floor --ws` itself: give no --floor-arg"
                .into(),
        );
    }
    if o.paired && o.verify == 0 {
        return Err("--paired pairs the rounds of --verify: give --verify N too".into());
    }
    let floor_bin = beside("tcp_floor")?;
    let loadgen = match &o.loadgen {
        Some(p) => p.clone(),
        None => beside("loadgen")?,
    };
    let dir = std::env::temp_dir().join(format!("floor_compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if o.search {
        let r = search_both(o, &floor_bin, &loadgen, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    let (mut rows, mut rounds) = (Vec::new(), Vec::new());
    for &conns in &steps {
        for round in 1..=o.rounds {
            let of = if o.rounds > 1 {
                format!(" (round {round} of {})", o.rounds)
            } else {
                String::new()
            };
            eprintln!("floor_compare: {conns} x {}/s{of}: tcp_floor", o.rate);
            let floor = tcp_floor(&floor_bin, conns, o, &[])?;
            let protocol = if o.protocol_floor {
                eprintln!("floor_compare: {conns} x {}/s{of}: tcp_floor --ws", o.rate);
                Some(tcp_floor(&floor_bin, conns, o, &["--ws"])?)
            } else {
                None
            };
            eprintln!(
                "floor_compare: {conns} x {}/s{of}: loadgen + embedded wsnode",
                o.rate
            );
            let json = dir.join(format!("loadgen-{conns}-{round}.json"));
            let ours = loadgen_run(&loadgen, conns, o, &json)?;
            rows.push((conns, floor, ours));
            if let Some(protocol) = protocol {
                rounds.push(Round {
                    conns,
                    bare: floor,
                    protocol,
                    ours,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", table(o.rate, &rows));
    if o.protocol_floor {
        print!("{}", protocol_table(o.rate, &rounds));
    }
    Ok(())
}

/// Whether a side kept up at `conns` x rate: p99 under the goal and at
/// least 97 % of the offered rate answered.
fn passes(side: &Side, conns: u32, o: &Opts) -> bool {
    side.p99_ms < o.p99_goal && side.per_sec >= 0.97 * f64::from(conns * o.rate)
}

/// Both searches at once, a run of one side then a run of the other, so
/// both see the host of the same minutes; once one side's search ended,
/// the other goes on alone. Returns each side's best.
fn interleave(
    o: &Opts,
    mut floor: impl FnMut(u32) -> Result<Side, String>,
    mut ours: impl FnMut(u32) -> Result<Side, String>,
    floor_probes: &mut Vec<(u32, Side)>,
    our_probes: &mut Vec<(u32, Side)>,
) -> Result<(Option<u32>, Option<u32>), String> {
    let new = |to| Bisect::new(o.search_from, to, o.search_resolution, o.confirm);
    let (mut fb, mut ob) = (new(o.search_floor_to), new(o.search_to));
    loop {
        let floor_ran = turn(o, &mut fb, &mut floor, floor_probes)?;
        let ours_ran = turn(o, &mut ob, &mut ours, our_probes)?;
        if !floor_ran && !ours_ran {
            return Ok((fb.best(), ob.best()));
        }
    }
}

/// One run of a side whose search has not ended; false once it has.
fn turn(
    o: &Opts,
    b: &mut Bisect,
    probe: &mut impl FnMut(u32) -> Result<Side, String>,
    probes: &mut Vec<(u32, Side)>,
) -> Result<bool, String> {
    let Some(conns) = b.next() else {
        return Ok(false);
    };
    let side = probe(conns)?;
    probes.push((conns, side));
    b.record(passes(&side, conns, o));
    Ok(true)
}

fn search_both(o: &Opts, floor_bin: &Path, loadgen: &Path, dir: &Path) -> Result<(), String> {
    let (mut floor_probes, mut our_probes) = (Vec::new(), Vec::new());
    let (floor_best, our_best) = interleave(
        o,
        |conns| {
            eprintln!("floor_compare: search: tcp_floor at {conns} x {}/s", o.rate);
            tcp_floor(floor_bin, conns, o, &[])
        },
        |conns| {
            eprintln!(
                "floor_compare: search: loadgen + embedded wsnode at {conns} x {}/s",
                o.rate
            );
            loadgen_run(loadgen, conns, o, &dir.join(format!("search-{conns}.json")))
        },
        &mut floor_probes,
        &mut our_probes,
    )?;
    print!(
        "{}",
        search_table(o, &floor_probes, &our_probes, floor_best, our_best)
    );
    if let (Some(floor_at), true) = (floor_best, o.verify > 0) {
        print!("{}", verify(o, floor_bin, loadgen, dir, floor_at)?);
    }
    Ok(())
}

/// The goal, checked again and again at its own point: tcp_floor at its
/// highest passing rate, loadgen + node at `--goal-ratio` of it, one after
/// the other so both see the same host, `--verify` times each; with
/// `--paired`, each stack at the other's rate too.
fn verify(
    o: &Opts,
    floor_bin: &Path,
    loadgen: &Path,
    dir: &Path,
    floor_at: u32,
) -> Result<String, String> {
    let mut n = 0;
    verify_with(
        o,
        floor_at,
        |conns| {
            eprintln!("floor_compare: verify: tcp_floor at {conns}");
            tcp_floor(floor_bin, conns, o, &[])
        },
        |conns| {
            eprintln!("floor_compare: verify: loadgen + node at {conns}");
            n += 1;
            loadgen_run(loadgen, conns, o, &dir.join(format!("verify-{n}.json")))
        },
    )
}

/// The runs of a goal check and their table, with each stack's runs
/// given as closures (so the order and the counts are unit-tested).
fn verify_with(
    o: &Opts,
    floor_at: u32,
    mut floor: impl FnMut(u32) -> Result<Side, String>,
    mut ours: impl FnMut(u32) -> Result<Side, String>,
) -> Result<String, String> {
    let ours_at = ((f64::from(floor_at) * o.goal_ratio).ceil() as u32).max(1);
    if ours_at > o.search_to {
        return Err(format!(
            "verify: {ours_at} connections for loadgen + node is above --search-to {}",
            o.search_to
        ));
    }
    let pct = 100.0 * o.goal_ratio;
    // (stack is ours, connections, heading): the goal's pair first.
    let mut cells = vec![
        (false, floor_at, format!("tcp_floor at {floor_at}")),
        (
            true,
            ours_at,
            format!("loadgen + node at {ours_at} ({pct:.0} %)"),
        ),
    ];
    if o.paired {
        cells.push((
            false,
            ours_at,
            format!("tcp_floor at {ours_at} ({pct:.0} %)"),
        ));
        // loadgen and its node hold two descriptors per connection.
        if floor_at <= o.search_to {
            cells.push((true, floor_at, format!("loadgen + node at {floor_at}")));
        }
    }
    let mut s = format!(
        "\nGoal check, {} rounds at {}/s per connection{}\n\n| round |",
        o.verify,
        o.rate,
        if o.paired {
            ", paired: each stack at both rates"
        } else {
            ""
        }
    );
    for (_, _, head) in &cells {
        s.push_str(&format!(" {head}: p99 | passes |"));
    }
    s.push_str(&format!("\n|---|{}\n", "---|---|".repeat(cells.len())));
    let mut ok = vec![0u32; cells.len()];
    for round in 1..=o.verify {
        s.push_str(&format!("| {round} |"));
        for (i, (is_ours, conns, _)) in cells.iter().enumerate() {
            let side = if *is_ours {
                ours(*conns)?
            } else {
                floor(*conns)?
            };
            let pass = passes(&side, *conns, o);
            ok[i] += u32::from(pass);
            s.push_str(&format!(
                " {:.2} ms | {} |",
                side.p99_ms,
                if pass { "yes" } else { "no" }
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nloadgen + node passed {} of {} rounds at {pct:.0} % of the floor's rate; tcp_floor passed {} of {} at its own\n",
        ok[1], o.verify, ok[0], o.verify
    ));
    if o.paired {
        if let Some(at_best) = ok.get(3) {
            s.push_str(&format!(
                "At the same rates: tcp_floor passed {} of {} at {pct:.0} %, loadgen + node {at_best} of {} at the floor's best\n",
                ok[2], o.verify, o.verify
            ));
        } else {
            s.push_str(&format!(
                "At the same rates: tcp_floor passed {} of {} at {pct:.0} %; loadgen + node was not run at the floor's {floor_at} (above --search-to {})\n",
                ok[2], o.verify, o.search_to
            ));
        }
        let often = |a: u32, b: u32| {
            if a >= b {
                "at least as often as"
            } else {
                "less often than"
            }
        };
        s.push_str(&format!(
            "Paired reading: loadgen + node held {pct:.0} % of the floor's best {} the floor held its own best ({} against {} of {}), and {} the floor at the same rate ({} against {})\n",
            often(ok[1], ok[0]),
            ok[1],
            ok[0],
            o.verify,
            often(ok[1], ok[2]),
            ok[1],
            ok[2],
        ));
    }
    Ok(s)
}

fn search_table(
    o: &Opts,
    floor: &[(u32, Side)],
    ours: &[(u32, Side)],
    floor_best: Option<u32>,
    our_best: Option<u32>,
) -> String {
    let mut s = String::from(
        "| side | conns x rate | offered/s | answered/s | p99 | CPU/trip (client + server) | passes |\n|---|---|---|---|---|---|---|\n",
    );
    let floor_name = floor_name(o);
    for (name, probes) in [(floor_name.as_str(), floor), ("loadgen + node", ours)] {
        for (conns, side) in probes {
            s.push_str(&format!(
                "| {name} | {conns} x {}/s | {} | {:.0} | {:.2} ms | {:.1} + {:.1} us | {} |\n",
                o.rate,
                conns * o.rate,
                side.per_sec,
                side.p99_ms,
                side.client_us,
                side.server_us,
                if passes(side, *conns, o) { "yes" } else { "no" },
            ));
        }
    }
    let rate = |b: Option<u32>| b.map(|c| c * o.rate);
    let show = |b: Option<u32>| match rate(b) {
        Some(r) => format!("{r} msg/s"),
        None => format!("none from {} msg/s", o.search_from * o.rate),
    };
    let held = if o.confirm > 1 {
        format!(" in {} runs in a row", o.confirm)
    } else {
        String::new()
    };
    s.push_str(&format!(
        "\nHighest rate with p99 < {} ms{held}: tcp_floor {}, loadgen + node {}",
        o.p99_goal,
        show(floor_best),
        show(our_best)
    ));
    match (rate(floor_best), rate(our_best)) {
        (Some(f), Some(w)) => s.push_str(&format!(
            " = {:.0} % of the floor's (goal: at least {:.0} %){}\n",
            100.0 * f64::from(w) / f64::from(f),
            100.0 * o.goal_ratio,
            if floor_best == Some(o.search_floor_to) {
                "; the floor passed the highest step tried, so its own limit is higher"
            } else {
                ""
            }
        )),
        _ => s.push('\n'),
    }
    s
}

/// The floor's name in tables: tcp_floor and the options it was given.
fn floor_name(o: &Opts) -> String {
    std::iter::once("tcp_floor")
        .chain(o.floor_args.iter().map(String::as_str))
        .chain(o.pin.then_some("--cpu N (a pair per CPU)"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One run of tcp_floor with the run's --floor-arg options and `extra`;
/// with --pin, one pinned pair per CPU at once (see [`pairs`]).
fn tcp_floor(bin: &Path, conns: u32, o: &Opts, extra: &[&str]) -> Result<Side, String> {
    let floor = |conns: u32, cpu: Option<usize>| {
        let mut cmd = Command::new(bin);
        cmd.args(["--conns", &conns.to_string()])
            .args(["--rate", &o.rate.to_string()])
            .args(["--duration", &o.duration.to_string()])
            .args(&o.floor_args)
            .args(extra);
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        cmd
    };
    if !o.pin {
        return parse_floor(&run_floor(floor(conns, None))?);
    }
    // Started together, so the pairs share the machine's minutes.
    let cpus = server::placement::allowed_cpus();
    let shares = split(conns, cpus.len());
    let children = cpus
        .iter()
        .zip(&shares)
        .filter(|(_, n)| **n > 0)
        .map(|(&cpu, &n)| {
            floor(n, Some(cpu))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sides = Vec::new();
    for c in children {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        sides.push(parse_floor(&checked(out)?)?);
    }
    Ok(pairs(&sides))
}

/// Run one tcp_floor to its end; its standard output.
fn run_floor(mut cmd: Command) -> Result<String, String> {
    checked(cmd.output().map_err(|e| format!("tcp_floor: {e}"))?)
}

fn checked(out: std::process::Output) -> Result<String, String> {
    if !out.status.success() {
        return Err(format!(
            "tcp_floor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `conns` in `n` near-equal shares, the larger first.
fn split(conns: u32, n: usize) -> Vec<u32> {
    let n = n.max(1) as u32;
    (0..n)
        .map(|i| conns / n + u32::from(i < conns % n))
        .collect()
}

/// One floor from pinned pairs run at once, each a client loop and a
/// server loop on one CPU: CPU per trip weighted by each pair's answered
/// messages, their rates summed, and the worse p99 (their histograms are
/// not merged). The machine-wide figure is left out: each pair's counts
/// the whole machine against its own trips only.
fn pairs(sides: &[Side]) -> Side {
    let total: f64 = sides.iter().map(|s| s.per_sec).sum();
    let weighted = |f: fn(&Side) -> f64| {
        if total > 0.0 {
            sides.iter().map(|s| f(s) * s.per_sec).sum::<f64>() / total
        } else {
            0.0
        }
    };
    Side {
        p99_ms: sides.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
        client_us: weighted(|s| s.client_us),
        server_us: weighted(|s| s.server_us),
        per_sec: total,
        machine_us: None,
    }
}

fn loadgen_run(bin: &Path, conns: u32, o: &Opts, json: &Path) -> Result<Side, String> {
    let mut args = if o.warmup > 0 {
        // Connections opened over the warm-up, then held: the steady phase
        // is the measured duration, as tcp_floor's after its warm-up.
        vec![
            "--stages".to_string(),
            format!("{}s:{conns},{}s:{conns}", o.warmup, o.duration),
        ]
    } else {
        // About one second of ramp: the steady phase is the measured duration.
        vec![
            "--conns".to_string(),
            conns.to_string(),
            "--duration".into(),
            format!("{}s", o.duration + 1),
        ]
    };
    args.extend(["--rate".into(), o.rate.to_string()]);
    args.extend(o.node_args.iter().map(|a| format!("--node-arg={a}")));
    args.extend(o.loadgen_args.iter().cloned());
    if o.pin {
        args.push("--pin".into());
    }
    let doc = loadgen_report(bin, args, json)?;
    parse_loadgen(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side that keeps p99 under the goal up to `limit` connections x 10/s.
    fn held_to(limit: u32, conns: u32) -> Side {
        Side {
            p99_ms: if conns <= limit { 5.0 } else { 400.0 },
            client_us: 10.0,
            server_us: 8.0,
            per_sec: f64::from(conns * 10),
            machine_us: None,
        }
    }

    #[test]
    fn pinned_pairs_split_the_connections_and_weigh_their_figures() {
        assert_eq!(split(3001, 2), [1501, 1500]);
        assert_eq!(split(1, 2), [1, 0]);
        assert_eq!(split(7, 0), [7]);
        let a = Side {
            p99_ms: 9.0,
            client_us: 10.0,
            server_us: 6.0,
            per_sec: 3000.0,
            machine_us: Some(20.0),
        };
        let b = Side {
            p99_ms: 30.0,
            client_us: 14.0,
            server_us: 10.0,
            per_sec: 1000.0,
            machine_us: Some(20.0),
        };
        let both = pairs(&[a, b]);
        // The worse p99, the rates summed, CPU weighted by messages.
        assert_eq!((both.p99_ms, both.per_sec), (30.0, 4000.0));
        assert_eq!((both.client_us, both.server_us), (11.0, 7.0));
        assert_eq!(both.machine_us, None);
        assert_eq!(pairs(&[]).client_us, 0.0);
        // --pin is floor_compare's to give, with the floors pinned alike.
        let own = check_loadgen_args(&["--pin".to_string()]).unwrap_err();
        assert!(own.contains("--pin"), "{own}");
    }

    #[test]
    fn loadgen_options_it_sets_itself_are_refused() {
        let args = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(check_loadgen_args(&args(&["--threads=1", "--io", "tasks"])).is_err());
        assert!(check_loadgen_args(&args(&["--threads=1", "--io=tasks"])).is_ok());
        for own in ["--rate=5", "--url=ws://127.0.0.1:1/", "--json", "--conns=9"] {
            let e = check_loadgen_args(&args(&[own])).unwrap_err();
            assert!(e.contains(own), "{e}");
        }
    }

    #[test]
    fn loadgen_reports_are_read_and_steps_checked() {
        let doc = serde_json::json!({
            "phases": {"steady": {"latency_us": {"corrected": {"p99": 5100}}}},
            "latency_us": {"corrected": {"p99": 9000}},
            "resources": [{"role": "node", "cpu_us_per_msg": 15.0}, {"role": "loadgen", "cpu_us_per_msg": 19.3}],
            "messages": {"per_sec": 35000.0},
            "host": {"cpu_us_per_msg": 40.0}
        });
        let s = parse_loadgen(&doc).unwrap();
        assert_eq!((s.p99_ms, s.client_us, s.server_us), (5.1, 19.3, 15.0));
        assert!(parse_loadgen(&serde_json::json!({})).is_err());
        let mut empty_steady = doc.clone();
        empty_steady["phases"]["steady"]["latency_us"]["corrected"]["p99"] = 0.into();
        assert_eq!(parse_loadgen(&empty_steady).unwrap().p99_ms, 9.0);
        assert_eq!(steps("1000, 3000").unwrap(), [1000, 3000]);
        assert!(steps("0").is_err() && steps("20000").is_err() && steps("").is_err());
        assert_eq!(s.machine_us, Some(40.0));
        let t = table(10, &[(1000, s, s)]);
        assert!(t.contains("| 1000 x 10/s |") && t.contains("1.0x"), "{t}");
        assert!(t.contains("40.0 / 40.0 us (1.00x)"), "{t}");
    }

    #[test]
    fn the_search_finds_the_highest_passing_step() {
        let o = Opts::parse_from([
            "floor_compare",
            "--search",
            "--search-from",
            "1000",
            "--search-to",
            "9000",
            "--search-resolution",
            "100",
        ]);
        // A side that keeps up to 6,300 connections x 10/s.
        let model = |conns: u32| Side {
            p99_ms: if conns <= 6300 { 5.0 } else { 400.0 },
            client_us: 10.0,
            server_us: 8.0,
            per_sec: f64::from(conns * 10),
            machine_us: None,
        };
        let (mut fp, mut probes) = (Vec::new(), Vec::new());
        let (_, best) =
            interleave(&o, |c| Ok(model(c)), |c| Ok(model(c)), &mut fp, &mut probes).unwrap();
        let best = best.unwrap();
        assert!((6200..=6300).contains(&best), "{best}");
        assert!(probes.len() < 12, "{}", probes.len());
        // Falling behind fails a step even with a good p99.
        let behind = Side {
            per_sec: 50_000.0,
            ..model(6000)
        };
        assert!(!passes(&behind, 6000, &o));
        let slow = |c: u32| Side {
            per_sec: 0.9 * f64::from(c * 10),
            ..model(c)
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let r = interleave(&o, |c| Ok(slow(c)), |c| Ok(model(c)), &mut a, &mut b).unwrap();
        assert_eq!(
            (r.0, a.len()),
            (None, 1),
            "one failed run at the bottom ends it"
        );
        let t = search_table(&o, &probes, &probes, Some(8000), Some(7200));
        assert!(t.contains("= 90 % of the floor's"), "{t}");
    }

    #[test]
    fn the_two_searches_alternate_run_by_run_on_the_same_host() {
        let o = Opts::parse_from([
            "fc",
            "--search",
            "--search-from",
            "1000",
            "--search-to",
            "9000",
            "--search-floor-to",
            "19000",
            "--search-resolution",
            "100",
        ]);
        // One log of the runs in the order they happened.
        let log = std::cell::RefCell::new(Vec::new());
        let side = held_to;
        let (mut fp, mut op) = (Vec::new(), Vec::new());
        let (f, w) = interleave(
            &o,
            |c| {
                log.borrow_mut().push(('f', c));
                Ok(side(12_000, c))
            },
            |c| {
                log.borrow_mut().push(('o', c));
                Ok(side(5_000, c))
            },
            &mut fp,
            &mut op,
        )
        .unwrap();
        assert!((11_900..=12_000).contains(&f.unwrap()), "{f:?}");
        assert!((4_900..=5_000).contains(&w.unwrap()), "{w:?}");
        let log = log.into_inner();
        assert_eq!(fp.len() + op.len(), log.len());
        // While both searches run, the sides take turns; then the longer
        // one goes on alone.
        let both = 2 * fp.len().min(op.len());
        for (i, (who, _)) in log[..both].iter().enumerate() {
            assert_eq!(*who, if i % 2 == 0 { 'f' } else { 'o' }, "{log:?}");
        }
        assert!(
            log[both..].iter().all(|(w, _)| *w == log[both].0),
            "{log:?}"
        );
        assert_eq!(&log[..2], &[('f', 1000), ('o', 1000)]);
    }

    #[test]
    fn a_paired_goal_check_runs_each_stack_at_both_rates_and_counts_each() {
        let o = Opts::parse_from(["fc", "--search", "--verify", "2", "--paired"]);
        let log = std::cell::RefCell::new(Vec::new());
        // The floor holds to 8,000 connections, ours to 7,300.
        let side = held_to;
        let out = verify_with(
            &o,
            8000,
            |c| {
                log.borrow_mut().push(('f', c));
                Ok(side(8000, c))
            },
            |c| {
                log.borrow_mut().push(('o', c));
                Ok(side(7300, c))
            },
        )
        .unwrap();
        let round = [('f', 8000), ('o', 7200), ('f', 7200), ('o', 8000)];
        assert_eq!(log.into_inner(), [round, round].concat());
        assert!(out.contains("passed 2 of 2 rounds at 90 %"), "{out}");
        assert!(
            out.contains(
                "tcp_floor passed 2 of 2 at 90 %, loadgen + node 0 of 2 at the floor's best"
            ),
            "{out}"
        );
        assert!(
            out.contains("at least as often as the floor held its own best (2 against 2 of 2), and at least as often as the floor at the same rate (2 against 2)"),
            "{out}"
        );
        // Unpaired: the goal's pair alone, and no paired reading.
        let o = Opts::parse_from(["fc", "--search", "--verify", "1"]);
        let mut runs = 0;
        let out = verify_with(
            &o,
            8000,
            |c| {
                runs += 1;
                Ok(side(100, c))
            },
            |c| Ok(side(9000, c)),
        )
        .unwrap();
        assert_eq!(runs, 1);
        assert!(
            out.contains(
                "passed 1 of 1 rounds at 90 % of the floor's rate; tcp_floor passed 0 of 1"
            ),
            "{out}"
        );
        assert!(!out.contains("Paired reading"), "{out}");
    }

    #[test]
    fn options_that_cannot_go_together_are_refused() {
        for args in [
            &["fc", "--protocol-floor", "--floor-arg=--ws"][..],
            &["fc", "--paired"][..],
        ] {
            let e = run(&Opts::parse_from(args)).unwrap_err();
            assert!(
                e.contains("--protocol-floor") || e.contains("--paired"),
                "{e}"
            );
        }
        assert!(Opts::try_parse_from(["fc", "--search", "--protocol-floor"]).is_err());
        assert!(Opts::try_parse_from(["fc", "--search", "--rounds", "2"]).is_err());
        assert!(Opts::try_parse_from(["fc", "--rounds", "11"]).is_err());
    }
}
