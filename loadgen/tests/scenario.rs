//! `loadgen scenario`: the seed's ten scenarios against a local cluster of
//! real processes (redis-server, three wsnode nodes, nginx), and proof that
//! each check can fail: nodes broken on purpose (`wsnode --test-fault`)
//! make the matching scenario FAIL, and a deployment without fault commands
//! gets SKIPPED, never PASS, for the scenarios that need them.

#[path = "../../cluster/tests/common/mod.rs"]
mod common;

use clap::Parser;
use cluster::{Balance, ClusterOptions, LocalCluster};
use loadgen::scenario::SuiteReport;
use loadgen::scenario::evidence::{Status, Verdict};
use std::sync::Mutex;

/// One suite at a time: each starts its own cluster, and the timing
/// criteria (heartbeat, cleanup, latency) should not compete for 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario_opts(args: &[&str]) -> loadgen::scenario::ScenarioOpts {
    let wsnode = common::wsnode().to_str().expect("utf-8 path").to_string();
    let opts = loadgen::Opts::try_parse_from(
        ["loadgen", "scenario", "--quiet", "--node-program", &wsnode]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .expect("valid options");
    match opts.command {
        Some(loadgen::Command::Scenario(s)) => *s,
        other => panic!("not a scenario command: {other:?}"),
    }
}

fn suite(args: &[&str]) -> SuiteReport {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    loadgen::scenario::run_suite(&scenario_opts(args)).expect("the suite runs")
}

fn verdict<'a>(r: &'a SuiteReport, name: &str) -> &'a Verdict {
    r.verdicts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no verdict for {name}"))
}

fn unmet(v: &Verdict) -> Vec<&str> {
    v.criteria
        .iter()
        .filter(|c| !c.met)
        .map(|c| c.text.as_str())
        .collect()
}

#[test]
fn scenario_all_passes_against_healthy_nodes_and_writes_the_seed_tables() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scenarios.json");
    let wsnode = common::wsnode().to_str().unwrap().to_string();
    let opts = loadgen::Opts::try_parse_from([
        "loadgen",
        "scenario",
        "all",
        "--quiet",
        "--node-program",
        &wsnode,
        "--load-conns",
        "50",
        "--load-duration",
        "3s",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let outcome = {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        loadgen::run(opts).expect("the suite runs")
    };
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let verdicts = doc["verdicts"].as_array().unwrap();
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| v["status"] != "PASS")
        .map(|v| format!("{}: {}", v["name"], v))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(outcome.exit_code, 0);
    // The seed's ten, then the soak under its chaos schedule.
    assert_eq!(verdicts.len(), 11);
    assert_eq!(verdicts[10]["name"], "soak");
    assert_eq!(doc["summary"].as_array().unwrap().len(), 11);
    assert_eq!(doc["summary"][5]["test"], "Redis Failure");
    let checklist = doc["checklist"].as_array().unwrap();
    assert!(
        checklist
            .iter()
            .any(|c| c["item"] == "Graceful failover" && c["met"] == true)
    );
    // Recovery Time and Failover Time were measured and graded; failover
    // also times the recovery of the answer its stop cut.
    for (name, i, metric) in [
        ("recovery", 0, "Recovery Time"),
        ("failover", 0, "Failover Time"),
        ("failover", 1, "Recovery Time"),
    ] {
        let v = verdicts.iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(v["timings"][i]["metric"], metric, "{v}");
        assert_ne!(v["timings"][i]["grade"], "Fail", "{v}");
    }
}

