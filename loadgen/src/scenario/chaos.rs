//! The soak's chaos schedule: `--chaos 'kill-node every 30s, restart after
//! 5s; restart-redis at 50%; reload-balancer at 75%'`, parsed into a
//! timeline of faults before anything starts, so a typo is a bad option
//! (exit 2), never a soak that silently injects nothing.

use std::time::Duration;

/// Most faults one soak may inject (bounds a schedule like `every 1s`
/// over a long soak).
pub const MAX_EVENTS: usize = 2_000;

/// Shortest period of a repeated fault.
const MIN_PERIOD: Duration = Duration::from_secs(1);

/// One fault at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL node `i` (0-based; a deployment's --stop-node-cmd).
    KillNode(usize),
    /// Stop node `i` gracefully (SIGTERM; --stop-node-cmd).
    StopNode(usize),
    /// Start node `i` again.
    StartNode(usize),
    StopRedis,
    StartRedis,
    /// Reload the balancer's configuration (nginx SIGHUP; --reload-balancer-cmd).
    ReloadBalancer,
}

/// A fault and when, from the soak's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub fault: Fault,
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Every(Duration),
    At(Duration),
    AtShare(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    KillNode,
    StopNode,
    RestartRedis,
    ReloadBalancer,
}

/// The timeline of `spec` over a soak of `duration` with `nodes` nodes:
/// events in time order. Node faults take the nodes in turn; a stopped
/// node is started again `restart after` later (default 5 s); Redis is
/// started again `down` later (default 1 s).
pub fn schedule(spec: &str, duration: Duration, nodes: usize) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut next_node = 0usize;
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (action, when, after) = parse_item(item)?;
        let instants: Vec<Duration> = match when {
            When::Every(p) => {
                let mut v = Vec::new();
                let mut t = p;
                while t < duration && v.len() <= MAX_EVENTS {
                    v.push(t);
                    t += p;
                }
                v
            }
            When::At(t) => vec![t],
            When::AtShare(f) => vec![duration.mul_f64(f)],
        };
        for t in instants {
            if t >= duration {
                return Err(format!(
                    "--chaos {item:?}: at {} is not before the end of the soak ({})",
                    humantime::format_duration(t),
                    humantime::format_duration(duration)
                ));
            }
            match action {
                Action::KillNode | Action::StopNode => {
                    if nodes == 0 {
                        return Err(format!("--chaos {item:?}: the set-up has no nodes to stop"));
                    }
                    let i = next_node % nodes;
                    next_node += 1;
                    let stop = if action == Action::KillNode {
                        Fault::KillNode(i)
                    } else {
                        Fault::StopNode(i)
                    };
                    events.push(Event { at: t, fault: stop });
                    let back = after.unwrap_or(Duration::from_secs(5));
                    events.push(Event {
                        at: t + back,
                        fault: Fault::StartNode(i),
                    });
                }
                Action::RestartRedis => {
                    events.push(Event {
                        at: t,
                        fault: Fault::StopRedis,
                    });
                    events.push(Event {
                        at: t + after.unwrap_or(Duration::from_secs(1)),
                        fault: Fault::StartRedis,
                    });
                }
                Action::ReloadBalancer => events.push(Event {
                    at: t,
                    fault: Fault::ReloadBalancer,
                }),
            }
            if events.len() > MAX_EVENTS {
                return Err(format!(
                    "--chaos: more than {MAX_EVENTS} faults in one soak; lengthen the periods"
                ));
            }
        }
    }
    // Stable: a start scheduled at the same instant as a stop stays after it.
    events.sort_by_key(|e| e.at);
    Ok(events)
}

