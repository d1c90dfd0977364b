//! Protocol profiles (`--profile FILE`): a small TOML file says how to talk
//! to a WebSocket service loadgen does not know: what to send when a
//! connection opens and which reply makes it ready, the paced message, how
//! a reply names its message, which frames are parts of a streamed answer,
//! and which keep-alives to answer or ignore.
//!
//! `spec` is the file as written, `rules` the checked and compiled profile,
//! `classify` what a frame is under it. docs/PROFILES.md documents every key.

pub mod classify;
pub mod rules;
pub mod spec;

#[cfg(test)]
mod tests;
