//! The ALSA backend through alsa-lib itself, on its userspace plugins (no sound card needed):
//! `file` PCMs over `null` read the microphone from a raw file and write the speaker to one.
//! A `plug` + `multi` stack stands for a card that only runs 44.1 kHz stereo (with alsa-lib's
//! resampling off, as the backend asks, the plug offers only its slave's rate).
//!
//! alsa-lib reads its configuration once per process, before the first ALSA call: every test
//! here calls [`setup`] first, which writes the configuration and points `ALSA_CONFIG_PATH` at
//! it (after the system's `alsa.conf`, which must stay first).
//!
//! The plugins do not pace, and neither do these tests: a capture is read with [`read_frame`],
//! which awaits the capture thread's samples before each read (a call reads on its own 20 ms
//! clock instead, and a read that finds too little fills in silence).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use intercom::media::alsa::{AlsaCapture, AlsaPlayback, SampleFormat};
use intercom::media::opus_codec::{OpusDecoder, OpusEncoder};
use intercom::media::speaker::Speaker;
use intercom::media::speechlike::speech_like;
use intercom::media::AudioEndpoint;
use intercom::media::{open_audio_sink, AudioSource, FRAME_SAMPLES};

const WAIT: Duration = Duration::from_secs(30);

fn setup() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let d = dir.display();
        let conf = format!(
            r#"
pcm.door_mic {{ type file; slave.pcm "null"; file "/dev/null"; infile "{d}/mic.raw"; format "raw" }}
pcm.door_speaker {{ type file; slave.pcm "null"; file "{d}/speaker.raw"; format "raw" }}
pcm.xrun_mic {{ type file; slave.pcm "null"; file "/dev/null"; infile "{d}/xrun_mic.raw"; format "raw" }}
pcm.xrun_speaker {{ type file; slave.pcm "null"; file "{d}/xrun_speaker.raw"; format "raw" }}
pcm.stereo_null {{
    type multi
    slaves.a {{ pcm "null"; channels 2 }}
    bindings.0 {{ slave a; channel 0 }}
    bindings.1 {{ slave a; channel 1 }}
}}
pcm.rate44 {{ type plug; slave {{ pcm "stereo_null"; rate 44100 }} }}
pcm.card44 {{
    type multi
    slaves.a {{ pcm "rate44"; channels 2 }}
    bindings.0 {{ slave a; channel 0 }}
    bindings.1 {{ slave a; channel 1 }}
}}
pcm.mic44 {{ type file; slave.pcm "card44"; file "/dev/null"; infile "{d}/mic44.raw"; format "raw" }}
pcm.speaker44 {{ type file; slave.pcm "card44"; file "{d}/speaker44.raw"; format "raw" }}
pcm.hanging_mic {{ type file; slave.pcm "null"; file "/dev/null"; infile "{d}/hanging.fifo"; format "raw" }}
"#
        );
        // A FIFO nobody writes to: alsa-lib's `file` plugin opens its input blocking, whatever
        // the PCM's mode, so opening `hanging_mic` hangs (as a busy `hw` device does without
        // SND_PCM_NONBLOCK).
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("hanging.fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let path = dir.join("asound.conf");
        std::fs::write(&path, conf).unwrap();
        std::env::set_var(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", path.display()),
        );
        dir
    })
}

/// Reads the microphone's next frame once the capture thread has it, so that it holds captured
/// samples only.
fn read_frame(mic: &mut AlsaCapture, frame: &mut [i16]) {
    assert!(
        mic.wait_ready(frame.len(), WAIT),
        "the microphone delivered nothing"
    );
    mic.read(frame).unwrap();
}

fn write_raw(path: &Path, samples: &[i16]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_raw(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The best normalised correlation of `b` against `a` over lags `0..max_lag` (b late), and
/// that lag.
fn best_lag(a: &[i16], b: &[i16], max_lag: usize) -> (f64, usize) {
    let n = a.len().min(b.len().saturating_sub(max_lag));
    let energy = |x: &[i16]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    let ea = energy(&a[..n]);
    (0..max_lag)
        .map(|lag| {
            let dot: f64 = a[..n]
                .iter()
                .zip(&b[lag..lag + n])
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            (dot / (ea * energy(&b[lag..lag + n])).sqrt().max(1.0), lag)
        })
        .fold((f64::MIN, 0), |best, c| if c.0 > best.0 { c } else { best })
}

/// Amplitude of `freq` in `x` (one DFT bin), and the RMS of what is not that tone.
fn tone_and_rest(x: &[f64], freq: f64, rate: f64) -> (f64, f64) {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let w = std::f64::consts::TAU * freq * i as f64 / rate;
        re += s * w.cos();
        im += s * w.sin();
    }
    let n = x.len() as f64;
    let amp = 2.0 * (re * re + im * im).sqrt() / n;
    let phase = im.atan2(re);
    let rest = x
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = std::f64::consts::TAU * freq * i as f64 / rate;
            (s - amp * (w - phase).cos()).powi(2)
        })
        .sum::<f64>()
        / n;
    (amp, rest.sqrt())
}

