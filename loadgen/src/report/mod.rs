//! The results of a run as one serializable [`Report`], built once from the
//! merged measurements; every output format (the filled seed template, the
//! grade table, `--json`, `--out-md`) is rendered from it so they can never
//! disagree.

pub mod build;
pub mod charts;
pub mod fmt;
pub mod grades;
pub mod hdrlog;
pub mod html;
pub mod inputs;
pub mod model;
pub mod percentiles;
pub mod phase_report;
pub mod phases;
pub mod progress;
pub mod rows;
pub mod series;
pub mod svg;
pub mod template;
