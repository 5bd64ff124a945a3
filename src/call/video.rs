//! When the door's video encoder gets work, and what of its output is sent: the frame clock's
//! jobs, the keyframes a viewer asks for (PLI, FIR), and the pacing of what goes out.
//!
//! Sans-IO: the WebRTC adapter's call task tells a [`VideoPacer`] what happened (a tick of the
//! frame clock, a keyframe request, the connection up, a frame back from the encoder), each with
//! its `now`, and carries out what it answers: a job for the encoder thread, a frame written to
//! the track with its duration, or nothing. Tested on virtual time in `tests/virtual_video.rs`.
//!
//! The rules:
//! - the first frame the peer gets once the connection is up is a keyframe, asked for at once
//!   (not at the next tick), and nothing goes out before it;
//! - a keyframe request is carried out at once if the last keyframe went out at least
//!   [`KEYFRAME_MIN_INTERVAL`] ago, else by the first tick after that ([`KeyframeThrottle`]);
//! - a pull source (software or hardware encoding of a camera's frames) is asked for one frame a
//!   tick, one at a time: a tick that finds the encoder busy drops its frame rather than queue
//!   behind it; a push source (a camera's own H.264) keeps its own pace and is only asked for
//!   keyframes, at most once per [`KEYFRAME_MIN_INTERVAL`];
//! - a keyframe that was asked for and did not come (the encoder skipped or made a delta frame)
//!   is asked for again;
//! - each frame sent lasts from its capture to the next one's (the first, one frame interval).

use std::time::{Duration, Instant};

/// Keyframes answer requests at most this often: a viewer that keeps asking (a PLI every few
/// hundred milliseconds while it cannot decode) would otherwise get nothing but keyframes.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// When a viewer's keyframe request leads to a keyframe. See the module.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    wanted: bool,
    /// Since the connection came up, no keyframe went out yet: nothing else may go first.
    awaiting: bool,
    last_keyframe: Option<Instant>,
    /// When a push source was last asked for one.
    last_request: Option<Instant>,
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        KeyframeThrottle::new()
    }
}

impl KeyframeThrottle {
    /// No keyframe wanted yet, none sent yet.
    pub fn new() -> KeyframeThrottle {
        KeyframeThrottle {
            wanted: false,
            awaiting: true,
            last_keyframe: None,
            last_request: None,
        }
    }

    /// A keyframe is wanted: the viewer asked, or one that was due did not come.
    pub fn request(&mut self) {
        self.wanted = true;
    }

    /// The connection came up: the first frame the peer gets must be a keyframe.
    pub fn connected(&mut self) {
        self.wanted = true;
        self.awaiting = true;
    }

    /// A keyframe is wanted and not yet asked for.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// No keyframe went out since the connection came up.
    pub fn awaiting(&self) -> bool {
        self.awaiting
    }

    fn recent(now: Instant, t: Option<Instant>) -> bool {
        t.is_some_and(|t| now.duration_since(t) < KEYFRAME_MIN_INTERVAL)
    }

    /// Whether the frame an encoder makes now is to be a keyframe: one is wanted and the last
    /// went out at least [`KEYFRAME_MIN_INTERVAL`] ago.
    pub fn due(&self, now: Instant) -> bool {
        self.wanted && !Self::recent(now, self.last_keyframe)
    }

    /// Whether a source that keeps its own pace is to be asked for a keyframe now: one is
    /// wanted, and neither the last keyframe nor the last request is recent.
    pub fn due_from_push(&self, now: Instant) -> bool {
        self.due(now) && !Self::recent(now, self.last_request)
    }

    /// The encoder was asked for a keyframe at `now`.
    pub fn asked(&mut self, now: Instant) {
        self.wanted = false;
        self.last_request = Some(now);
    }

    /// A frame captured at `captured` went out.
    pub fn sent(&mut self, keyframe: bool, captured: Instant) {
        if keyframe {
            self.last_keyframe = Some(captured);
            self.awaiting = false;
        }
    }
}

/// What to ask the encoder thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing now.
    Nothing,
    /// The frame clock ticked while the encoder was still busy: this tick's frame is dropped.
    Dropped,
    /// A frame (a pull source), a keyframe when `keyframe`; a push source is only ever asked
    /// for keyframes.
    Encode { keyframe: bool },
}

/// A frame back from the encoder, as the pacer needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The encoder was asked for a keyframe.
    pub requested_keyframe: bool,
    /// It is one.
    pub keyframe: bool,
    /// The encoder's rate control skipped the frame: nothing to send.
    pub empty: bool,
    pub captured: Instant,
}

