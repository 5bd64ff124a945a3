//! The one owner of the speaker: ringtone, ringback and the calls' audio share one playback PCM
//! (a hardware device opens once).
//!
//! A [`Speaker`] is a handle (cheap to clone) to a thread that owns the PCM. The thread exists
//! only while there is something to play: a tone turned on or a call's [`SpeakerSink`] alive
//! starts it, and it opens the device then; 500 ms after the last of them it drains and closes
//! the device and ends. A device that fails (missing, unplugged) is logged with its name and
//! closed; it is tried again at the next ring or call, not before (no retry loop while the
//! device is away). The call goes on without it.
//!
//! Pacing is the thread's own clock: every 20 ms it mixes 20 ms (the tones from their cursors,
//! the call's audio from a small jitter queue) and writes it, so a device that does not pace
//! (alsa-lib's `null` and `file` plugins) plays at the real rate too, and a real one never waits
//! on us. What it writes is also pushed to the echo canceller's [`Reference`]. The call's queue
//! starts playing once 40 ms are queued, and is cut back when it holds more than 200 ms.
//!
//! [`Speaker::shared`] is the process-wide owner of one PCM name: the daemon's tones and every
//! call's audio reach the same thread through it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::aec::Reference;
use super::tones::{Tone, ToneKind};
use super::{AudioSink, MediaError, FRAME_SAMPLES};

/// One tick: 20 ms.
const TICK: Duration = Duration::from_millis(20);
/// How long the device stays open with nothing to play.
const IDLE_CLOSE: Duration = Duration::from_millis(500);
/// The call's audio starts playing when this much (40 ms) is queued…
const CALL_PRIME: usize = 2 * FRAME_SAMPLES;
/// …and is cut back to `CALL_PRIME` when more than this (200 ms) is.
const CALL_MAX: usize = 10 * FRAME_SAMPLES;

/// Where the speaker thread writes: a PCM, 48 kHz mono.
pub trait PcmOut: Send {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError>;
    /// Xruns recovered so far.
    fn xruns(&self) -> u64 {
        0
    }
}

impl PcmOut for super::alsa::AlsaPlayback {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        super::alsa::AlsaPlayback::write(self, samples)
    }
    fn xruns(&self) -> u64 {
        super::alsa::AlsaPlayback::xruns(self)
    }
}

type Opener = dyn Fn() -> Result<Box<dyn PcmOut>, MediaError> + Send + Sync;

/// What the speaker has done, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerStats {
    /// Samples (48 kHz) written to the device since the handle was made.
    pub written: u64,
    /// Xruns recovered, over every opening of the device.
    pub xruns: u64,
    /// Times the device was opened.
    pub opened: u64,
    /// The device is open now.
    pub open: bool,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

struct Playing {
    tone: Tone,
    at: usize,
}

#[derive(Default)]
struct State {
    ringtone: Option<Playing>,
    ringback: Option<Playing>,
    call: VecDeque<i16>,
    call_primed: bool,
    sinks: usize,
    running: bool,
    /// The device failed; nothing restarts the thread until the next ring or call.
    failed: bool,
    stats: SpeakerStats,
    xruns_before: u64,
}

impl State {
    fn active(&self) -> bool {
        self.ringtone.is_some()
            || self.ringback.is_some()
            || self.sinks > 0
            || !self.call.is_empty()
    }
}

struct Inner {
    name: String,
    opener: Box<Opener>,
    state: Mutex<State>,
    changed: Condvar,
    reference: Reference,
}

/// A handle to the speaker owner. See the module.
#[derive(Clone)]
pub struct Speaker(Arc<Inner>);

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Speaker({:?})", self.0.name)
    }
}

static SHARED: Mutex<Vec<(String, Weak<Inner>)>> = Mutex::new(Vec::new());

impl Speaker {
    /// A speaker writing to whatever `opener` opens, each time it starts.
    pub fn new(
        name: &str,
        opener: impl Fn() -> Result<Box<dyn PcmOut>, MediaError> + Send + Sync + 'static,
    ) -> Speaker {
        Speaker(Arc::new(Inner {
            name: name.to_owned(),
            opener: Box::new(opener),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            reference: Reference::new(),
        }))
    }

