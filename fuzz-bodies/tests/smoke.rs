//! The fuzz targets' bodies on stable, as a smoke test for CI: each
//! target's committed seeds (fuzz/seeds/TARGET/), then a fixed number of
//! deterministic mutations of them (bit flips, interesting bytes, inserted
//! dictionary tokens from fuzz/dict/, deletions, duplications, splices).
//! Not a substitute for cargo-fuzz's coverage-guided runs (docs/BENCHMARKS.md,
//! "Fuzzing"), but any panic a body hits on these inputs fails the test,
//! and the failing input is printed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// Mutated inputs per target: a few seconds for all four in a debug build.
const MUTATIONS: usize = 20_000;
/// libFuzzer's default `-max_len`.
const MAX_LEN: usize = 4096;
/// Bytes worth trying anywhere: boundaries of lengths, opcodes, UTF-8, ASCII.
const INTERESTING: [u8; 14] = [
    0, 1, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x88, 0x89, 0xbf, 0xc0, 0xff, b'"', b'\\',
];

#[test]
fn decode_client() {
    smoke("decode_client", "json.dict");
}

#[test]
fn frame_reader() {
    smoke("frame_reader", "");
}

#[test]
fn reply() {
    smoke("reply", "json.dict");
}

#[test]
fn profile() {
    smoke("profile", "toml.dict");
}

#[test]
fn every_target_is_smoked_and_built() {
    let names: Vec<&str> = fuzz_bodies::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["decode_client", "frame_reader", "reply", "profile"]);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for n in names {
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "fuzz/Cargo.toml has {n}"
        );
    }
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn smoke(target: &str, dict: &str) {
    let body = fuzz_bodies::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .unwrap();
    let seeds = read_dir_sorted(&fuzz_dir().join("seeds").join(target));
    assert!(seeds.len() >= 4, "{target} has seeds");
    let tokens = if dict.is_empty() {
        Vec::new()
    } else {
        read_dict(&fuzz_dir().join("dict").join(dict))
    };
    for s in &seeds {
        run_one(target, body, s);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..MUTATIONS {
        let input = mutate(&seeds, &tokens, &mut rng);
        run_one(target, body, &input);
    }
}

fn run_one(target: &str, body: fuzz_bodies::Body, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
        panic!(
            "{target} panicked on this input (reproduce with cargo fuzz run {target} FILE): \"{}\"",
            input.escape_ascii()
        );
    }
}

fn read_dir_sorted(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The tokens of a libFuzzer dictionary (`"text"` lines, `\\`, `\"` and `\xNN` escapes).
fn read_dict(path: &std::path::Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(inner) = line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
            continue;
        };
        let (mut tok, mut bytes) = (Vec::new(), inner.bytes());
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                tok.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).unwrap();
                    tok.push(u8::from_str_radix(hex, 16).unwrap());
                }
                Some(c) => tok.push(c),
                None => {}
            }
        }
        out.push(tok);
    }
    assert!(!out.is_empty(), "{} has tokens", path.display());
    out
}

/// One to four random edits of a random seed.
fn mutate(seeds: &[Vec<u8>], tokens: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => v.insert(at, rng.next() as u8),
            3 if !tokens.is_empty() => {
                let t = &tokens[rng.below(tokens.len())];
                v.splice(at..at, t.iter().copied());
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let piece = v[at.min(end)..end].to_vec();
                v.splice(at..at, piece);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(256)).min(other.len());
                v.splice(at.., other[from..end].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v.truncate(MAX_LEN);
    v
}

/// splitmix64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
