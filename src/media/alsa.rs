//! The ALSA backend: the microphone ([`AlsaCapture`]) and the speaker's PCM ([`AlsaPlayback`]).
//!
//! Both negotiate with the device: interleaved access, S16 (or S32 when that is all the device
//! takes), the channel count nearest to one, the rate nearest to 48 kHz, with alsa-lib's own
//! resampling off so that `plughw`/`default` report the hardware's rates. Whatever the device
//! settles on is converted here: mixed down to mono and resampled to 48 kHz on capture, resampled
//! and copied to every channel on playback ([`super::resample`]). Periods are 10 ms; the buffer
//! holds 6 periods for playback and 8 for capture. The choice is logged at `info`.
//!
//! Threads: the capture PCM is read by a thread of its own (blocking reads, one period at a
//! time), which converts, runs the echo canceller ([`super::aec`]) and fills a short queue that
//! [`AlsaCapture::read`] empties, so the daemon's runtime never waits on the sound card. The
//! playback PCM is written by the speaker owner's thread ([`super::speaker`]), never from the
//! runtime. Neither paces the calls: the capture queue holds at most 60 ms, and its thread
//! blocks when that is full (a real device then overruns, which is recovered and counted).
//!
//! Opening: alsa-lib's open can block. A `hw` device another program holds waits until it is
//! free unless opened with `SND_PCM_NONBLOCK`, and some plugins block in open whatever the flag
//! (`file` with a FIFO as its input). So a PCM is opened non-blocking, on a thread of its own,
//! and given up after [`OPEN_TIMEOUT`] (the thread is left to finish, and closes what it opened
//! late); while such an open still hangs, the same PCM is not opened again. The PCM stays in
//! non-blocking mode (the `alsa` crate cannot switch it back): a read or write that finds the
//! device not ready waits for it with `snd_pcm_wait`.
//!
//! Errors: an xrun (`EPIPE`) or a suspend (`ESTRPIPE`) is recovered with `snd_pcm_recover` and
//! counted, never fatal. A device that disappears (`ENODEV`, `ENXIO`, `EBADFD`, `ESHUTDOWN`,
//! `EIO`) is a [`MediaError`] naming the PCM; the device is closed, and opened again next time.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::alsa::pcm::{Access, Format, HwParams, PCM};
use ::alsa::{Direction, ValueOr};

use super::aec::{EchoCanceller, FRAME_10MS};
use super::resample::{downmix, f32_to_i16, upmix, Resampler};
use super::{AudioSource, MediaError, FRAME_SAMPLES, SAMPLE_RATE};

mod capture;
mod open;

pub use capture::AlsaCapture;
pub use open::{open_pcm, open_pcm_within};

/// Periods of this length (10 ms at whatever rate the device runs).
const PERIOD_MS: u32 = 10;
const PLAYBACK_PERIODS: usize = 6;
const CAPTURE_PERIODS: usize = 8;
/// The capture queue: at most this many samples (60 ms) wait for the call to read them.
const CAPTURE_QUEUE: usize = 3 * FRAME_SAMPLES;
/// A read starts taking samples once this many (30 ms) are queued: one frame and some slack for
/// the jitter between the device's periods and the call's clock.
const CAPTURE_PRIME: usize = FRAME_SAMPLES + FRAME_10MS;
/// How long a read waits for a late period before it fills in silence.
const CAPTURE_WAIT: Duration = Duration::from_millis(10);
/// How long opening a PCM may take. Opening a sound card takes milliseconds (a USB card's
/// first open some hundreds); one that takes longer is waiting for something that may never
/// come (a device held by another program).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read or write waits for a device that is not ready before it asks again (and
/// looks whether the stream was closed meanwhile).
const DEVICE_WAIT_MS: u32 = 4 * PERIOD_MS;

/// The sample format the device runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16,
    S32,
}

/// What was negotiated with a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwChoice {
    pub rate: u32,
    pub channels: u32,
    pub format: SampleFormat,
    /// Frames per period and in the whole buffer.
    pub period: usize,
    pub buffer: usize,
}

fn label(direction: Direction) -> &'static str {
    match direction {
        Direction::Capture => "audio capture",
        Direction::Playback => "audio playback",
    }
}

/// Whether `errno` means the device is gone (unplugged, driver unbound).
fn is_gone(errno: i32) -> bool {
    [
        libc::ENODEV,
        libc::ENXIO,
        libc::EBADFD,
        libc::ESHUTDOWN,
        libc::EIO,
    ]
    .contains(&errno)
}

fn error(name: &str, direction: Direction, what: &str, e: ::alsa::Error) -> MediaError {
    let gone = if is_gone(e.errno()) {
        " (the device is gone)"
    } else {
        ""
    };
    let message = format!("{} {name:?}: {what}: {e}{gone}", label(direction));
    if !gone.is_empty() {
        MediaError::Gone(message)
    } else if what == "cannot open" {
        MediaError::Open(message)
    } else {
        MediaError::Failed(message)
    }
}

