//! What `floor_compare` reads and prints for one run of each side: the
//! figures in tcp_floor's output and in loadgen's `--json` report, and the
//! tables that set them side by side. Pure (no process is run here), so
//! every figure's source and every ratio is unit-tested.
//!
//! Two floors frame our figures. The bare floor (`tcp_floor`) moves 32
//! bytes each way over epoll TCP and nothing else: what the machine
//! allows. The protocol floor (`tcp_floor --ws`) moves wsnode's echo
//! messages, masked WebSocket frames of JSON, still one epoll loop per side
//! with nothing else: what the protocol itself costs on top. A side of ours
//! is judged against both, because a goal set against the bare floor can
//! ask for less than the protocol's own cost.

/// One side's figures at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    pub p99_ms: f64,
    /// CPU per round trip: the client's (or loadgen's) and the server's (or node's).
    pub client_us: f64,
    pub server_us: f64,
    pub per_sec: f64,
    /// The whole machine's busy CPU per round trip (/proc/stat): every
    /// process and the kernel, ksoftirqd's share of TCP included, which
    /// neither process is charged for. `None` when not measured.
    pub machine_us: Option<f64>,
}

/// The figures in tcp_floor's output.
pub fn parse_floor(text: &str) -> Result<Side, String> {
    let after = |line: &str, key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        let num: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse().ok()
    };
    let find = |prefix: &str| text.lines().find(|l| l.contains(prefix));
    let lat = find("latency from the intended").ok_or("tcp_floor: no latency line")?;
    let cpu = find("CPU: client").ok_or("tcp_floor: no CPU line")?;
    let rate = find("round trips/s over").ok_or("tcp_floor: no rate line")?;
    let machine = find("machine:").and_then(|l| after(l.rsplit(";").next()?, ""));
    let per_trip: Vec<f64> = cpu
        .split('(')
        .skip(1)
        .filter_map(|p| after(p, ""))
        .collect();
    let per_sec = rate
        .split(';')
        .nth(1)
        .and_then(|p| after(p, ""))
        .ok_or("tcp_floor: no rate")?;
    match (after(lat, "p99"), &per_trip[..]) {
        (Some(p99_ms), [client_us, server_us]) => Ok(Side {
            p99_ms,
            client_us: *client_us,
            server_us: *server_us,
            per_sec,
            machine_us: machine,
        }),
        _ => Err(format!("tcp_floor: unexpected output:\n{text}")),
    }
}

/// The steady phase's p99 and each process's CPU per message.
pub fn parse_loadgen(doc: &serde_json::Value) -> Result<Side, String> {
    // An empty steady phase (a run that never reached its plan) reports
    // p99 0: the whole run's figure is the honest one then.
    let lat = doc["phases"]["steady"]["latency_us"]["corrected"]["p99"]
        .as_f64()
        .filter(|p| *p > 0.0)
        .or_else(|| doc["latency_us"]["corrected"]["p99"].as_f64())
        .ok_or("loadgen: no p99 in the report")?;
    let cpu = |role: &str| {
        doc["resources"]
            .as_array()?
            .iter()
            .find(|r| r["role"] == role)?["cpu_us_per_msg"]
            .as_f64()
    };
    Ok(Side {
        p99_ms: lat / 1000.0,
        client_us: cpu("loadgen").ok_or("loadgen: its own CPU per message missing")?,
        server_us: cpu("node").ok_or("loadgen: the node's CPU per message missing")?,
        // The steady phase's rate: ramp-up and drain are not the rate kept.
        per_sec: doc["phases"]["steady"]["messages"]["per_sec"]
            .as_f64()
            .filter(|r| *r > 0.0)
            .or_else(|| doc["messages"]["per_sec"].as_f64())
            .unwrap_or(0.0),
        machine_us: doc["host"]["cpu_us_per_msg"].as_f64(),
    })
}

