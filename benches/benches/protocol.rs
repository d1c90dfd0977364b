//! Per-message costs of the wire protocol, the work both the node and
//! loadgen do for every frame: decoding client frames, parsing node frames,
//! and checking chunk text. Throughput is declared per message, so criterion
//! reports messages per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::chunk::{chunk_text, verify_chunk};
use protocol::{ServerMsg, decode_client};
use std::hint::black_box;

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_client");
    g.throughput(Throughput::Elements(1));
    let frames = [
        (
            "echo",
            r#"{"type":"echo","id":123456789,"ts":1732712345123456,"payload":"0123456789abcdef"}"#,
        ),
        (
            "chat",
            r#"{"type":"chat","message_id":"m-42","text":"hello there","chunks":40,"interval_ms":20}"#,
        ),
        ("plain_text", "Test message"),
        ("bad_json", r#"{"type":"echo","id":"#),
    ];
    for (name, frame) in frames {
        g.bench_with_input(BenchmarkId::from_parameter(name), frame, |b, f| {
            b.iter(|| decode_client(black_box(f)))
        });
    }
    g.finish();
}

fn parse_node_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_msg_from_json");
    g.throughput(Throughput::Elements(1));
    let echo = r#"{"type":"echo","id":123456789,"ts":1732712345123456,"payload":"0123456789abcdef","node_id":"node1-8081"}"#;
    let chunk = ServerMsg::Chunk {
        message_id: "node1-8081-77-a1b2c3d4".into(),
        index: 17,
        text: chunk_text("m", 17, 16),
    }
    .to_json();
    g.bench_function("echo", |b| b.iter(|| ServerMsg::from_json(black_box(echo))));
    g.bench_function("chunk", |b| {
        b.iter(|| ServerMsg::from_json(black_box(&chunk)))
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_text");
    for len in [16usize, 256] {
        let text = chunk_text("node1-8081-77-a1b2c3d4", 17, len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("generate", len), &len, |b, &n| {
            b.iter(|| chunk_text(black_box("node1-8081-77-a1b2c3d4"), 17, n))
        });
        g.bench_with_input(BenchmarkId::new("verify", len), &text, |b, t| {
            b.iter(|| verify_chunk(black_box("node1-8081-77-a1b2c3d4"), 17, black_box(t)))
        });
    }
    g.finish();
}

criterion_group!(benches, decode, parse_node_frames, chunks);
criterion_main!(benches);
