//! `--hdr-log`: per-second latency histograms as an HdrHistogram interval
//! log, and `loadgen merge`, which adds any number of such logs losslessly.
//!
//! The interval log is the format HdrHistogram tools in every language read,
//! so runs from several machines (or `--workers`) can be combined without
//! averaging percentiles, which would be wrong.

use crate::engine::collect::{Second, SecondSink};
use crate::engine::stats::{Summary, new_hist};
use crate::error::Error;
use crate::opts::MergeOpts;
use crate::report::fmt::fmt_us;
use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Tag of the uncorrected histograms; corrected ones are untagged.
pub const UNCORRECTED_TAG: &str = "uncorrected";

/// Writes one line per histogram per second.
pub struct HdrLog {
    out: BufWriter<File>,
    ser: V2DeflateSerializer,
    /// The first write error; later seconds are skipped and the report says so.
    pub failed: Option<String>,
}

impl HdrLog {
    pub fn create(path: &Path, start: SystemTime) -> Result<HdrLog, Error> {
        let file = File::create(path)
            .map_err(|e| Error::io(format!("--hdr-log {}", path.display()), e))?;
        let mut out = BufWriter::new(file);
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("loadgen latency log; values in microseconds; untagged = corrected for coordinated omission")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| Error::io(format!("--hdr-log {}", path.display()), e))?;
        Ok(HdrLog {
            out,
            ser,
            failed: None,
        })
    }
}

impl SecondSink for HdrLog {
    fn second(&mut self, s: &Second) {
        self.interval(s.start, s.len, &s.corrected, &s.uncorrected);
    }
}

impl HdrLog {
    /// One interval: the corrected histogram, then the uncorrected one.
    pub fn interval(
        &mut self,
        start: Duration,
        len: Duration,
        corrected: &Histogram<u64>,
        uncorrected: &Histogram<u64>,
    ) {
        if self.failed.is_some() {
            return;
        }
        let mut buf = Vec::new();
        let res = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut buf, &mut self.ser)
            .map_err(|e| e.to_string())
            .and_then(|mut w| {
                w.write_histogram(corrected, start, len, None)
                    .map_err(|e| e.to_string())?;
                w.write_histogram(uncorrected, start, len, Tag::new(UNCORRECTED_TAG))
                    .map_err(|e| e.to_string())
            });
        let res = res.and_then(|_| {
            self.out
                .write_all(&buf)
                .and_then(|_| self.out.flush())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = res {
            self.failed = Some(e);
        }
    }
}

/// Merged histograms of several logs.
#[derive(Debug)]
pub struct Merged {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub intervals: u64,
    pub span: Duration,
}

/// Read and merge interval logs.
pub fn merge_files(files: &[impl AsRef<Path>]) -> Result<Merged, Error> {
    let mut m = Merged {
        corrected: new_hist(),
        uncorrected: new_hist(),
        intervals: 0,
        span: Duration::ZERO,
    };
    let mut de = Deserializer::new();
    for f in files {
        let f = f.as_ref();
        let data =
            std::fs::read(f).map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
        let bad = |why: String| Error::Output {
            what: f.display().to_string(),
            why,
        };
        for entry in IntervalLogIterator::new(&data) {
            let entry =
                entry.map_err(|e| bad(format!("not an HdrHistogram interval log ({e:?})")))?;
            let LogEntry::Interval(h) = entry else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| bad(format!("bad base64 in a histogram: {e}")))?;
            let hist: Histogram<u64> = de
                .deserialize(&mut &bytes[..])
                .map_err(|e| bad(format!("bad histogram: {e:?}")))?;
            let into = match h.tag() {
                Some(t) if t.as_str() == UNCORRECTED_TAG => &mut m.uncorrected,
                _ => &mut m.corrected,
            };
            if into.add(&hist).is_err() {
                for v in hist.iter_recorded() {
                    into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                }
            }
            m.intervals += 1;
            m.span = m.span.max(h.start_timestamp() + h.duration());
        }
    }
    Ok(m)
}

/// `loadgen merge`.
pub fn run_merge(o: &MergeOpts) -> Result<u8, Error> {
    let m = merge_files(&o.files)?;
    if m.intervals == 0 {
        return Err(Error::Output {
            what: "loadgen merge".into(),
            why: "no histograms found in the given logs".into(),
        });
    }
    println!(
        "merged {} interval histograms from {} files",
        m.intervals,
        o.files.len()
    );
    println!("| | count | mean | p50 | p95 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, h) in [("corrected", &m.corrected), ("uncorrected", &m.uncorrected)] {
        let s = Summary::of(h);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            s.count,
            fmt_us(s.mean.round() as u64),
            fmt_us(s.p50),
            fmt_us(s.p95),
            fmt_us(s.p99),
            fmt_us(s.p999),
            fmt_us(s.max)
        );
    }
    if let Some(out) = &o.out {
        let mut log = HdrLog::create(out, SystemTime::now())?;
        log.interval(Duration::ZERO, m.span, &m.corrected, &m.uncorrected);
        if let Some(e) = log.failed {
            return Err(Error::Output {
                what: format!("--out {}", out.display()),
                why: e,
            });
        }
    }
    Ok(0)
}