/// `ACTION every DUR[, restart after DUR]`, `ACTION at DUR|N%[, ...]`.
fn parse_item(item: &str) -> Result<(Action, When, Option<Duration>), String> {
    let bad = |why: &str| {
        format!(
            "--chaos {item:?}: {why} (e.g. 'kill-node every 30s, restart after 5s; restart-redis at 50%; reload-balancer at 75%')"
        )
    };
    let mut parts = item.splitn(2, ',');
    let head = parts.next().unwrap_or("").trim();
    let tail = parts.next().map(str::trim);
    let words: Vec<&str> = head.split_whitespace().collect();
    let [action, kind, value] = words[..] else {
        return Err(bad("expected ACTION every DURATION or ACTION at TIME"));
    };
    let action = match action {
        "kill-node" => Action::KillNode,
        "stop-node" => Action::StopNode,
        "restart-redis" => Action::RestartRedis,
        "reload-balancer" => Action::ReloadBalancer,
        _ => {
            return Err(bad(
                "the faults are kill-node, stop-node, restart-redis and reload-balancer",
            ));
        }
    };
    let when = match kind {
        "every" => {
            let p = duration(value).ok_or_else(|| bad("a period such as 30s"))?;
            if p < MIN_PERIOD {
                return Err(bad("the period is at least 1s"));
            }
            When::Every(p)
        }
        "at" => match value.strip_suffix('%') {
            Some(n) => match n.parse::<f64>() {
                Ok(f) if (0.0..100.0).contains(&f) => When::AtShare(f / 100.0),
                _ => return Err(bad("a share of the soak from 0% to 99%")),
            },
            None => When::At(duration(value).ok_or_else(|| bad("a time such as 90s or 50%"))?),
        },
        _ => return Err(bad("expected `every` or `at`")),
    };
    let after = match tail {
        None => None,
        Some(t) => {
            let words: Vec<&str> = t.split_whitespace().collect();
            let value = match (action, &words[..]) {
                (Action::KillNode | Action::StopNode, ["restart", "after", v]) => v,
                (Action::RestartRedis, ["down", v]) => v,
                (Action::KillNode | Action::StopNode, _) => {
                    return Err(bad("after the comma: restart after DURATION"));
                }
                (Action::RestartRedis, _) => return Err(bad("after the comma: down DURATION")),
                (Action::ReloadBalancer, _) => {
                    return Err(bad("reload-balancer takes nothing after the time"));
                }
            };
            Some(duration(value).ok_or_else(|| bad("a duration such as 5s"))?)
        }
    };
    Ok((action, when, after))
}

fn duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| *d <= Duration::from_secs(7 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_issues_example_becomes_a_timeline() {
        let ev = schedule(
            "kill-node every 30s, restart after 5s; restart-redis at 50%; reload-balancer at 75%",
            s(100),
            3,
        )
        .unwrap();
        let want = [
            (s(30), Fault::KillNode(0)),
            (s(35), Fault::StartNode(0)),
            (s(50), Fault::StopRedis),
            (s(51), Fault::StartRedis),
            (s(60), Fault::KillNode(1)),
            (s(65), Fault::StartNode(1)),
            (s(75), Fault::ReloadBalancer),
            (s(90), Fault::KillNode(2)),
            (s(95), Fault::StartNode(2)),
        ];
        let got: Vec<_> = ev.iter().map(|e| (e.at, e.fault)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn nodes_are_taken_in_turn_and_defaults_apply() {
        let ev = schedule(
            "stop-node every 10s; restart-redis at 5s, down 2s",
            s(35),
            2,
        )
        .unwrap();
        let got: Vec<_> = ev.iter().map(|e| (e.at, e.fault)).collect();
        assert_eq!(
            got,
            [
                (s(5), Fault::StopRedis),
                (s(7), Fault::StartRedis),
                (s(10), Fault::StopNode(0)),
                (s(15), Fault::StartNode(0)),
                (s(20), Fault::StopNode(1)),
                (s(25), Fault::StartNode(1)),
                (s(30), Fault::StopNode(0)),
                (s(35), Fault::StartNode(0)),
            ]
        );
        assert!(schedule("", s(10), 3).unwrap().is_empty());
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (spec, want) in [
            ("explode-node every 5s", "the faults are"),
            ("kill-node every", "expected ACTION every"),
            ("kill-node every 500ms", "at least 1s"),
            ("kill-node every soon", "a period such as"),
            ("kill-node at 150%", "from 0% to 99%"),
            ("kill-node at 2m", "not before the end"),
            ("kill-node every 5s, wait 1s", "restart after"),
            ("restart-redis at 5s, restart after 1s", "down DURATION"),
            ("reload-balancer at 5s, down 1s", "takes nothing"),
            ("kill-node sometimes 5s", "`every` or `at`"),
        ] {
            let e = schedule(spec, s(60), 3).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert!(schedule("kill-node every 5s", s(60), 0).is_err());
        let e = schedule("reload-balancer every 1s", s(3000), 3).unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }
}