/// What to do with a frame back from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it to the track, lasting `duration`.
    Send { duration: Duration },
    /// Not sent: not connected (the warm-up frame), skipped by rate control, or a delta frame
    /// that would reach the peer before any keyframe.
    Withhold,
}

/// The pacing of one call's video. See the module.
#[derive(Debug, Clone)]
pub struct VideoPacer {
    push: bool,
    interval: Duration,
    keyframes: KeyframeThrottle,
    /// A frame is being encoded: the encoder takes one job at a time.
    busy: bool,
    /// The source failed: the call goes on without video.
    stopped: bool,
    last_capture: Option<Instant>,
}

impl VideoPacer {
    /// A pull source at `fps` frames a second (at least one).
    pub fn pull(fps: u32) -> VideoPacer {
        VideoPacer::new(false, fps)
    }

    /// A source that keeps its own pace; `fps` is its nominal rate.
    pub fn push(fps: u32) -> VideoPacer {
        VideoPacer::new(true, fps)
    }

    fn new(push: bool, fps: u32) -> VideoPacer {
        VideoPacer {
            push,
            interval: Duration::from_secs(1) / fps.max(1),
            keyframes: KeyframeThrottle::new(),
            busy: false,
            stopped: false,
            last_capture: None,
        }
    }

    /// The warm-up job, before the connection is up: the camera's first frame and the encoder's
    /// initialisation happen then, off the connection's critical path. Its frame is not sent.
    pub fn warm_up(&mut self) -> Next {
        self.busy = !self.push;
        Next::Encode { keyframe: true }
    }

    /// The frame clock's period.
    pub fn frame_interval(&self) -> Duration {
        self.interval
    }

    /// Whether the frame clock drives the encoder (a pull source that has not failed).
    pub fn ticks(&self) -> bool {
        !self.push && !self.stopped
    }

    /// The source keeps its own pace.
    pub fn is_push(&self) -> bool {
        self.push
    }

    /// The source failed: no more jobs.
    pub fn stop(&mut self) {
        self.busy = false;
        self.stopped = true;
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The keyframes: wanted, awaited, last sent.
    pub fn keyframes(&self) -> &KeyframeThrottle {
        &self.keyframes
    }

    /// The connection came up: a keyframe first (ask [`VideoPacer::next`] at once).
    pub fn connected(&mut self) {
        self.keyframes.connected();
    }

    /// The viewer asked for a keyframe (ask [`VideoPacer::next`] at once).
    pub fn keyframe_requested(&mut self) {
        self.keyframes.request();
    }

    /// What to ask the encoder at `now`, while the connection is up: `tick` when the frame
    /// clock asks, otherwise after an event (a keyframe wanted, a frame back).
    pub fn next(&mut self, now: Instant, tick: bool) -> Next {
        if self.stopped || (!tick && !self.keyframes.wanted()) {
            return Next::Nothing;
        }
        if self.push {
            if self.keyframes.due_from_push(now) {
                self.keyframes.asked(now);
                return Next::Encode { keyframe: true };
            }
            return Next::Nothing;
        }
        if self.busy {
            return if tick { Next::Dropped } else { Next::Nothing };
        }
        let keyframe = self.keyframes.due(now);
        if !tick && !keyframe {
            // A request too soon after the last keyframe: the next tick carries it out.
            return Next::Nothing;
        }
        if keyframe {
            self.keyframes.asked(now);
        }
        self.busy = true;
        Next::Encode { keyframe }
    }

    /// A frame back from the encoder; `sending`: the connection is up. After it, ask
    /// [`VideoPacer::next`] (a keyframe asked for meanwhile goes out at once).
    pub fn encoded(&mut self, frame: Encoded, sending: bool) -> Verdict {
        self.busy = false;
        let awaiting = self.keyframes.awaiting();
        if !sending || frame.empty || (awaiting && !frame.keyframe) {
            // If a keyframe was due and did not come, ask again.
            if sending && (awaiting || (frame.requested_keyframe && !frame.keyframe)) {
                self.keyframes.request();
            }
            return Verdict::Withhold;
        }
        let duration = self.last_capture.map_or(self.interval, |last| {
            frame.captured.saturating_duration_since(last)
        });
        self.last_capture = Some(frame.captured);
        Verdict::Send { duration }
    }

    /// The frame went out.
    pub fn sent(&mut self, keyframe: bool, captured: Instant) {
        self.keyframes.sent(keyframe, captured);
    }
}
