//! How fast the door's video may go: the loss-based half of Google Congestion Control
//! (draft-ietf-rmcat-gcc-02, section 6), under the viewer's REMB and the configured cap.
//!
//! Inputs are what the viewer's RTCP says about the door's video — the fraction lost of each
//! receiver report, the receiver's estimate (REMB) — each with the `now` it arrived at. Output is
//! the bitrate the encoder should aim at, handed out only when it moved enough to be worth
//! reconfiguring the encoder for ([`BitrateController::poll_bitrate`]).
//!
//! The rules, applied at each receiver report:
//! - loss under 2 %: the path has room; the target grows by 8 % a second (scaled by the time
//!   since the previous report, at most [`MAX_INCREASE_STEP`] of it);
//! - loss from 2 % to 10 %: hold;
//! - loss over 10 %: the target is multiplied by (1 − loss / 2), at most once per
//!   [`DECREASE_INTERVAL`] (a burst of reports describes one congestion event, not several).
//!
//! The target never exceeds the last REMB (once one came) nor the cap, and never goes below the
//! floor. The encoder gets a new value when it differs by [`MIN_CHANGE`] from what it has, or
//! when the target reached the floor or the ceiling: a decrease at once, an increase at most
//! once per [`INCREASE_INTERVAL`].

use std::time::{Duration, Instant};

/// The rate a call starts at when the cap allows it: what GCC's implementations start video at,
/// enough for a door camera's picture until the first reports say more.
pub const START_BITRATE: u32 = 600_000;
/// Below this a moving picture is not worth sending (lowered to the cap when the cap is lower).
pub const FLOOR_BITRATE: u32 = 100_000;
/// Loss below this (a fraction of 256, as RTCP carries it: 2 %) lets the rate grow.
const LOW_LOSS: f64 = 0.02;
/// Loss above this (10 %) makes the rate drop.
const HIGH_LOSS: f64 = 0.10;
/// Growth a second while the path loses nothing worth mentioning.
const INCREASE_PER_SECOND: f64 = 1.08;
/// The longest gap between two reports that still counts as time to grow in: after a silence,
/// the path is not known to have had room all along.
pub const MAX_INCREASE_STEP: Duration = Duration::from_secs(2);
/// Decreases at most this often.
pub const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// The encoder is reconfigured when the target moved at least this much (a fraction) from what
/// it was last given.
pub const MIN_CHANGE: f64 = 0.05;
/// Increases reach the encoder at most this often; decreases reach it at once.
pub const INCREASE_INTERVAL: Duration = Duration::from_secs(1);

/// A summary of one call's rates, for its log line at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateSummary {
    /// The lowest and highest bitrate the encoder was given, and the last.
    pub min: u32,
    pub max: u32,
    pub last: u32,
    /// How many times the encoder was given a new one.
    pub changes: u32,
    /// Receiver reports and REMBs taken in.
    pub reports: u32,
    pub rembs: u32,
    /// The last REMB, if any came.
    pub last_remb: Option<u64>,
}

/// See the module.
#[derive(Debug, Clone)]
pub struct BitrateController {
    cap: f64,
    floor: f64,
    /// What the rules say, unsmoothed.
    target: f64,
    /// The receiver's estimate, once one came.
    remb: Option<f64>,
    last_report: Option<Instant>,
    last_decrease: Option<Instant>,
    /// What the encoder was last given, and when.
    applied: u32,
    applied_at: Option<Instant>,
    summary: BitrateSummary,
}

impl BitrateController {
    /// A controller for an encoder that starts at `initial` (clamped to the floor and the cap),
    /// never to go above `cap`.
    pub fn new(initial: u32, cap: u32) -> BitrateController {
        let cap = cap.max(1);
        let floor = FLOOR_BITRATE.min(cap);
        let initial = initial.clamp(floor, cap);
        BitrateController {
            cap: f64::from(cap),
            floor: f64::from(floor),
            target: f64::from(initial),
            remb: None,
            last_report: None,
            last_decrease: None,
            applied: initial,
            applied_at: None,
            summary: BitrateSummary {
                min: initial,
                max: initial,
                last: initial,
                changes: 0,
                reports: 0,
                rembs: 0,
                last_remb: None,
            },
        }
    }

    /// Where a call's encoder starts: the size's own rate (`suited`), but at most
    /// [`START_BITRATE`] and the cap.
    pub fn start(suited: u32, cap: u32) -> u32 {
        suited.min(START_BITRATE).min(cap)
    }

    /// A receiver report's fraction lost (out of 256) for the door's video.
    pub fn on_loss_report(&mut self, now: Instant, fraction_lost: u8) {
        self.summary.reports = self.summary.reports.saturating_add(1);
        let loss = f64::from(fraction_lost) / 256.0;
        let since = self
            .last_report
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        self.last_report = Some(now);
        if loss < LOW_LOSS {
            let step = since.min(MAX_INCREASE_STEP).as_secs_f64();
            self.target *= INCREASE_PER_SECOND.powf(step);
        } else if loss > HIGH_LOSS {
            let due = self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_INTERVAL);
            if due {
                self.target *= 1.0 - 0.5 * loss;
                self.last_decrease = Some(now);
            }
        }
        self.bound();
    }

    /// The receiver's estimate of what the path carries, in bits per second.
    pub fn on_remb(&mut self, _now: Instant, bitrate: u64) {
        self.summary.rembs = self.summary.rembs.saturating_add(1);
        self.summary.last_remb = Some(bitrate);
        self.remb = Some(bitrate as f64);
        self.bound();
    }

    /// The highest the target may be: the cap, or the last REMB if lower. The floor wins over a
    /// REMB below it: the door sends a picture or none, and a picture below the floor is not one.
    fn ceiling(&self) -> f64 {
        self.remb
            .map_or(self.cap, |r| r.min(self.cap))
            .max(self.floor)
    }

    fn bound(&mut self) {
        self.target = self.target.min(self.ceiling()).max(self.floor);
        if !self.target.is_finite() {
            self.target = self.floor;
        }
    }

    /// What the rules say now, unsmoothed, in bits per second.
    pub fn target(&self) -> u32 {
        self.target as u32
    }

    /// What the encoder was last given.
    pub fn applied(&self) -> u32 {
        self.applied
    }

    /// The bitrate to give the encoder now, if it should change. See the module.
    pub fn poll_bitrate(&mut self, now: Instant) -> Option<u32> {
        let target = self.target() as f64;
        let applied = f64::from(self.applied);
        // A small step is not worth a reconfiguration, unless it reaches the floor or the
        // ceiling (the encoder is never left above the ceiling, and reaches the bounds exactly).
        let to_bound = target == self.floor || target == self.ceiling().floor();
        if target == applied || ((target - applied).abs() < MIN_CHANGE * applied && !to_bound) {
            return None;
        }
        if target > applied
            && self
                .applied_at
                .is_some_and(|t| now.saturating_duration_since(t) < INCREASE_INTERVAL)
        {
            return None;
        }
        let new = target as u32;
        self.applied = new;
        self.applied_at = Some(now);
        let s = &mut self.summary;
        s.min = s.min.min(new);
        s.max = s.max.max(new);
        s.last = new;
        s.changes = s.changes.saturating_add(1);
        Some(new)
    }

    /// The call's rates so far.
    pub fn summary(&self) -> BitrateSummary {
        self.summary
    }

    /// The floor and the cap, in bits per second.
    pub fn bounds(&self) -> (u32, u32) {
        (self.floor as u32, self.cap as u32)
    }
}
