//! Tests of `monitor::procs`.
use super::*;

/// A process that is not local, with figures set by the test.
fn remote(m: &mut Monitor) -> Slot {
    let slot: Slot = Arc::default();
    m.add(Spec {
        role: ProcRole::Node,
        label: "n".into(),
        pid: 7,
        node_id: Some("node7".into()),
        local: false,
        reports: Some(slot.clone()),
        share: 1.0,
    });
    slot
}

fn set(slot: &Slot, r: Option<Reading>) {
    *slot.lock().unwrap() = r;
}

fn reading(rss: u64, conns: u64, total: u64) -> Option<Reading> {
    Some(Reading {
        cpu_pct: 10.0,
        rss_bytes: rss,
        connections: Some(conns),
        connections_total: Some(total),
        replaced: false,
    })
}

#[test]
fn memory_per_connection_uses_the_nodes_own_connection_count() {
    let mut m = Monitor::new();
    let slot = remote(&mut m);
    set(&slot, reading(1_000_000, 0, 0));
    m.baseline();
    // loadgen holds 300 connections, but this node (behind a balancer) 100.
    set(&slot, reading(2_000_000, 100, 100));
    m.sample(300, 1.0);
    let r = &m.report(300)[0];
    assert_eq!(r.bytes_per_conn, Some(10_000.0));
    assert_eq!((r.conns_at_sample, r.name()), (100, "node7"));
    assert_eq!(r.memory_note, None);
}

#[test]
fn a_process_that_died_keeps_its_cpu_but_has_no_memory_figure() {
    let mut m = Monitor::new();
    let slot = remote(&mut m);
    set(&slot, reading(1_000_000, 0, 0));
    m.baseline();
    set(&slot, reading(2_000_000, 50, 50));
    m.sample(50, 1.0);
    // Restarted with a fresh, smaller RSS: another process.
    set(
        &slot,
        Some(Reading {
            replaced: true,
            ..reading(500_000, 50, 0).unwrap()
        }),
    );
    m.sample(50, 2.0);
    let r = &m.report(50)[0];
    assert_eq!(r.bytes_per_conn, None);
    assert_eq!(r.cpu_pct, Some(10.0));
    assert_eq!(r.died_at_s, Some(2.0));
    assert!(r.memory_note.as_deref().unwrap().contains("2.0 s"), "{r:?}");
}

#[test]
fn warm_processes_and_shrinking_ones_have_no_memory_figure() {
    let mut m = Monitor::new();
    let warm = remote(&mut m);
    set(&warm, reading(1_000_000, 0, 40));
    let shrinking = remote(&mut m);
    set(&shrinking, reading(3_000_000, 0, 0));
    m.baseline();
    set(&warm, reading(2_000_000, 10, 50));
    set(&shrinking, reading(2_000_000, 10, 10));
    m.sample(20, 1.0);
    let r = m.report(20);
    assert_eq!((r[0].bytes_per_conn, r[1].bytes_per_conn), (None, None));
    assert!(
        r[0].memory_note.as_deref().unwrap().contains("warm"),
        "{r:?}"
    );
    assert!(
        r[1].memory_note.as_deref().unwrap().contains("below"),
        "{r:?}"
    );
}

#[test]
fn a_silent_remote_node_that_answers_again_is_alive() {
    let mut m = Monitor::new();
    let slot = remote(&mut m);
    set(&slot, reading(1_000_000, 0, 0));
    m.baseline();
    set(&slot, None);
    m.sample(10, 1.0);
    set(&slot, reading(1_100_000, 10, 10));
    m.sample(10, 2.0);
    let r = &m.report(10)[0];
    assert_eq!(r.died_at_s, None);
    assert_eq!(r.bytes_per_conn, Some(10_000.0));
}

#[test]
fn a_local_process_that_exits_is_dead_for_good() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep runs");
    let mut m = Monitor::new();
    m.watch(ProcRole::Node, "sleeper", child.id());
    m.baseline();
    m.sample(5, 1.0);
    // Killed and not reaped yet: a zombie, which sysinfo still lists.
    let _ = child.kill();
    std::thread::sleep(std::time::Duration::from_millis(100));
    m.sample(5, 2.0);
    let _ = child.wait();
    m.sample(5, 3.0);
    let r = &m.report(5)[0];
    assert_eq!(r.died_at_s, Some(2.0), "{r:?}");
    assert_eq!(r.bytes_per_conn, None);
    assert!(r.cpu_pct.is_some(), "CPU until its death: {r:?}");
}

#[test]
fn cpu_is_read_over_the_plateau_not_the_connection_storm() {
    let mut m = Monitor::new();
    let slot = remote(&mut m);
    set(&slot, reading(1_000_000, 0, 0));
    m.baseline();
    // A storm of handshakes at 90 % CPU, then the hold at 20-30 %.
    for (t, open, cpu) in [(1.0, 400, 90.0), (2.0, 1000, 20.0), (3.0, 1000, 30.0)] {
        set(
            &slot,
            Some(Reading {
                cpu_pct: cpu,
                ..reading(2_000_000, open, open).unwrap()
            }),
        );
        m.sample(open as i64, t);
    }
    let r = &m.report(1000)[0];
    assert_eq!(
        (r.cpu_pct, r.cpu_pct_max),
        (Some(25.0), Some(90.0)),
        "{r:?}"
    );
    // Without a plateau (a peak never sampled): every second counts.
    let r = &m.report(5000)[0];
    assert_eq!(r.cpu_pct.map(|c| c.round()), Some(47.0), "{r:?}");
    let h = m.host(1000).expect("host figures");
    assert!(h.plateau, "{h:?}");
    assert!(!m.host(5000).expect("host figures").plateau);
}