    /// A speaker on the ALSA PCM `pcm`.
    pub fn alsa(pcm: &str) -> Speaker {
        let name = pcm.to_owned();
        Speaker::new(pcm, move || {
            super::alsa::AlsaPlayback::open(&name).map(|p| Box::new(p) as Box<dyn PcmOut>)
        })
    }

    /// The process's owner of the ALSA PCM `pcm`: the same one for every caller while any
    /// handle to it lives.
    pub fn shared(pcm: &str) -> Speaker {
        let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = all
            .iter()
            .find(|(n, _)| n == pcm)
            .and_then(|(_, w)| w.upgrade())
        {
            return Speaker(inner);
        }
        let speaker = Speaker::alsa(pcm);
        all.push((pcm.to_owned(), Arc::downgrade(&speaker.0)));
        speaker
    }

    /// The PCM's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plays `tone` in a loop as `kind`, from its start (`None`: stops it).
    pub fn set_tone(&self, kind: ToneKind, tone: Option<Tone>) {
        let mut state = self.lock();
        let playing = tone
            .filter(|t| !t.samples.is_empty())
            .map(|tone| Playing { tone, at: 0 });
        let starts = playing.is_some();
        match kind {
            ToneKind::Ringtone => state.ringtone = playing,
            ToneKind::Ringback => state.ringback = playing,
        }
        if starts {
            state.failed = false;
        }
        self.wake(state);
    }

    /// Whether `kind` is playing.
    pub fn tone_on(&self, kind: ToneKind) -> bool {
        let state = self.lock();
        match kind {
            ToneKind::Ringtone => state.ringtone.is_some(),
            ToneKind::Ringback => state.ringback.is_some(),
        }
    }

    /// A sink for a call's audio. The device stays open while it lives.
    pub fn sink(&self) -> SpeakerSink {
        let mut state = self.lock();
        state.sinks += 1;
        state.failed = false;
        state.call.clear();
        state.call_primed = false;
        self.wake(state);
        SpeakerSink(self.clone())
    }

    /// What the speaker plays, for the echo canceller.
    pub fn reference(&self) -> Reference {
        self.0.reference.clone()
    }

    pub fn stats(&self) -> SpeakerStats {
        self.lock().stats.clone()
    }

    /// Waits until at least `samples` have been written in all, the device failed, or
    /// `timeout` passed; returns the stats then.
    pub fn wait_written(&self, samples: u64, timeout: Duration) -> SpeakerStats {
        let state = self.wait_while(timeout, |state| {
            state.stats.written < samples && !state.failed
        });
        state.stats.clone()
    }

    /// Waits until at most `samples` of call audio wait to be played (or the device failed,
    /// or `timeout` passed).
    pub fn wait_queued_at_most(&self, samples: usize, timeout: Duration) {
        drop(self.wait_while(timeout, |state| state.call.len() > samples && !state.failed));
    }