#[test]
fn the_microphone_becomes_opus_that_decodes_to_what_it_heard() {
    let dir = setup();
    let input = speech_like(3, 2 * 48_000, 0.5);
    write_raw(&dir.join("mic.raw"), &input);
    // What `open_call_source` opens for a PCM with the processing off.
    let mut mic = AlsaCapture::open("door_mic", None).unwrap();
    let mut encoder = OpusEncoder::new().unwrap();
    let mut decoder = OpusDecoder::new().unwrap();
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut decoded = Vec::new();
    // The input, and as much again: past the file's end the microphone hears silence.
    for _ in 0..2 * input.len() / FRAME_SAMPLES {
        read_frame(&mut mic, &mut frame);
        let packet = encoder.encode(&frame).unwrap();
        decoded.extend_from_slice(decoder.decode(&packet).unwrap());
    }
    assert_eq!(mic.underruns(), 0);
    // Opus's delay (6.5 ms); the lag is searched up to 100 ms.
    let (correlation, lag) = best_lag(&input, &decoded, 4800);
    println!("correlation {correlation:.3} at lag {lag}");
    assert!(
        correlation > 0.9,
        "correlation {correlation:.3} at lag {lag}"
    );
    // Nothing but the codec's delay in front: no silence from the capture's start.
    assert!(lag <= 480, "lag {lag}");
    // Past the input: the file's end reads as silence.
    let tail = &decoded[lag + input.len() + 5 * FRAME_SAMPLES..];
    let peak = tail.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak < 200, "peak {peak} after the end");
}

#[test]
fn the_peers_audio_reaches_the_speaker() {
    let dir = setup();
    let speaker = Speaker::shared("door_speaker");
    let voice = speech_like(4, 48_000, 0.5);
    let mut encoder = OpusEncoder::new().unwrap();
    let mut decoder = OpusDecoder::new().unwrap();
    let mut sink = open_audio_sink(&AudioEndpoint::Pcm("door_speaker".into())).unwrap();
    let mut played = Vec::new();
    for (i, frame) in voice.chunks_exact(FRAME_SAMPLES).enumerate() {
        // As the call does: each packet decoded into the speaker as it arrives. Packets arrive
        // at the speaker's pace: never more than three frames ahead of it.
        let samples = decoder
            .decode(&encoder.encode(frame).unwrap())
            .unwrap()
            .to_vec();
        sink.write(&samples).unwrap();
        played.push(samples);
        if i >= 3 {
            speaker.wait_queued_at_most(3 * FRAME_SAMPLES, WAIT);
        }
    }
    drop(sink);
    let stats = speaker.wait_closed(WAIT);
    assert!(!stats.open && stats.last_error.is_none(), "{stats:?}");
    let file = read_raw(&dir.join("speaker.raw"));
    // Every decoded frame is in the file, unchanged, in order.
    let mut at = 0;
    for (i, frame) in played.iter().enumerate() {
        let found = file[at..]
            .windows(frame.len())
            .position(|w| w == &frame[..])
            .unwrap_or_else(|| panic!("frame {i} is not in the speaker's output"));
        at += found + frame.len();
    }
    assert_eq!(
        stats.written as usize,
        file.len() - 480,
        "plus a 10 ms cushion"
    );
}

#[test]
fn capture_xruns_are_recovered_and_counted() {
    let dir = setup();
    let input = speech_like(5, 48_000, 0.5);
    write_raw(&dir.join("xrun_mic.raw"), &input);
    let mut mic = AlsaCapture::open("xrun_mic", None).unwrap();
    let mut got = Vec::new();
    let mut frame = vec![0i16; FRAME_SAMPLES];
    for i in 0..80 {
        if i == 20 {
            mic.simulate_xrun();
        }
        read_frame(&mut mic, &mut frame);
        got.extend_from_slice(&frame);
    }
    assert_eq!(mic.xruns(), 1);
    assert_eq!(mic.underruns(), 0);
    // The capture went on: the file's samples, in order, after the silence of the start. (The
    // file plugin loses nothing in a recovery; a card would lose what it overran.)
    let start = got.iter().position(|&s| s != 0).unwrap();
    let first = input.iter().position(|&s| s != 0).unwrap();
    let n = (got.len() - start).min(input.len() - first);
    assert!(n > 40_000, "{n} samples compared");
    assert_eq!(&got[start..start + n], &input[first..first + n]);
}

