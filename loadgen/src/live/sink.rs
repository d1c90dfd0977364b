//! The live metrics' [`SecondSink`]: adds each second to the [`Figures`]
//! and renders the exposition once, for every scrape until the next second.

use crate::engine::collect::{Second, SecondSink};
use crate::engine::plan::Plan;
use crate::live::expo::{RunLabels, render};
use crate::live::figures::Figures;
use crate::report::phases::PhaseClock;
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// The text the endpoint serves: swapped whole once a second, cloned by
/// each scrape (the lock is held for a reference count only).
#[derive(Debug, Default)]
pub struct Exposition {
    text: Mutex<Bytes>,
}

impl Exposition {
    pub fn get(&self) -> Bytes {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, text: String) {
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = Bytes::from(text);
    }
}

/// Feeds [`Exposition`] from the collector.
pub struct LiveSink {
    figures: Figures,
    clock: PhaseClock,
    plan: Plan,
    labels: RunLabels,
    out: Arc<Exposition>,
}

impl LiveSink {
    /// Publish the run's zero figures at once (a scrape before the first
    /// second already sees every family), then one update a second.
    pub fn new(plan: &Plan, labels: RunLabels, out: Arc<Exposition>) -> LiveSink {
        let sink = LiveSink {
            figures: Figures::default(),
            clock: PhaseClock::new(plan),
            plan: plan.clone(),
            labels,
            out,
        };
        sink.publish();
        sink
    }

    /// The run is over: say so in `loadgen_run_finished`.
    pub fn finish(&mut self) {
        self.figures.finished = true;
        self.publish();
    }

    fn publish(&self) {
        self.out.set(render(&self.figures, &self.labels));
    }
}

impl SecondSink for LiveSink {
    fn second(&mut self, s: &Second) {
        let phase = self.clock.phase(s);
        let target = self.plan.target_at(s.start + s.len);
        self.figures.add(s, phase, target);
        self.publish();
    }
}
