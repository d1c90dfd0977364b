//! Where a finished report goes: the filled template and grade table on
//! stdout, warnings on stderr, and the files the user asked for.

use crate::config::Config;
use crate::error::Error;
use crate::report::html;
use crate::report::model::Report;
use crate::report::template;
use std::path::Path;

/// Print the filled template and grade table, and write the requested files.
pub fn emit(cfg: &Config, r: &Report) -> Result<(), Error> {
    println!("{}", template::template(r));
    println!("Target Metrics (graded; --fail-on {:?}):", cfg.fail_on);
    println!("{}", template::grade_table(r));
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(p) = &cfg.json {
        write_json(p, r)?;
    }
    if let Some(p) = &cfg.out_md {
        std::fs::write(p, template::markdown(r))
            .map_err(|e| Error::io(format!("--out-md {}", p.display()), e))?;
    }
    if let Some(p) = &cfg.html {
        std::fs::write(p, html::page(r))
            .map_err(|e| Error::io(format!("--html {}", p.display()), e))?;
    }
    Ok(())
}

/// Write `doc` as pretty JSON to `path` (`--json`).
pub fn write_json(path: &Path, doc: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| Error::Output {
        what: format!("--json {}", path.display()),
        why: e.to_string(),
    })?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Error::io(format!("--json {}", path.display()), e))
}
