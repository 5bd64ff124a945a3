//! The core's timers, all in one table, so the next deadline is one query away.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Nobody answered the door's invites in time.
    RingOut,
    /// The incoming call that rings here expires (ring timeout or the invite's lifetime).
    RingIn,
    /// The call has lasted the configured maximum.
    MaxLength,
    /// Media did not connect after the answer, or did not come back after it was lost.
    Connect,
    /// Local candidates gathered since the last batch go out.
    CandidateFlush,
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

    /// When `timer` fires, if it is set.
    pub(super) fn at(&self, timer: Timer) -> Option<Instant> {
        self.entries
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
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
