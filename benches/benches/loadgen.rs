//! Per-message costs on loadgen's side: reading a frame with its small
//! buffer, classifying a reply (every node message kind under the built-in
//! chat mode, the echo reply under the built-in echo mode and profiles),
//! rendering every client message kind from its profile template,
//! recording a latency, and filling the report template once a run ends.
//! Throughput is per message, frame, sample or report, so criterion
//! reports rates.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loadgen::engine::plan::Plan;
use loadgen::engine::reply::{Reply, classify};
use loadgen::engine::stats::{Recorder, new_hist, record};
use loadgen::monitor::procs::ProcReport;
use loadgen::net::frames::FrameReader;
use loadgen::opts::{FailOn, GradePhase, Mode};
use loadgen::placeholders::Values;
use loadgen::profile::builtin::{self, ChatAsk};
use loadgen::profile::classify::Keys;
use loadgen::profile::json::Json;
use loadgen::profile::rules::Profile;
use loadgen::report::build::build;
use loadgen::report::grades::Thresholds;
use loadgen::report::inputs::Inputs;
use loadgen::report::phases::Phases;
use loadgen::report::template;
use std::hint::black_box;
use std::time::Duration;
use wsbench_benches::samples::{FILLER, server_msgs, text_frames};

const ECHO_PROFILE: &str = include_str!("../../profiles/echo.toml");
const GRAPHQL_PROFILE: &str = include_str!("../../profiles/graphql-ws.toml");
const ECHO_REPLY: &[u8] = br#"{"type":"echo","id":123456,"ts":98765432,"payload":"98765440.xxxxxxxxxxxxxxxx","node_id":"node1-8081"}"#;

fn replies(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify_reply");
    g.throughput(Throughput::Elements(1));
    let keys = Keys {
        id_prefix: "",
        filler: FILLER,
    };
    let chat_keys = Keys {
        id_prefix: "ab12-7-",
        filler: FILLER,
    };
    let builtin_echo = builtin::profile(Mode::Echo, ChatAsk::default()).expect("built in");
    let chat = builtin::profile(Mode::Chat, ChatAsk::default()).expect("built in");
    // Every node message kind as the load engine reads it: the echo reply
    // under the echo mode, the rest under the chat mode.
    for (name, m) in server_msgs() {
        let (mode, p, k) = match name {
            "echo" => ("builtin_echo", &builtin_echo, &keys),
            _ => ("builtin_chat", &chat, &chat_keys),
        };
        let frame = m.to_json();
        let reply = classify(p, frame.as_bytes(), k);
        assert!(
            !matches!(reply, Reply::Fault { .. }),
            "{name} under {mode} is understood: {reply:?}"
        );
        g.bench_with_input(BenchmarkId::new(mode, name), &frame, |b, f| {
            b.iter(|| classify(p, black_box(f.as_bytes()), k))
        });
    }
    let echo = Profile::parse("echo.toml", ECHO_PROFILE).expect("shipped profile");
    g.bench_function("profile_echo", |b| {
        b.iter(|| classify(&echo, black_box(ECHO_REPLY), &keys))
    });
    // What reading a reply costs before any rule: serde_json's value tree
    // (one allocation per key and string) against the borrowed tree
    // profiles use (one per object; one pass for a plain object).
    g.bench_function("parse_value_tree", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(ECHO_REPLY)).is_ok())
    });
    g.bench_function("parse_borrowed_tree", |b| {
        b.iter(|| Json::parse(black_box(ECHO_REPLY)).is_some())
    });
    // The same tree through serde alone, without the one-pass reading of
    // a plain object that `Json::parse` tries first.
    g.bench_function("parse_borrowed_tree_serde", |b| {
        b.iter(|| Json::parse_serde(black_box(ECHO_REPLY)).is_some())
    });
    let gql = Profile::parse("graphql-ws.toml", GRAPHQL_PROFILE).expect("shipped profile");
    let next = br#"{"id":"42","type":"next","payload":{"data":{"ticks":3}}}"#;
    g.bench_function("profile_graphql_next", |b| {
        b.iter(|| classify(&gql, black_box(next), &keys))
    });
    g.finish();
}

