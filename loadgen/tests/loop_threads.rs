//! loadgen's epoll loops are threads of their own (`engine::steady`): one
//! per slot thread, or as many as `--loops` asks, while a run lasts; none
//! once it has ended, and with `--pin` each on its CPU (a leaked
//! thread would outlive every run of a long-lived process, such as a
//! worker or an agent). Alone in this file (its own process), so no other
//! test's run owns a thread it counts.

mod support;

use clap::Parser;
use loadgen::Opts;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn a_run_has_the_loop_threads_it_needs_and_leaves_none() {
    let node = support::start_wsnode(&[]);
    // (--threads, --loops, loops expected).
    for (threads, loops, want) in [(1, None, 1), (2, None, 2), (2, Some(1), 1), (1, Some(3), 3)] {
        // The most loop threads seen while the run lasts.
        let most = Arc::new(AtomicUsize::new(0));
        let mut args = format!(
            "loadgen --quiet --url {} --threads {threads} --conns 4 --rate 10 --duration 1s",
            node.url()
        );
        if let Some(n) = loops {
            args.push_str(&format!(" --loops {n}"));
        }
        let report = run_watched(&args, {
            let most = most.clone();
            move || {
                most.fetch_max(threads_named("loadgen-loop"), Ordering::Relaxed);
            }
        });
        assert_eq!(report.connections.in_loop, 4, "every session ran in a loop");
        // The report says how many loops ran.
        let said = format!("({want} epoll loop{})", if want == 1 { "" } else { "s" });
        assert!(report.environment.contains(&said), "{}", report.environment);
        assert_eq!(
            most.load(Ordering::Relaxed),
            want,
            "--threads {threads} --loops {loops:?}"
        );
        // Gone when the run returns (a moment's grace for the exit itself).
        let deadline = Instant::now() + Duration::from_secs(2);
        while threads_named("loadgen-loop") > 0 {
            assert!(
                Instant::now() < deadline,
                "--threads {threads} --loops {loops:?}: a loop thread outlived its run"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // --pin: loop i on the i-th CPU this process may use, and on it alone.
    let cpus = server::placement::allowed_cpus();
    let n = cpus.len() + 1;
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let args = format!(
        "loadgen --quiet --url {} --threads {n} --conns {} --rate 10 --duration 1s --pin",
        node.url(),
        2 * n
    );
    let report = run_watched(&args, {
        let seen = seen.clone();
        move || {
            for (name, cpus) in allowed_lists("loadgen-loop") {
                seen.lock().unwrap().insert(name, cpus);
            }
        }
    });
    assert_eq!(report.connections.in_loop, 2 * n as u64);
    assert!(
        report.environment.contains("pinned to CPUs"),
        "{}",
        report.environment
    );
    let want: std::collections::BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("loadgen-loop-{i}"),
                cpus[i % cpus.len()].to_string(),
            )
        })
        .collect();
    assert_eq!(*seen.lock().unwrap(), want);
}

/// Run loadgen with `args`, calling `watch` every 10 ms on a thread of its
/// own while the run lasts; its report.
fn run_watched(args: &str, mut watch: impl FnMut() + Send + 'static) -> loadgen::Report {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let done = done.clone();
        move || {
            while !done.load(Ordering::Relaxed) {
                watch();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let opts = Opts::try_parse_from(args.split_whitespace()).expect("valid options");
    let report = loadgen::run(opts)
        .expect("the run succeeds")
        .report
        .expect("a report");
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    report
}

/// Each thread of this process whose name starts with `prefix`, with the
/// CPUs it may run on (`Cpus_allowed_list`).
fn allowed_lists(prefix: &str) -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|t| {
        let path = t.ok()?.path();
        let name = std::fs::read_to_string(path.join("comm")).ok()?;
        let name = name.trim();
        if !name.starts_with(prefix) {
            return None;
        }
        let status = std::fs::read_to_string(path.join("status")).ok()?;
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        Some((name.to_string(), cpus.trim().to_string()))
    })
    .collect()
}
