//! The microphone: a thread per open PCM reads a period at a time, converts, runs the echo
//! canceller and fills a short queue that the call's tick empties.

use super::*;

/// What the capture thread and [`AlsaCapture`] share.
pub(super) struct CaptureShared {
    state: Mutex<CaptureState>,
    changed: Condvar,
}

#[derive(Default)]
pub(super) struct CaptureState {
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

pub(super) fn capture_thread(
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