#[test]
fn a_node_dropping_every_50th_chunk_fails_connectivity_recovery_broadcast_ordering_and_soak() {
    let r = suite(&[
        "connectivity",
        "broadcast",
        "recovery",
        "ordering",
        "soak",
        "--soak-duration",
        "6s",
        "--soak-calm",
        "4s",
        "--chaos",
        "kill-node at 2s, restart after 1s",
        "--node-arg=--test-fault",
        "--node-arg=drop-every-50th-chunk",
    ]);
    for name in ["connectivity", "broadcast", "recovery", "ordering", "soak"] {
        assert_eq!(
            verdict(&r, name).status,
            Status::Fail,
            "{name}: {:#?}",
            verdict(&r, name)
        );
    }
    let recovery = unmet(verdict(&r, "recovery"));
    assert!(recovery.contains(&"Recovery successful"), "{recovery:?}");
    assert!(
        recovery.contains(&"Chunks cached correctly"),
        "{recovery:?}"
    );
    let ordering = unmet(verdict(&r, "ordering"));
    assert!(ordering.contains(&"No missing chunks"), "{ordering:?}");
    assert!(!ordering.contains(&"No duplicate indices"), "{ordering:?}");
    // Every answer still accounted for, with its reason: only the calm
    // after the chaos shows that answers keep failing.
    let soak = unmet(verdict(&r, "soak"));
    assert_eq!(
        soak,
        ["After the chaos, answers complete and nothing fails"],
        "{:#?}",
        verdict(&r, "soak")
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn nodes_that_never_clean_up_fail_cleanup_only() {
    let r = suite(&[
        "sticky",
        "cleanup",
        "--cleanup-within",
        "6s",
        "--node-arg=--test-fault",
        "--node-arg=no-session-cleanup",
    ]);
    assert_eq!(
        verdict(&r, "sticky").status,
        Status::Pass,
        "{:#?}",
        verdict(&r, "sticky")
    );
    let cleanup = verdict(&r, "cleanup");
    assert_eq!(cleanup.status, Status::Fail, "{cleanup:#?}");
    let missed = unmet(cleanup);
    assert!(missed.contains(&"Redis entry removed"), "{missed:?}");
    // The heartbeat still works: only the cleanup job is broken.
    assert!(
        !missed.contains(&"Stale session detected within 30s (heartbeat)"),
        "{missed:?}"
    );
}

#[test]
fn a_deployment_without_fault_commands_skips_the_fault_scenarios_and_runs_the_rest() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut copts = ClusterOptions::new(common::wsnode());
    copts.balance = Balance::IpHash;
    let c = LocalCluster::start(copts).expect("a cluster for the deployment");
    let redis = c.redis().unwrap().url();
    let url = c.ws_url("");
    let mut args = vec![
        "loadgen".to_string(),
        "scenario".into(),
        "connectivity".into(),
        "failover".into(),
        "redis-failure".into(),
        "load".into(),
        "--load-conns".into(),
        "20".into(),
        "--load-duration".into(),
        "2s".into(),
        "--quiet".into(),
        "--url".into(),
        url,
        "--redis".into(),
        redis,
    ];
    for n in c.nodes() {
        args.extend(["--node-url".into(), n.url()]);
    }
    let opts = match loadgen::Opts::try_parse_from(&args).unwrap().command {
        Some(loadgen::Command::Scenario(s)) => *s,
        _ => unreachable!(),
    };
    let r = loadgen::scenario::run_suite(&opts).expect("the suite runs");
    for name in ["connectivity", "load"] {
        let v = verdict(&r, name);
        assert_eq!(v.status, Status::Pass, "{v:#?}");
    }
    for (name, option) in [
        ("failover", "--stop-node-cmd"),
        ("redis-failure", "--stop-redis-cmd"),
    ] {
        let v = verdict(&r, name);
        assert_eq!(v.status, Status::Skipped, "{v:#?}");
        assert!(
            v.reason.as_deref().unwrap_or_default().contains(option),
            "{v:#?}"
        );
    }
    assert_eq!(
        r.exit_code(),
        0,
        "skipped scenarios did not run: nothing failed"
    );
    let text = r.render(false);
    assert!(text.contains("⏭ SKIPPED"), "{text}");
}

/// The failover criteria about the answer its stop cuts.
const TAKE_OVER: [&str; 2] = [
    "Answer cut by the stop completes on another node",
    "Taken over once, with a higher fencing token",
];

#[test]
fn a_crashed_node_fails_over_as_a_stopped_one_does() {
    let r = suite(&["failover", "--crash"]);
    let v = verdict(&r, "failover");
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(v.evidence.iter().any(|e| e.contains("SIGKILL")), "{v:#?}");
    for c in TAKE_OVER {
        assert!(
            v.criteria.iter().any(|x| x.text == c && x.met),
            "{c}: {v:#?}"
        );
    }
}

#[test]
fn nodes_that_skip_fencing_fail_failover_on_the_fencing_token_alone() {
    let r = suite(&[
        "failover",
        "--crash",
        "--node-arg=--test-fault",
        "--node-arg=skip-fencing",
    ]);
    let v = verdict(&r, "failover");
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    // The answer itself completes: only the token shows the broken fencing.
    assert_eq!(unmet(v), [TAKE_OVER[1]], "{v:#?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn nodes_that_crash_on_takeover_fail_failover() {
    let r = suite(&[
        "failover",
        "--node-arg=--test-fault",
        "--node-arg=crash-on-takeover",
    ]);
    let v = verdict(&r, "failover");
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    // Each survivor that claims the cut answer dies: the client either finds
    // no node to come back to, or loses the one it recovers on.
    let missed = unmet(v);
    assert!(
        missed.contains(&"Client reconnects successfully") || missed.contains(&TAKE_OVER[0]),
        "{v:#?}"
    );
}

#[test]
fn contradictory_set_ups_are_refused_before_anything_starts() {
    for args in [
        &[
            "scenario",
            "all",
            "--cluster",
            "local",
            "--url",
            "ws://127.0.0.1:1/ws/chat",
        ][..],
        &["scenario", "all", "--cluster", "external"][..],
        &["scenario", "all", "--stop-node-cmd", "true"][..],
        &[
            "scenario",
            "all",
            "--url",
            "ws://127.0.0.1:1/ws/chat",
            "--crash",
        ][..],
        &["scenario", "soak", "--chaos", "explode-node every 5s"][..],
        &["scenario", "soak", "--chaos", "kill-node at 30s"][..],
        &["scenario", "soak", "--reload-balancer-cmd", "true"][..],
        &["scenario", "soak", "--soak-rate", "0"][..],
    ] {
        let opts =
            loadgen::Opts::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
                .unwrap();
        let err = loadgen::run(opts)
            .err()
            .unwrap_or_else(|| panic!("{args:?} accepted"));
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
    }
}
