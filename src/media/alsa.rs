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

/// The opens of PCMs under way, by name and direction, with when each began: a PCM whose open
/// has hung past [`OPEN_TIMEOUT`] is not opened again until that open returns.
fn opening() -> std::sync::MutexGuard<'static, BTreeMap<(String, bool), Instant>> {
    static OPENING: Mutex<BTreeMap<(String, bool), Instant>> = Mutex::new(BTreeMap::new());
    OPENING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens `name` and negotiates, on a thread of its own, waiting at most [`OPEN_TIMEOUT`]. See
/// the module.
pub fn open_pcm(name: &str, direction: Direction) -> Result<(PCM, HwChoice), MediaError> {
    open_pcm_within(name, direction, OPEN_TIMEOUT)
}

/// [`open_pcm`] with another bound, for tests.
#[doc(hidden)]
pub fn open_pcm_within(
    name: &str,
    direction: Direction,
    timeout: Duration,
) -> Result<(PCM, HwChoice), MediaError> {
    let key = (name.to_owned(), direction == Direction::Capture);
    {
        let mut opening = opening();
        if let Some(began) = opening.get(&key) {
            if began.elapsed() >= timeout {
                return Err(MediaError::Open(format!(
                    "{} {name:?}: an earlier open has not returned for {}s: the device hangs",
                    label(direction),
                    began.elapsed().as_secs()
                )));
            }
        }
        opening.insert(key.clone(), Instant::now());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_name = name.to_owned();
    let spawned = std::thread::Builder::new()
        .name("alsa-open".to_owned())
        .spawn(move || {
            let result = open_now(&thread_name, direction);
            opening().remove(&key);
            // Nobody waits any more: the PCM opened too late is closed here.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        opening().remove(&(name.to_owned(), direction == Direction::Capture));
        return Err(MediaError::Failed(format!(
            "{} {name:?}: no thread to open it: {e}",
            label(direction)
        )));
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(MediaError::Open(format!(
            "{} {name:?}: cannot open: no answer from the device within {}s (busy, or held by another program)",
            label(direction),
            timeout.as_secs_f32()
        ))),
    }
}

/// Opens `name` non-blocking and negotiates, on the calling thread.
fn open_now(name: &str, direction: Direction) -> Result<(PCM, HwChoice), MediaError> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: ::alsa::Error| error(name, direction, &what, e)
    };
    let c_name = CString::new(name).map_err(|_| {
        MediaError::Open(format!(
            "{} {name:?}: a PCM name cannot hold a NUL byte",
            label(direction)
        ))
    })?;
    let pcm = PCM::open(&c_name, direction, true).map_err(err("cannot open"))?;
    let choice = {
        let hw = HwParams::any(&pcm).map_err(err("no hardware parameters"))?;
        // Our resampler, not alsa-lib's: with this off, plug devices offer the card's rates.
        let _ = hw.set_rate_resample(false);
        hw.set_access(Access::RWInterleaved)
            .map_err(err("no interleaved read/write access"))?;
        let format = if hw.set_format(Format::s16()).is_ok() {
            SampleFormat::S16
        } else if hw.set_format(Format::s32()).is_ok() {
            SampleFormat::S32
        } else {
            return Err(MediaError::Unsupported(format!(
                "{} {name:?}: the device takes neither S16 nor S32 samples",
                label(direction)
            )));
        };
        let channels = hw
            .set_channels_near(1)
            .map_err(err("cannot set a channel count"))?;
        let rate = hw
            .set_rate_near(SAMPLE_RATE, ValueOr::Nearest)
            .map_err(err("cannot set a rate"))?;
        let period = hw
            .set_period_size_near(
                ::alsa::pcm::Frames::from(rate * PERIOD_MS / 1000),
                ValueOr::Nearest,
            )
            .map_err(err("cannot set a period size"))?;
        let periods = match direction {
            Direction::Playback => PLAYBACK_PERIODS,
            Direction::Capture => CAPTURE_PERIODS,
        };
        let buffer = hw
            .set_buffer_size_near(period * periods as ::alsa::pcm::Frames)
            .map_err(err("cannot set a buffer size"))?;
        pcm.hw_params(&hw)
            .map_err(err("cannot apply the hardware parameters"))?;
        HwChoice {
            rate,
            channels,
            format,
            period: period.max(1) as usize,
            buffer: buffer.max(1) as usize,
        }
    };
    log::info!(
        "{} {name:?}: {} Hz, {} channel(s), {:?}, period {} frames ({:.1} ms), buffer {} frames ({:.1} ms){}",
        label(direction),
        choice.rate,
        choice.channels,
        choice.format,
        choice.period,
        choice.period as f64 * 1000.0 / f64::from(choice.rate),
        choice.buffer,
        choice.buffer as f64 * 1000.0 / f64::from(choice.rate),
        if choice.rate != SAMPLE_RATE || choice.channels != 1 {
            "; converted to 48 kHz mono here"
        } else {
            ""
        }
    );
    Ok((pcm, choice))
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

/// What the capture thread and [`AlsaCapture`] share.
struct CaptureShared {
    state: Mutex<CaptureState>,
    changed: Condvar,
}

#[derive(Default)]
struct CaptureState {
    queue: VecDeque<i16>,
    primed: bool,
    error: Option<MediaError>,
    closed: bool,
    /// Reads that found too little and were filled in with silence.
    underruns: u64,
}

/// A microphone on an ALSA PCM. See the module.
pub struct AlsaCapture {
    shared: Arc<CaptureShared>,
    thread: Option<JoinHandle<()>>,
    choice: HwChoice,
    xruns: Arc<AtomicU64>,
    simulate_xrun: Arc<AtomicBool>,
}

impl AlsaCapture {
    /// Opens `name` and starts reading it; `processing` runs on each 10 ms frame.
    pub fn open(name: &str, processing: Option<EchoCanceller>) -> Result<AlsaCapture, MediaError> {
        let device = Device::open(name, Direction::Capture)?;
        let resampler = Resampler::new(device.choice.rate, SAMPLE_RATE)?;
        let shared = Arc::new(CaptureShared {
            state: Mutex::new(CaptureState::default()),
            changed: Condvar::new(),
        });
        let choice = device.choice;
        let xruns = Arc::clone(&device.xruns);
        let simulate_xrun = Arc::clone(&device.simulate_xrun);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("audio-capture".to_owned())
            .spawn(move || capture_thread(device, resampler, processing, &thread_shared))
            .map_err(|e| MediaError::Failed(format!("audio capture {name:?}: no thread: {e}")))?;
        Ok(AlsaCapture {
            shared,
            thread: Some(thread),
            choice,
            xruns,
            simulate_xrun,
        })
    }

    /// What was negotiated with the device.
    pub fn choice(&self) -> HwChoice {
        self.choice
    }

    /// Xruns (overruns) recovered so far.
    pub fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }

    /// Reads that found no samples ready and played silence instead.
    pub fn underruns(&self) -> u64 {
        self.lock().underruns
    }

    /// Waits until a [`read`](AudioSource::read) of `samples` would return captured samples
    /// only, no silence filled in (or the device failed, or `timeout` passed); returns whether
    /// it would. `samples` is at most the queue's 60 ms. The call reads on its own clock and never needs this; a reader that is not
    /// paced (a test on alsa-lib's unpaced plugins) awaits the capture thread with it.
    pub fn wait_ready(&self, samples: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let ready = |state: &CaptureState| {
            let needed = if state.primed {
                samples
            } else {
                CAPTURE_PRIME.max(samples)
            };
            state.queue.len() >= needed
        };
        let mut state = self.lock();
        loop {
            if ready(&state) {
                return true;
            }
            let now = std::time::Instant::now();
            if state.error.is_some() || now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Makes the device's next read meet an xrun, recovered as a real one is (`snd_pcm_recover`
    /// with `EPIPE` on the open PCM). For tests: alsa-lib's userspace plugins never overrun.
    #[doc(hidden)]
    pub fn simulate_xrun(&self) {
        self.simulate_xrun.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaptureState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AudioSource for AlsaCapture {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        let shared = Arc::clone(&self.shared);
        let mut state = self.lock();
        let mut waited = false;
        loop {
            if let Some(e) = &state.error {
                return Err(e.clone());
            }
            if !state.primed {
                if state.queue.len() >= CAPTURE_PRIME.max(buf.len()) {
                    state.primed = true;
                } else {
                    buf.fill(0);
                    return Ok(());
                }
            }
            if state.queue.len() >= buf.len() || waited {
                let n = buf.len().min(state.queue.len());
                for (d, s) in buf.iter_mut().zip(state.queue.drain(..n)) {
                    *d = s;
                }
                if n < buf.len() {
                    buf[n..].fill(0);
                    state.primed = false;
                    state.underruns += 1;
                }
                shared.changed.notify_all();
                return Ok(());
            }
            state = shared
                .changed
                .wait_timeout(state, CAPTURE_WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            waited = true;
        }
    }
}

impl Drop for AlsaCapture {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn capture_thread(
    mut device: Device,
    mut resampler: Resampler,
    mut processing: Option<EchoCanceller>,
    shared: &CaptureShared,
) {
    let channels = device.choice.channels as usize;
    let (mut raw, mut mono, mut resampled) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending: Vec<i16> = Vec::new();
    let lock = || shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let fail = |e: MediaError| {
        log::warn!("{e}");
        let mut state = lock();
        state.error = Some(e);
        shared.changed.notify_all();
    };
    loop {
        if lock().closed {
            return;
        }
        if let Err(e) = device.read_period(&mut raw) {
            return fail(e);
        }
        mono.clear();
        downmix(&raw, channels, &mut mono);
        resampled.clear();
        resampler.process(&mono, &mut resampled);
        pending.extend(resampled.iter().map(|&s| f32_to_i16(s)));
        let whole = pending.len() / FRAME_10MS * FRAME_10MS;
        if let Some(p) = &mut processing {
            for frame in pending[..whole].chunks_exact_mut(FRAME_10MS) {
                if let Err(e) = p.process(frame) {
                    return fail(e);
                }
            }
        }
        let mut state = lock();
        for &s in &pending[..whole] {
            while state.queue.len() >= CAPTURE_QUEUE && !state.closed {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if state.closed {
                return;
            }
            state.queue.push_back(s);
        }
        shared.changed.notify_all();
        drop(state);
        pending.drain(..whole);
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
