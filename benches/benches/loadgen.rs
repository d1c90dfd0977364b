//! Per-message costs on loadgen's side: reading a frame with its small
//! buffer, classifying a reply (built-in mode and protocol profile),
//! rendering a profile's message, and recording a latency. Throughput is
//! per message (or per frame), so criterion reports rates.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loadgen::engine::reply::classify;
use loadgen::engine::stats::{new_hist, record};
use loadgen::net::frames::FrameReader;
use loadgen::opts::Mode;
use loadgen::placeholders::Values;
use loadgen::profile::builtin::{self, ChatAsk};
use loadgen::profile::classify::Keys;
use loadgen::profile::json::Json;
use loadgen::profile::rules::Profile;
use std::hint::black_box;

const ECHO_PROFILE: &str = include_str!("../../profiles/echo.toml");
const GRAPHQL_PROFILE: &str = include_str!("../../profiles/graphql-ws.toml");
const ECHO_REPLY: &[u8] = br#"{"type":"echo","id":123456,"ts":98765432,"payload":"98765440.xxxxxxxxxxxxxxxx","node_id":"node1-8081"}"#;

fn replies(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify_reply");
    g.throughput(Throughput::Elements(1));
    let filler = "xxxxxxxxxxxxxxxx";
    let keys = Keys {
        id_prefix: "",
        filler,
    };
    let builtin_echo = builtin::profile(Mode::Echo, ChatAsk::default()).expect("built in");
    g.bench_function("builtin_echo", |b| {
        b.iter(|| classify(&builtin_echo, black_box(ECHO_REPLY), &keys))
    });
    let chat = builtin::profile(Mode::Chat, ChatAsk::default()).expect("built in");
    let text = protocol::chunk::chunk_text("ab12-7-3", 5, 24);
    let chunk = format!(
        r#"{{"type":"chunk","message_id":"ab12-7-3","index":5,"text":"{text}","node_id":"node1-8081"}}"#
    );
    let chat_keys = Keys {
        id_prefix: "ab12-7-",
        filler,
    };
    g.bench_function("builtin_chat_chunk", |b| {
        b.iter(|| classify(&chat, black_box(chunk.as_bytes()), &chat_keys))
    });
    let echo = Profile::parse("echo.toml", ECHO_PROFILE).expect("shipped profile");
    g.bench_function("profile_echo", |b| {
        b.iter(|| classify(&echo, black_box(ECHO_REPLY), &keys))
    });
    // What reading a reply costs before any rule: serde_json's value tree
    // (one allocation per key and string) against the borrowed tree
    // profiles use (one per object).
    g.bench_function("parse_value_tree", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(ECHO_REPLY)).is_ok())
    });
    g.bench_function("parse_borrowed_tree", |b| {
        b.iter(|| Json::parse(black_box(ECHO_REPLY)).is_some())
    });
    let gql = Profile::parse("graphql-ws.toml", GRAPHQL_PROFILE).expect("shipped profile");
    let next = br#"{"id":"42","type":"next","payload":{"data":{"ticks":3}}}"#;
    g.bench_function("profile_graphql_next", |b| {
        b.iter(|| classify(&gql, black_box(next), &keys))
    });
    g.finish();
}

fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_message");
    g.throughput(Throughput::Elements(1));
    let p = Profile::parse("echo.toml", ECHO_PROFILE).expect("shipped profile");
    let filler = "x".repeat(16);
    let mut out = String::new();
    g.bench_function("profile_echo", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let v = Values {
                conn: 7,
                session: "lg_ab12_7",
                run: "ab12",
                seq,
                ts_us: seq * 100_000,
                payload: &filler,
                group: 0,
                sent_us: seq * 100_000,
                last_index: 0,
            };
            p.message.render_into(&mut out, black_box(&v));
            out.len()
        })
    });
    g.finish();
}

fn histogram(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(1));
    let mut h = new_hist();
    g.bench_function("record", |b| {
        let mut v = 1u64;
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            record(&mut h, black_box(v % 10_000_000));
        })
    });
    g.finish();
}

/// `n` unmasked server text frames of `len` bytes each, back to back.
fn frames(n: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(0x81);
        if len < 126 {
            out.push(len as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend(std::iter::repeat_n(b'x', len));
    }
    out
}

fn read_frames(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("read_frame");
    const N: usize = 1000;
    for len in [64usize, 1024] {
        let bytes = frames(N, len);
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

criterion_group!(benches, replies, render, histogram, read_frames);
criterion_main!(benches);