#[test]
fn playback_xruns_are_recovered_and_counted() {
    let dir = setup();
    let voice = speech_like(6, 48_000, 0.5);
    let mut out = AlsaPlayback::open("xrun_speaker").unwrap();
    for (i, frame) in voice.chunks_exact(FRAME_SAMPLES).enumerate() {
        if i == 10 {
            out.simulate_xrun();
        }
        out.write(frame).unwrap();
    }
    assert_eq!(out.xruns(), 1);
    drop(out);
    let file = read_raw(&dir.join("xrun_speaker.raw"));
    assert_eq!(
        &file[480..],
        &voice[..],
        "after the 10 ms cushion, all of it"
    );
}

#[test]
fn a_44k1_stereo_card_is_converted_both_ways() {
    let dir = setup();
    // Capture: a 1 kHz tone on the left, nothing on the right, at 44.1 kHz.
    let stereo: Vec<i16> = (0..44_100)
        .flat_map(|i| {
            let s = 16_000.0 * (std::f64::consts::TAU * 1000.0 * i as f64 / 44_100.0).sin();
            [s as i16, 0]
        })
        .collect();
    write_raw(&dir.join("mic44.raw"), &stereo);
    let mut mic = AlsaCapture::open("mic44", None).unwrap();
    let choice = mic.choice();
    assert_eq!((choice.rate, choice.channels), (44_100, 2), "{choice:?}");
    assert_eq!(choice.format, SampleFormat::S16);
    let mut got = Vec::new();
    let mut frame = vec![0i16; FRAME_SAMPLES];
    for _ in 0..60 {
        read_frame(&mut mic, &mut frame);
        got.extend(frame.iter().map(|&s| f64::from(s)));
    }
    let start = got.iter().position(|&s| s != 0.0).unwrap() + 2000;
    let (amp, rest) = tone_and_rest(&got[start..start + 38_000], 1000.0, 48_000.0);
    // Mixed down: half the left channel's amplitude, at the same pitch.
    assert!((amp - 8000.0).abs() < 100.0, "amplitude {amp}");
    assert!(rest < 30.0, "residue {rest}");
    drop(mic);

    // Playback: a 1 kHz tone at 48 kHz comes out at 44.1 kHz on both channels.
    let speaker = Speaker::shared("speaker44");
    let tone: Vec<i16> = (0..48_000)
        .map(|i| (12_000.0 * (std::f64::consts::TAU * 1000.0 * i as f64 / 48_000.0).sin()) as i16)
        .collect();
    let mut sink = speaker.sink();
    for (i, frame) in tone.chunks_exact(FRAME_SAMPLES).enumerate() {
        intercom::media::AudioSink::write(&mut sink, frame).unwrap();
        if i >= 3 {
            speaker.wait_queued_at_most(3 * FRAME_SAMPLES, WAIT);
        }
    }
    drop(sink);
    let stats = speaker.wait_closed(WAIT);
    assert!(stats.last_error.is_none(), "{stats:?}");
    let file = read_raw(&dir.join("speaker44.raw"));
    let (left, right): (Vec<f64>, Vec<f64>) = file
        .chunks_exact(2)
        .map(|f| (f64::from(f[0]), f64::from(f[1])))
        .unzip();
    assert_eq!(left, right);
    let start = left.iter().position(|&s| s.abs() > 1000.0).unwrap() + 4410;
    let (amp, rest) = tone_and_rest(&left[start..start + 30_000], 1000.0, 44_100.0);
    assert!((amp - 12_000.0).abs() < 150.0, "amplitude {amp}");
    assert!(rest < 40.0, "residue {rest}");
}

#[test]
fn a_missing_device_is_an_error_that_names_it() {
    setup();
    let err = AlsaCapture::open("no_such_mic", None).err().unwrap();
    assert!(err.to_string().contains("\"no_such_mic\""), "{err}");
    let speaker = Speaker::shared("no_such_speaker");
    let mut sink = speaker.sink();
    // The call goes on: writing never fails…
    intercom::media::AudioSink::write(&mut sink, &[0; FRAME_SAMPLES]).unwrap();
    // …and the speaker says why it plays nothing.
    let stats = speaker.wait_closed(WAIT);
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap()
            .contains("\"no_such_speaker\""),
        "{stats:?}"
    );
}

/// A microphone whose open hangs is given up (bounded, on a thread of its own), with an error
/// naming it; while that open still hangs, the same PCM is not opened again.
#[test]
fn a_microphone_whose_open_hangs_is_given_up() {
    setup();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(AlsaCapture::open("hanging_mic", None).map(drop));
    });
    let opened = rx
        .recv_timeout(WAIT)
        .expect("opening a microphone that hangs never returned");
    let e = opened.unwrap_err();
    assert!(
        e.to_string().contains("\"hanging_mic\"")
            && e.to_string().contains("no answer from the device"),
        "{e}"
    );
    let again = AlsaCapture::open("hanging_mic", None)
        .map(drop)
        .unwrap_err();
    assert!(
        again.to_string().contains("\"hanging_mic\"")
            && again
                .to_string()
                .contains("an earlier open has not returned"),
        "{again}"
    );
}