/// A negotiated PCM with its xrun counter: reads and writes interleaved frames as f32,
/// recovering from xruns.
struct Device {
    pcm: PCM,
    name: String,
    direction: Direction,
    choice: HwChoice,
    xruns: Arc<AtomicU64>,
    /// Makes the next transfer meet an xrun (see [`AlsaCapture::simulate_xrun`]).
    simulate_xrun: Arc<AtomicBool>,
    raw16: Vec<i16>,
    raw32: Vec<i32>,
}

impl Device {
    fn open(name: &str, direction: Direction) -> Result<Device, MediaError> {
        let (pcm, choice) = open_pcm(name, direction)?;
        Ok(Device {
            pcm,
            name: name.to_owned(),
            direction,
            choice,
            xruns: Arc::new(AtomicU64::new(0)),
            simulate_xrun: Arc::new(AtomicBool::new(false)),
            raw16: Vec::new(),
            raw32: Vec::new(),
        })
    }

    /// Recovers from `e` if it is an xrun or a suspend; anything else comes back as the error.
    fn recover(&self, what: &str, e: ::alsa::Error) -> Result<(), MediaError> {
        let errno = e.errno();
        if errno == libc::EPIPE || errno == libc::ESTRPIPE || errno == libc::EINTR {
            if errno == libc::EPIPE {
                let n = self.xruns.fetch_add(1, Ordering::Relaxed) + 1;
                log::warn!(
                    "{} {:?}: {} (xrun {n}); recovering",
                    label(self.direction),
                    self.name,
                    if self.direction == Direction::Capture {
                        "overrun"
                    } else {
                        "underrun"
                    }
                );
            }
            self.pcm
                .try_recover(e, true)
                .map_err(|e| error(&self.name, self.direction, "cannot recover", e))
        } else {
            Err(error(&self.name, self.direction, what, e))
        }
    }

    /// An xrun asked for by a test: the same recovery a real one gets.
    fn simulated_xrun(&self) -> Result<(), MediaError> {
        if self.simulate_xrun.swap(false, Ordering::Relaxed) {
            self.recover("xrun", ::alsa::Error::new("snd_pcm_readi", libc::EPIPE))?;
        }
        Ok(())
    }

    /// Reads one period; returns it as interleaved floats. The buffer is silence before each
    /// read: a plugin that delivers no samples (`null`, a `file` past its input's end) leaves it
    /// as it is, which would otherwise repeat the last period read.
    fn read_period(&mut self, out: &mut Vec<f32>) -> Result<(), MediaError> {
        let ch = self.choice.channels as usize;
        let len = self.choice.period * ch;
        out.clear();
        loop {
            self.simulated_xrun()?;
            let result = match self.choice.format {
                SampleFormat::S16 => {
                    self.raw16.clear();
                    self.raw16.resize(len, 0);
                    let io = self
                        .pcm
                        .io_i16()
                        .map_err(|e| error(&self.name, self.direction, "no I/O", e))?;
                    io.readi(&mut self.raw16).map(|n| {
                        out.extend(self.raw16[..n * ch].iter().map(|&s| f32::from(s) / 32768.0));
                    })
                }
                SampleFormat::S32 => {
                    self.raw32.clear();
                    self.raw32.resize(len, 0);
                    let io = self
                        .pcm
                        .io_i32()
                        .map_err(|e| error(&self.name, self.direction, "no I/O", e))?;
                    io.readi(&mut self.raw32).map(|n| {
                        out.extend(
                            self.raw32[..n * ch]
                                .iter()
                                .map(|&s| s as f32 / 2_147_483_648.0),
                        );
                    })
                }
            };
            match result {
                Ok(()) if !out.is_empty() => return Ok(()),
                Ok(()) => continue,
                Err(e) if e.errno() == libc::EAGAIN => self.wait_ready()?,
                Err(e) => self.recover("read failed", e)?,
            }
        }
    }

    /// Waits (a little) for the non-blocking PCM to be ready for the next read or write.
    fn wait_ready(&self) -> Result<(), MediaError> {
        match self.pcm.wait(Some(DEVICE_WAIT_MS)) {
            Ok(_) => Ok(()),
            Err(e) => self.recover("wait failed", e),
        }
    }

