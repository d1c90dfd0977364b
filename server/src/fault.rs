//! Deliberate faults for tests only (`--test-fault`, hidden from `--help`).
//!
//! A test suite is only worth something if it can fail: `loadgen scenario`'s
//! tests start nodes with one of these and check that the matching scenario
//! reports FAIL. Each fault is one branch at one call site, so a healthy node
//! (the default, `None`) runs exactly the code it always ran.

/// One way to break a node on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFault {
    /// The generator skips chunk 49, 99, ... (the index still advances):
    /// every answer of 50 chunks or more has a gap.
    #[value(name = "drop-every-50th-chunk")]
    DropEvery50thChunk,
    /// The periodic cleanup never runs: stale sessions stay in
    /// `sessions:active` (run it on every node, since any node's cleanup
    /// removes any node's stale sessions).
    NoSessionCleanup,
    /// Redis mode: streams are taken over without a new fencing token (the
    /// dead owner's is kept), so the owner taken for dead could still write.
    SkipFencing,
    /// The node aborts as soon as it takes a stream over: answers of a dead
    /// node never complete (each survivor that claims one dies in turn).
    CrashOnTakeover,
}

/// Whether the generator must leave out chunk `index`.
pub fn drops_chunk(fault: Option<TestFault>, index: u32) -> bool {
    fault == Some(TestFault::DropEvery50thChunk) && index % 50 == 49
}

/// Whether the cleanup pass must be skipped.
pub fn skips_cleanup(fault: Option<TestFault>) -> bool {
    fault == Some(TestFault::NoSessionCleanup)
}

/// Whether a take-over must keep the old fencing token.
pub fn skips_fencing(fault: Option<TestFault>) -> bool {
    fault == Some(TestFault::SkipFencing)
}

/// Whether the node must abort on taking a stream over.
pub fn crashes_on_takeover(fault: Option<TestFault>) -> bool {
    fault == Some(TestFault::CrashOnTakeover)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_fault_acts() {
        assert!(!drops_chunk(None, 49));
        assert!(!drops_chunk(Some(TestFault::NoSessionCleanup), 49));
        let f = Some(TestFault::DropEvery50thChunk);
        assert!(!drops_chunk(f, 0) && !drops_chunk(f, 48) && !drops_chunk(f, 50));
        assert!(drops_chunk(f, 49) && drops_chunk(f, 99));
        assert!(skips_cleanup(Some(TestFault::NoSessionCleanup)));
        assert!(!skips_cleanup(None) && !skips_cleanup(f));
        assert!(skips_fencing(Some(TestFault::SkipFencing)) && !skips_fencing(f));
        assert!(crashes_on_takeover(Some(TestFault::CrashOnTakeover)));
        assert!(!crashes_on_takeover(None) && !crashes_on_takeover(f));
    }

    #[test]
    fn the_option_parses_and_stays_out_of_help() {
        use clap::{CommandFactory, Parser};
        let opts = crate::Opts::parse_from(["wsnode", "--test-fault", "drop-every-50th-chunk"]);
        assert_eq!(opts.test_fault, Some(TestFault::DropEvery50thChunk));
        let opts = crate::Opts::parse_from(["wsnode", "--test-fault", "no-session-cleanup"]);
        assert_eq!(opts.test_fault, Some(TestFault::NoSessionCleanup));
        let opts = crate::Opts::parse_from(["wsnode", "--test-fault", "skip-fencing"]);
        assert_eq!(opts.test_fault, Some(TestFault::SkipFencing));
        let opts = crate::Opts::parse_from(["wsnode", "--test-fault", "crash-on-takeover"]);
        assert_eq!(opts.test_fault, Some(TestFault::CrashOnTakeover));
        assert!(crate::Opts::parse_from(["wsnode"]).test_fault.is_none());
        let help = crate::Opts::command().render_long_help().to_string();
        assert!(!help.contains("test-fault"), "{help}");
    }
}