    /// Waits, for at most `timeout`, while `pending` holds of the state; returns the state.
    fn wait_while(
        &self,
        timeout: Duration,
        pending: impl Fn(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while pending(&state) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state
    }

    /// Waits until the device is closed (nothing to play for a while, or a failure).
    pub fn wait_closed(&self, timeout: Duration) -> SpeakerStats {
        let state = self.wait_while(timeout, |state| state.running);
        state.stats.clone()
    }

    /// Starts the thread if there is something to play and it is not running.
    fn wake(&self, mut state: MutexGuard<'_, State>) {
        if state.running || state.failed || !state.active() {
            return;
        }
        state.running = true;
        drop(state);
        let speaker = self.clone();
        let spawned = std::thread::Builder::new()
            .name("speaker".to_owned())
            .spawn(move || speaker.run());
        if let Err(e) = spawned {
            let mut state = self.lock();
            state.running = false;
            state.failed = true;
            state.stats.last_error = Some(format!("speaker {:?}: no thread: {e}", self.0.name));
        }
    }

    /// Mixes the next tick's samples; `None` when the device should close.
    fn mix(&self, state: &mut State, out: &mut [i16], idle_since: &mut Option<Instant>) -> bool {
        let now = Instant::now();
        if state.active() {
            *idle_since = None;
        } else if now.duration_since(*idle_since.get_or_insert(now)) >= IDLE_CLOSE {
            return false;
        }
        let mut mix = vec![0i32; out.len()];
        for playing in [&mut state.ringtone, &mut state.ringback]
            .into_iter()
            .flatten()
        {
            let t = &playing.tone.samples;
            for m in mix.iter_mut() {
                *m += i32::from(t[playing.at]);
                playing.at = (playing.at + 1) % t.len();
            }
        }
        if state.call.len() > CALL_MAX {
            let excess = state.call.len() - CALL_PRIME;
            state.call.drain(..excess);
        }
        if !state.call_primed && state.call.len() >= CALL_PRIME {
            state.call_primed = true;
        }
        if state.call_primed {
            let n = out.len().min(state.call.len());
            for (m, s) in mix.iter_mut().zip(state.call.drain(..n)) {
                *m += i32::from(s);
            }
            if state.call.is_empty() {
                state.call_primed = false;
            }
        }
        for (o, m) in out.iter_mut().zip(mix) {
            *o = m.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        true
    }

    /// The thread: open, then a tick every 20 ms until idle or failed. The device is closed
    /// (drained) before the thread says so: [`Speaker::wait_closed`] returns when what was
    /// written has reached the device. Something to play that came while it was closing opens
    /// it again.
    fn run(self) {
        let inner = &self.0;
        loop {
            let mut device = match (inner.opener)() {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("speaker: {e}; playing nothing until the next ring or call");
                    let mut state = self.lock();
                    state.running = false;
                    state.failed = true;
                    state.stats.last_error = Some(e.to_string());
                    inner.changed.notify_all();
                    return;
                }
            };
            {
                let mut state = self.lock();
                state.stats.opened += 1;
                state.stats.open = true;
                state.xruns_before = state.stats.xruns;
            }
            let failure = self.play(device.as_mut());
            // Drained and closed outside the lock.
            drop(device);
            let mut state = self.lock();
            state.stats.open = false;
            if let Some(e) = failure {
                log::warn!("speaker: {e}; closed until the next ring or call");
                state.running = false;
                state.failed = true;
                state.stats.last_error = Some(e.to_string());
                state.call.clear();
                inner.changed.notify_all();
                return;
            }
            if !state.active() {
                state.running = false;
                inner.changed.notify_all();
                return;
            }
        }
    }

    /// Ticks on `device` until there has been nothing to play for [`IDLE_CLOSE`] (`None`) or
    /// a write fails (the error).
    fn play(&self, device: &mut dyn PcmOut) -> Option<MediaError> {
        let inner = &self.0;
        let mut chunk = vec![0i16; FRAME_SAMPLES];
        let mut idle_since = None;
        let mut next = Instant::now();
        loop {
            if !self.mix(&mut self.lock(), &mut chunk, &mut idle_since) {
                return None;
            }
            let result = device.write(&chunk);
            let xruns = device.xruns();
            let mut state = self.lock();
            state.stats.xruns = state.xruns_before + xruns;
            if let Err(e) = result {
                return Some(e);
            }
            inner.reference.push(&chunk);
            state.stats.written += chunk.len() as u64;
            inner.changed.notify_all();
            drop(state);
            next += TICK;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > TICK * 5 {
                // Far behind (a stalled device): start the schedule again from now.
                next = now;
            }
        }
    }
}

/// The door's tones on its speaker, as `[audio]` configures them: what the daemon turns on and
/// off when the core says so.
#[derive(Debug)]
pub struct Ringer {
    speaker: Option<Speaker>,
    ringtone: Option<Tone>,
    ringback: Option<Tone>,
}

impl Ringer {
    /// Tones for `playback` (none for `null`). A WAV file that cannot be read (it was checked
    /// when the settings were made) is logged and replaced by the built-in tone.
    pub fn new(
        playback: &super::AudioEndpoint,
        ringtone: &super::tones::ToneSetting,
        ringback: &super::tones::ToneSetting,
    ) -> Ringer {
        let load = |kind, setting| {
            Tone::load(kind, setting).unwrap_or_else(|e| {
                log::warn!("{kind:?}: {e}; using the built-in tone");
                Tone::load(kind, &super::tones::ToneSetting::Builtin)
                    .ok()
                    .flatten()
            })
        };
        Ringer {
            speaker: match playback {
                super::AudioEndpoint::Pcm(name) => Some(Speaker::shared(name)),
                _ => None,
            },
            ringtone: load(ToneKind::Ringtone, ringtone),
            ringback: load(ToneKind::Ringback, ringback),
        }
    }