pub fn table(rate: u32, rows: &[(u32, Side, Side)]) -> String {
    let mut s = String::from(
        "| conns x rate | answered/s floor / ours | p99 floor | p99 loadgen + node | p99 ratio | CPU/trip floor (client + server) | CPU/msg loadgen + node | CPU ratio | machine CPU/trip floor / ours (ratio) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (conns, f, w) in rows {
        let (fc, wc) = (f.client_us + f.server_us, w.client_us + w.server_us);
        s.push_str(&format!(
            "| {conns} x {rate}/s | {:.0} / {:.0} | {:.2} ms | {:.2} ms | {:.1}x | {:.1} + {:.1} = {fc:.1} us | {:.1} + {:.1} = {wc:.1} us | {:.2}x | {} |\n",
            f.per_sec,
            w.per_sec,
            f.p99_ms,
            w.p99_ms,
            w.p99_ms / f.p99_ms.max(0.001),
            f.client_us,
            f.server_us,
            w.client_us,
            w.server_us,
            wc / fc.max(0.001),
            match (f.machine_us, w.machine_us) {
                (Some(a), Some(b)) => format!("{a:.1} / {b:.1} us ({:.2}x)", b / a.max(0.001)),
                _ => "n/a".to_string(),
            }
        ));
    }
    s
}

/// The CPU goals at 3,000 x 10/s, against the bare floor's side
/// of the same role: loadgen within 1.1x its client, the node within 1.3x
/// its server.
pub const CLIENT_GOAL: f64 = 1.1;
pub const SERVER_GOAL: f64 = 1.3;

/// One round at one step with both floors: the three runs, one after the
/// other, so the three see the host of the same minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub conns: u32,
    pub bare: Side,
    pub protocol: Side,
    pub ours: Side,
}

