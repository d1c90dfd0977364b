//! Per-message costs of the wire protocol, the work both the node and
//! loadgen do for every frame: reading frames with the shared small-buffer
//! reader (`protocol::wsframe`), masking, writing frames (fastwebsockets,
//! which both sides write with), decoding every client message kind (the
//! node's side), parsing every node message kind into the typed
//! `ServerMsg` (what loadgen's scenario client does), and checking chunk
//! text. Every group declares its throughput: frames or messages
//! (elements), or bytes for masking and chunk text.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fastwebsockets::{Frame, OpCode, Payload};
use protocol::chunk::{chunk_text, verify_chunk};
use protocol::wsframe::{FrameBuf, Masking, apply_mask};
use protocol::{ServerMsg, decode_client};
use std::hint::black_box;
use wsbench_benches::samples::{client_msgs, server_msgs, text_frames};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Frames per iteration of `wsframe_read`.
const FRAMES: usize = 64;

/// Read every frame of `bytes` as a connection would: copy what fits into
/// the reader's spare room (a socket read), take the whole frames out.
fn read_all(bytes: &[u8], masking: Masking) -> usize {
    let mut buf = FrameBuf::new(1 << 20, masking);
    let mut rest = bytes;
    let mut frames = 0;
    loop {
        match buf.next_frame() {
            Ok(Some(f)) => {
                black_box(buf.payload(&f));
                frames += 1;
            }
            Ok(None) if rest.is_empty() => return frames,
            Ok(None) => {
                let spare = buf.spare();
                let n = spare.len().min(rest.len());
                spare[..n].copy_from_slice(&rest[..n]);
                buf.filled(n);
                rest = &rest[n..];
            }
            Err(e) => panic!("bench frames are valid: {e}"),
        }
    }
}

fn wsframe_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("wsframe_read");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for len in [100usize, 4096] {
        let cases = [
            (
                "masked",
                text_frames(FRAMES, len, Some(KEY)),
                Masking::Required,
            ),
            ("unmasked", text_frames(FRAMES, len, None), Masking::Either),
        ];
        for (name, bytes, masking) in cases {
            assert_eq!(read_all(&bytes, masking), FRAMES);
            g.bench_with_input(BenchmarkId::new(name, len), &bytes, |b, bytes| {
                b.iter(|| read_all(black_box(bytes), masking))
            });
        }
    }
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for len in [128usize, 4096] {
        let mut buf = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("apply_mask", len), &len, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY))
        });
        g.bench_with_input(
            BenchmarkId::new("fastwebsockets_unmask", len),
            &len,
            |b, _| b.iter(|| fastwebsockets::unmask(black_box(&mut buf), KEY)),
        );
    }
    g.finish();
}

/// fastwebsockets' framing into a reused buffer: what the node does for
/// every frame it sends (unmasked) and loadgen for every message (masked).
fn frame_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_write");
    g.throughput(Throughput::Elements(1));
    for len in [100usize, 4096] {
        let payload = vec![b'x'; len];
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("server_text", len), &len, |b, _| {
            b.iter(|| {
                let mut f = Frame::text(Payload::Borrowed(black_box(&payload)));
                f.write(&mut out).len()
            })
        });
        let mut body = payload.clone();
        g.bench_with_input(BenchmarkId::new("client_text_masked", len), &len, |b, _| {
            b.iter(|| {
                let mut f = Frame::new(
                    true,
                    OpCode::Text,
                    Some(KEY),
                    Payload::BorrowedMut(black_box(&mut body)),
                );
                f.mask();
                f.write(&mut out).len()
            })
        });
    }
    g.finish();
}

/// The node's decoding of every client message kind, plus the seed's
/// plain-text form and a malformed frame.
fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_client");
    g.throughput(Throughput::Elements(1));
    let mut frames: Vec<(&str, String)> = client_msgs()
        .into_iter()
        .map(|(name, m)| {
            let json = m.to_json();
            assert_eq!(decode_client(&json), Ok(m), "{name} decodes");
            (name, json)
        })
        .collect();
    frames.push(("plain_text", "Test message".into()));
    frames.push(("bad_json", r#"{"type":"echo","id":"#.into()));
    for (name, frame) in &frames {
        g.bench_with_input(BenchmarkId::from_parameter(name), frame, |b, f| {
            b.iter(|| decode_client(black_box(f)))
        });
    }
    g.finish();
}

/// Every node message kind into the typed `ServerMsg`.
fn parse_node_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_msg_from_json");
    g.throughput(Throughput::Elements(1));
    for (name, m) in server_msgs() {
        let json = m.to_json();
        assert_eq!(ServerMsg::from_json(&json).ok(), Some(m), "{name} parses");
        g.bench_with_input(BenchmarkId::from_parameter(name), &json, |b, j| {
            b.iter(|| ServerMsg::from_json(black_box(j)))
        });
    }
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

criterion_group!(
    benches,
    wsframe_read,
    mask,
    frame_write,
    decode,
    parse_node_frames,
    chunks
);
criterion_main!(benches);
