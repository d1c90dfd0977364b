//! `loadgen compare`: read both reports, print the table, and turn the
//! limits into the exit code (0 held, 1 exceeded; bad input is exit 2).

use crate::compare::args::CompareOpts;
use crate::compare::diff::compare;
use crate::compare::headline::{self, Headline};
use crate::compare::limits::{self, Limit};
use crate::config::error::ConfigError;
use crate::error::Error;
use std::path::Path;

/// Run the comparison `o` asks for; the exit code, or an exit-2 error.
pub fn run(o: &CompareOpts) -> Result<u8, Error> {
    let limits: Vec<Limit> = match &o.max_regression {
        Some(spec) => limits::parse(spec).map_err(bad)?,
        None => Vec::new(),
    };
    let base = load(&o.base)?;
    let new = load(&o.new)?;
    let c = compare(&base, &new, &limits);
    println!(
        "loadgen compare: {} ({}) -> {} ({})",
        o.base.display(),
        base.started_at,
        o.new.display(),
        new.started_at
    );
    println!(
        "Latency and replies per second: the graded phase ({}); the rest: the whole run.\n",
        new.graded
    );
    print!("{}", c.table());
    for n in &c.notes {
        println!("Note: {n}");
    }
    let exceeded = c.exceeded();
    if limits.is_empty() {
        return Ok(0);
    }
    if exceeded.is_empty() {
        println!("\nEvery --max-regression limit held ({}).", limits.len());
        return Ok(0);
    }
    println!();
    for e in &exceeded {
        println!("REGRESSION: {e}");
        eprintln!("loadgen compare: regression: {e}");
    }
    Ok(1)
}

fn bad(msg: String) -> Error {
    Error::Config(ConfigError(format!("compare: {msg}")))
}

/// The headline figures of the report at `path`.
fn load(path: &Path) -> Result<Headline, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    headline::read(&text).map_err(|why| {
        bad(format!(
            "{} is not a loadgen report (the JSON that --json writes, schema {}): {why}",
            path.display(),
            headline::SCHEMA
        ))
    })
}