    /// Writes all of `interleaved`.
    fn write_all(&mut self, interleaved: &[f32]) -> Result<(), MediaError> {
        let ch = self.choice.channels as usize;
        match self.choice.format {
            SampleFormat::S16 => {
                self.raw16.clear();
                self.raw16
                    .extend(interleaved.iter().map(|&s| f32_to_i16(s)));
            }
            SampleFormat::S32 => {
                self.raw32.clear();
                self.raw32.extend(
                    interleaved
                        .iter()
                        .map(|&s| (f64::from(s.clamp(-1.0, 1.0)) * 2_147_483_647.0) as i32),
                );
            }
        }
        let frames = interleaved.len() / ch;
        let mut done = 0;
        while done < frames {
            self.simulated_xrun()?;
            let result = match self.choice.format {
                SampleFormat::S16 => self
                    .pcm
                    .io_i16()
                    .and_then(|io| io.writei(&self.raw16[done * ch..frames * ch])),
                SampleFormat::S32 => self
                    .pcm
                    .io_i32()
                    .and_then(|io| io.writei(&self.raw32[done * ch..frames * ch])),
            };
            match result {
                Ok(n) => done += n,
                Err(e) if e.errno() == libc::EAGAIN => self.wait_ready()?,
                Err(e) => self.recover("write failed", e)?,
            }
        }
        Ok(())
    }
}

/// The speaker's PCM: 48 kHz mono in, whatever the device runs at out. Written by one thread.
pub struct AlsaPlayback {
    device: Device,
    resampler: Resampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    interleaved: Vec<f32>,
}

impl AlsaPlayback {
    /// Opens `name` and writes one period of silence, so that the buffer has a cushion against
    /// the jitter of the writer's clock.
    pub fn open(name: &str) -> Result<AlsaPlayback, MediaError> {
        let device = Device::open(name, Direction::Playback)?;
        let resampler = Resampler::new(SAMPLE_RATE, device.choice.rate)?;
        let mut playback = AlsaPlayback {
            device,
            resampler,
            mono: Vec::new(),
            resampled: Vec::new(),
            interleaved: Vec::new(),
        };
        let cushion = vec![0.0; playback.device.choice.period * playback.channels()];
        playback.device.write_all(&cushion)?;
        Ok(playback)
    }

    fn channels(&self) -> usize {
        self.device.choice.channels as usize
    }

    /// What was negotiated with the device.
    pub fn choice(&self) -> HwChoice {
        self.device.choice
    }

    /// Writes 48 kHz mono samples; blocks while the device's buffer is full.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        self.mono.clear();
        self.mono
            .extend(samples.iter().map(|&s| super::resample::i16_to_f32(s)));
        self.resampled.clear();
        self.resampler.process(&self.mono, &mut self.resampled);
        self.interleaved.clear();
        upmix(&self.resampled, self.channels(), &mut self.interleaved);
        let interleaved = std::mem::take(&mut self.interleaved);
        let result = self.device.write_all(&interleaved);
        self.interleaved = interleaved;
        result
    }

    /// Xruns (underruns) recovered so far.
    pub fn xruns(&self) -> u64 {
        self.device.xruns.load(Ordering::Relaxed)
    }

    /// Makes the next write meet an xrun, recovered as a real one is. For tests.
    #[doc(hidden)]
    pub fn simulate_xrun(&self) {
        self.device.simulate_xrun.store(true, Ordering::Relaxed);
    }
}

impl Drop for AlsaPlayback {
    fn drop(&mut self) {
        // Play out what is queued (at most the buffer, 60 ms) before closing. Non-blocking,
        // drain only starts draining: wait for it to end, within a bound.
        let pcm = &self.device.pcm;
        if pcm.drain().is_err() {
            let deadline = Instant::now() + Duration::from_millis(200);
            while pcm.state() == ::alsa::pcm::State::Draining && Instant::now() < deadline {
                let _ = pcm.wait(Some(PERIOD_MS));
            }
        }
    }
}

/// Whether `name` opens for `direction` with parameters this backend can use (`intercom check`).
pub fn probe(name: &str, direction: Direction) -> Result<HwChoice, MediaError> {
    open_pcm(name, direction).map(|(_, choice)| choice)
}

/// PCMs as (name, description).
pub type PcmList = Vec<(String, String)>;

/// The PCMs alsa-lib declares, split by direction: (capture, playback), each (name, description).
pub fn pcms_by_direction() -> (PcmList, PcmList) {
    let mut capture = Vec::new();
    let mut playback = Vec::new();
    let Ok(hints) = ::alsa::device_name::HintIter::new_str(None, "pcm") else {
        return (capture, playback);
    };
    for h in hints {
        let Some(name) = h.name else { continue };
        let desc = h.desc.unwrap_or_default().replace('\n', " — ");
        // No direction hint: both.
        match h.direction {
            Some(Direction::Capture) => capture.push((name, desc)),
            Some(Direction::Playback) => playback.push((name, desc)),
            None => {
                capture.push((name.clone(), desc.clone()));
                playback.push((name, desc));
            }
        }
    }
    (capture, playback)
}
