//! Protocol profiles (`--profile FILE`): a small TOML file says how to talk
//! to a WebSocket service loadgen does not know: what to send when a
//! connection opens and which reply makes it ready, the paced message, how
//! a reply names its message, which frames are parts of a streamed answer,
//! which end an answer as failed, how to resume an answer after a drop,
//! and which keep-alives to answer or ignore. The built-in modes are
//! profiles too (`builtin`), measured by the same code path.
//!
//! `spec` is the file as written; `matchers` and `locate` the pieces and
//! their located errors; `rules` the checked and compiled profile;
//! `checks` the built-in content checks; `json` a frame's borrowed JSON
//! tree (`flat` its one-pass reading of a plain object, as a tree or as a
//! table of members on the stack); `doc` a frame as the rules read it (the
//! table when it fits, else the tree); `classify` what a frame is under a
//! profile. docs/PROFILES.md documents every key.

pub mod builtin;
pub mod checks;
pub mod classify;
pub mod doc;
pub mod flat;
pub mod json;
pub mod locate;
pub mod matchers;
pub mod rules;
pub mod spec;

#[cfg(test)]
mod tests;
