//! The core's timers, all in one table, so the next deadline is one query away.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Nobody answered the door's invite in time.
    RingTimeout,
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    entries: Vec<(Timer, Instant)>,
}

impl Timers {
    /// Sets (or moves) `timer` to fire at `at`.
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.cancel(timer);
        self.entries.push((timer, at));
    }

    pub(super) fn cancel(&mut self, timer: Timer) {
        self.entries.retain(|(t, _)| *t != timer);
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.entries.iter().map(|(_, at)| *at).min()
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (i, _) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (_, at))| *at)?;
        Some(self.entries.swap_remove(i).0)
    }
}
