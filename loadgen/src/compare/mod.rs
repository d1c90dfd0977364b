//! `loadgen compare BASE.json NEW.json`: every headline figure of two
//! `--json` reports side by side with its change, and, with
//! `--max-regression`, a CI gate that exits 1 when a figure got worse by
//! more than its limit.
//!
//! `headline` reads the figures out of a report document, `limits` parses
//! the gate, `diff` compares and prints, `command` ties them to the files.

pub mod args;
pub mod command;
pub mod diff;
pub mod headline;
pub mod limits;