/// Every client message kind as loadgen writes it: its profile's template
/// rendered with the message's values (the built-in modes' echo, chat and
/// chat's resume message; the shipped echo profile).
fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_message");
    g.throughput(Throughput::Elements(1));
    let echo = builtin::profile(Mode::Echo, ChatAsk::default()).expect("built in");
    let chat = builtin::profile(Mode::Chat, ChatAsk::default()).expect("built in");
    let recover = &chat.resume.as_ref().expect("chat resumes").send;
    let profile_echo = Profile::parse("echo.toml", ECHO_PROFILE).expect("shipped profile");
    let templates = [
        ("builtin_echo", &echo.message),
        ("builtin_chat", &chat.message),
        ("builtin_recover", recover),
        ("profile_echo", &profile_echo.message),
    ];
    let values = |seq: u64| Values {
        conn: 7,
        session: "lg_ab12_7",
        run: "ab12",
        seq,
        ts_us: seq * 100_000,
        payload: FILLER,
        group: 0,
        sent_us: seq * 100_000,
        last_index: 5,
    };
    // The node decodes what the built-in modes render.
    for (name, t) in &templates[..3] {
        let text = t.render(&values(3));
        assert!(
            protocol::decode_client(&text).is_ok(),
            "wsnode decodes {name}"
        );
    }
    let mut out = String::new();
    for (name, t) in templates {
        g.bench_function(name, |b| {
            let mut seq = 0u64;
            b.iter(|| {
                seq += 1;
                out.clear();
                t.render_into(&mut out, black_box(&values(seq)));
                out.len()
            })
        });
    }
    g.finish();
}

fn histogram(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(1));
    // A spread of latencies (1 µs to 10 s) from a cheap generator.
    let next = |v: &mut u64| {
        *v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
        (*v >> 33) % 10_000_000 + 1
    };
    let mut h = new_hist();
    g.bench_function("hdrhistogram_record", |b| {
        let mut v = 1u64;
        b.iter(|| h.record(black_box(next(&mut v))))
    });
    let mut h = new_hist();
    g.bench_function("record", |b| {
        let mut v = 1u64;
        b.iter(|| record(&mut h, black_box(next(&mut v))))
    });
    // One answered message: both latency views and this second's views.
    let mut rec = Recorder::default();
    g.bench_function("recorder_latency", |b| {
        let mut v = 1u64;
        b.iter(|| {
            let us = next(&mut v);
            rec.latency(black_box(us + 50), black_box(us));
        })
    });
    g.finish();
}

/// The seed's results template and the Markdown report, filled from a
/// report of 100,000 recorded messages (once per run, not per message).
fn report(c: &mut Criterion) {
    let mut rec = Recorder::default();
    let mut v = 1u64;
    for _ in 0..100_000 {
        v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
        let us = (v >> 33) % 50_000 + 200;
        rec.latency(us + 30, us);
        record(&mut rec.send_lag, 30);
        rec.counts.sent += 1;
        rec.counts.received += 1;
        rec.counts.ok += 1;
    }
    for _ in 0..1000 {
        record(&mut rec.conn_time, 900);
    }
    let plan = Plan::constant(1000, Duration::from_secs(100), 1.0, None);
    let phases = Phases::new(&plan, 600);
    let thresholds = Thresholds::seed();
    let r = build(
        &rec,
        Inputs {
            started_at: "2026-11-30T10:00:00Z".into(),
            duration_s: 100.0,
            mode: Mode::Echo,
            wait_reply: false,
            reconnect: false,
            rate_per_conn: 1.0,
            payload_size: 16,
            targets: vec!["ws://127.0.0.1:8081/ws/chat".into()],
            environment: "bench".into(),
            workers: 1,
            target_conns: 1000,
            peak_open: 1000,
            resources: Vec::<ProcReport>::new(),
            host: None,
            series: Vec::new(),
            notes: Vec::new(),
            thresholds: &thresholds,
            fail_on: FailOn::Acceptable,
            grade_phase: GradePhase::All,
            phases: &phases,
            min_success_rate: None,
            embedded: true,
            abandoned: 0,
            timeout_us: 5_000_000,
        },
    );
    let mut g = c.benchmark_group("report_render");
    g.throughput(Throughput::Elements(1));
    g.bench_function("results_template", |b| {
        b.iter(|| template::template(black_box(&r)).len())
    });
    g.bench_function("markdown", |b| {
        b.iter(|| template::markdown(black_box(&r)).len())
    });
    g.finish();
}

fn read_frames(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("read_frame");
    const N: usize = 1000;
    for len in [64usize, 1024] {
        let bytes = text_frames(N, len, None);
        g.throughput(Throughput::Elements(N as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &bytes, |b, bytes| {
            b.iter(|| {
                rt.block_on(async {
                    let mut r = FrameReader::new(&bytes[..], 1 << 20);
                    let mut total = 0;
                    for _ in 0..N {
                        let f = r.next().await.expect("a frame");
                        total += r.payload(&f).len();
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, replies, render, histogram, report, read_frames);
criterion_main!(benches);