/// CPU per round trip of one role (client or server) in a round.
fn role(s: &Side, client: bool) -> f64 {
    if client { s.client_us } else { s.server_us }
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(0.001)
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Each side of ours against both floors: a row per round and role, then
/// for each step the medians of the ratios and what they say of the goals.
pub fn protocol_table(rate: u32, rounds: &[Round]) -> String {
    let mut s = String::from(
        "\nEach side against both floors, CPU per round trip (bare: tcp_floor; protocol: tcp_floor --ws)\n\n| conns x rate | round | side | bare floor | protocol floor | ours | protocol / bare | ours / bare | ours / protocol |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    // Each step once (a step given twice has its rounds together).
    let mut steps: Vec<u32> = rounds.iter().map(|r| r.conns).collect();
    steps.sort_unstable();
    steps.dedup();
    let by_step: Vec<(u32, Vec<&Round>)> = steps
        .iter()
        .map(|&c| (c, rounds.iter().filter(|r| r.conns == c).collect()))
        .collect();
    for (conns, of_step) in &by_step {
        for (i, r) in of_step.iter().enumerate() {
            for (client, name) in [(true, "client (loadgen)"), (false, "server (node)")] {
                let (b, p, w) = (
                    role(&r.bare, client),
                    role(&r.protocol, client),
                    role(&r.ours, client),
                );
                s.push_str(&format!(
                    "| {conns} x {rate}/s | {} | {name} | {b:.1} us | {p:.1} us | {w:.1} us | {:.2}x | {:.2}x | {:.2}x |\n",
                    i + 1,
                    ratio(p, b),
                    ratio(w, b),
                    ratio(w, p),
                ));
            }
        }
    }
    for (conns, of_step) in &by_step {
        s.push_str(&format!(
            "\nMedians of {} round(s) at {conns} x {rate}/s:\n",
            of_step.len()
        ));
        for (client, name, goal) in [
            (true, "loadgen", CLIENT_GOAL),
            (false, "the node", SERVER_GOAL),
        ] {
            let med = |f: &dyn Fn(&Round) -> f64| median(of_step.iter().map(|r| f(r)).collect());
            let (Some(pb), Some(wb), Some(wp)) = (
                med(&|r| ratio(role(&r.protocol, client), role(&r.bare, client))),
                med(&|r| ratio(role(&r.ours, client), role(&r.bare, client))),
                med(&|r| ratio(role(&r.ours, client), role(&r.protocol, client))),
            ) else {
                continue;
            };
            let met = |x: f64| if x <= goal { "met" } else { "not met" };
            s.push_str(&format!(
                "- {name}: {wb:.2}x the bare floor's (goal <= {goal}x: {}); the protocol floor's own is {pb:.2}x the bare ({}); {name} is {wp:.2}x the protocol floor's ({} against it)\n",
                met(wb),
                if pb <= goal {
                    "within the goal"
                } else {
                    "beyond the goal: no WebSocket side with these messages meets it here"
                },
                met(wp),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_floor_output_is_read() {
        let text =
            "tcp_floor: 1000 conns x 10 msg/s = 10000 offered/s; measured 5 s after a 3 s warm-up
  answered 80000 of 80000 sent; 9998 round trips/s over the measured window
  latency from the intended send time: p50 0.21 ms, p99 1.40 ms, max 3.00 ms (50000 measured)
  CPU: client 17% (16.8 us per round trip), server 11% (11.3 us per round trip)
  both sides: 28.1 us of CPU per round trip; 2 cores allow at most 71174 round trips/s at this cost
  machine: 40% busy (user 2%, system 25%, softirq 13%; 100% = one core); 31.5 us per round trip, every process and the kernel together
";
        assert_eq!(
            parse_floor(text).unwrap(),
            Side {
                p99_ms: 1.40,
                client_us: 16.8,
                server_us: 11.3,
                per_sec: 9998.0,
                machine_us: Some(31.5),
            }
        );
        // Output without the machine line (an older tcp_floor) still reads.
        let old: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_floor(&old).unwrap().machine_us, None);
        assert!(parse_floor("nothing").is_err());
    }

    fn side(client_us: f64, server_us: f64) -> Side {
        Side {
            p99_ms: 5.0,
            client_us,
            server_us,
            per_sec: 30_000.0,
            machine_us: None,
        }
    }

    #[test]
    fn medians_are_the_middle_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN, 7.0]), Some(7.0));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn each_side_is_read_against_both_floors_with_the_goals() {
        let round = |ours_client: f64| Round {
            conns: 3000,
            bare: side(10.0, 8.0),
            protocol: side(12.0, 10.0),
            ours: side(ours_client, 10.0),
        };
        let t = protocol_table(10, &[round(13.0), round(15.0), round(14.0)]);
        let again = protocol_table(
            10,
            &[
                round(13.0),
                Round {
                    conns: 6000,
                    ..round(1.0)
                },
                round(15.0),
                round(14.0),
            ],
        );
        assert_eq!(
            again
                .matches("Medians of 3 round(s) at 3000 x 10/s")
                .count(),
            1,
            "{again}"
        );
        assert!(
            again.contains("Medians of 1 round(s) at 6000 x 10/s"),
            "{again}"
        );
        // A row per round and side, with the three ratios.
        assert!(t.contains("| 3000 x 10/s | 1 | client (loadgen) | 10.0 us | 12.0 us | 13.0 us | 1.20x | 1.30x | 1.08x |"), "{t}");
        assert!(t.contains("| 3000 x 10/s | 3 | server (node) | 8.0 us | 10.0 us | 10.0 us | 1.25x | 1.25x | 1.00x |"), "{t}");
        assert!(t.contains("Medians of 3 round(s) at 3000 x 10/s"), "{t}");
        // The client's median round is 14.0: 1.40x the bare floor, and the
        // protocol floor's own client (1.20x) is beyond the 1.1x goal.
        assert!(t.contains("- loadgen: 1.40x the bare floor's (goal <= 1.1x: not met); the protocol floor's own is 1.20x the bare (beyond the goal"), "{t}");
        assert!(
            t.contains("loadgen is 1.17x the protocol floor's (not met against it)"),
            "{t}"
        );
        // The server's 1.25x is within its 1.3x goal, and so is the floor's.
        assert!(t.contains("- the node: 1.25x the bare floor's (goal <= 1.3x: met); the protocol floor's own is 1.25x the bare (within the goal); the node is 1.00x the protocol floor's (met against it)"), "{t}");
    }
}