    /// Turns `kind` on or off.
    pub fn set(&self, kind: ToneKind, on: bool) {
        let Some(speaker) = &self.speaker else {
            return;
        };
        let tone = match kind {
            ToneKind::Ringtone => &self.ringtone,
            ToneKind::Ringback => &self.ringback,
        };
        speaker.set_tone(kind, tone.clone().filter(|_| on));
    }
}

/// A call's way into the speaker ([`AudioSink`]): queues the decoded audio for the speaker's
/// thread. Writing never blocks on the device.
pub struct SpeakerSink(Speaker);

impl AudioSink for SpeakerSink {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        let mut state = self.0.lock();
        if state.failed {
            // The device is away: the call goes on without it.
            return Ok(());
        }
        state.call.extend(samples.iter().copied());
        self.0.wake(state);
        Ok(())
    }
}

impl Drop for SpeakerSink {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.sinks = state.sinks.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that records what it is given, and how often it was closed.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<i16>>>, Arc<Mutex<usize>>);

    impl PcmOut for Recorder {
        fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
            self.0.lock().unwrap().extend_from_slice(samples);
            Ok(())
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            *self.1.lock().unwrap() += 1;
        }
    }

    #[test]
    fn tones_and_call_audio_mix_into_one_device_which_closes_when_idle() {
        let rec = Recorder::default();
        let r = rec.clone();
        let speaker = Speaker::new("test", move || Ok(Box::new(r.clone()) as Box<dyn PcmOut>));
        assert!(!speaker.stats().open);
        speaker.set_tone(ToneKind::Ringback, Some(Tone::builtin_ringback()));
        let stats = speaker.wait_written(5 * FRAME_SAMPLES as u64, Duration::from_secs(10));
        assert!(stats.open && stats.opened == 1, "{stats:?}");
        speaker.set_tone(ToneKind::Ringback, None);
        // A call: a constant level, loud enough to see in the mix.
        let mut sink = speaker.sink();
        sink.write(&[1000; 3 * FRAME_SAMPLES]).unwrap();
        let before = speaker.stats().written;
        speaker.wait_written(before + 4 * FRAME_SAMPLES as u64, Duration::from_secs(10));
        drop(sink);
        let stats = speaker.wait_closed(Duration::from_secs(10));
        assert!(!stats.open, "{stats:?}");
        // Closed means closed: the device was dropped (an ALSA PCM drained) by then.
        assert_eq!(*rec.1.lock().unwrap(), 1);
        let played = rec.0.lock().unwrap().clone();
        // The ringback's 425 Hz burst came first, then the call's samples, each once.
        assert!(played[..FRAME_SAMPLES].iter().any(|&s| s.abs() > 5000));
        assert_eq!(
            played.iter().filter(|&&s| s == 1000).count(),
            3 * FRAME_SAMPLES
        );
        // What was played is what the echo canceller gets as its reference.
        assert_eq!(stats.written as usize, played.len());
    }

    #[test]
    fn a_failing_device_is_retried_at_the_next_ring_only() {
        let attempts = Arc::new(Mutex::new(0));
        let a = Arc::clone(&attempts);
        let speaker = Speaker::new("gone", move || {
            *a.lock().unwrap() += 1;
            Err(MediaError::Failed(
                "audio playback \"gone\": cannot open: No such device".into(),
            ))
        });
        speaker.set_tone(ToneKind::Ringtone, Some(Tone::builtin_ringtone()));
        let stats = speaker.wait_closed(Duration::from_secs(10));
        assert!(stats.last_error.unwrap().contains("\"gone\""));
        let mut sink_attempts = *attempts.lock().unwrap();
        assert_eq!(sink_attempts, 1);
        // Writing call audio does not hammer the device…
        speaker.set_tone(ToneKind::Ringtone, None);
        {
            let state = speaker.lock();
            assert!(state.failed);
        }
        // …the next call does try it again.
        let mut sink = speaker.sink();
        sink.write(&[0; FRAME_SAMPLES]).unwrap();
        speaker.wait_closed(Duration::from_secs(10));
        sink_attempts = *attempts.lock().unwrap();
        assert_eq!(sink_attempts, 2);
    }
}
