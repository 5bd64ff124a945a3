//! Opening a PCM: non-blocking, on a thread of its own, given up after [`OPEN_TIMEOUT`]; a
//! PCM whose open still hangs is not opened again; the hardware parameters negotiated.

use super::*;

/// The opens of PCMs under way, by name and direction, with when each began: a PCM whose open
/// has hung past [`OPEN_TIMEOUT`] is not opened again until that open returns.
pub(super) fn opening() -> std::sync::MutexGuard<'static, BTreeMap<(String, bool), Instant>> {
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
pub(super) fn open_now(name: &str, direction: Direction) -> Result<(PCM, HwChoice), MediaError> {
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
