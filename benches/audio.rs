//! What the door's audio processing costs: CPU time per 10 ms frame of the echo canceller
//! (sonora, with and without noise suppression and gain control), the resampler and the channel
//! conversion, and per 20 ms frame of Opus (encoding at the door's complexity and at libopus's
//! default, decoding), on a speech-like signal with its echo. Prints a table of medians and 90th
//! percentiles, and the share of real time (10 ms) each takes.
//!
//! `cargo bench --bench audio`. `INTERCOM_BENCH_SECONDS` sets the audio per row (default 20).

use std::hint::black_box;
use std::time::{Duration, Instant};

use intercom::media::aec::{EchoCanceller, Processing, Reference, FRAME_10MS};
use intercom::media::opus_codec::{OpusDecoder, OpusEncoder, COMPLEXITY};
use intercom::media::resample::{downmix, Resampler};
use intercom::media::speechlike::speech_like;
use intercom::media::FRAME_SAMPLES;

struct Row {
    what: &'static str,
    times: Vec<Duration>,
    /// The audio each time is for, in ms (10 unless it is Opus's 20 ms frame).
    frame_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The far end and the microphone (echo 25 ms late, 10 dB down, plus a local voice).
fn signals(n: usize) -> (Vec<i16>, Vec<i16>) {
    let far = speech_like(1, n, 0.5);
    let near = speech_like(2, n, 0.2);
    let delay = 1200;
    let mic = (0..n)
        .map(|i| {
            let echo = if i >= delay {
                far[i - delay] as f32 * 0.3
            } else {
                0.0
            };
            (echo + near[i] as f32) as i16
        })
        .collect();
    (far, mic)
}

fn canceller(processing: Processing, far: &[i16], mic: &[i16]) -> Vec<Duration> {
    let reference = Reference::new();
    let mut aec = EchoCanceller::new(processing, reference.clone());
    let mut frame = vec![0i16; FRAME_10MS];
    far.chunks_exact(FRAME_10MS)
        .zip(mic.chunks_exact(FRAME_10MS))
        .map(|(f, m)| {
            reference.push(f);
            frame.copy_from_slice(m);
            let start = Instant::now();
            aec.process(&mut frame).unwrap();
            black_box(&frame);
            start.elapsed()
        })
        .collect()
}

fn main() {
    let seconds: usize = std::env::var("INTERCOM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let n = seconds * 48_000;
    let (far, mic) = signals(n);
    let mut rows = Vec::new();
    for (what, processing) in [
        (
            "sonora AEC3 + NS + AGC2 (the default)",
            Processing::default(),
        ),
        (
            "sonora AEC3 only",
            Processing {
                echo_cancellation: true,
                ..Processing::off()
            },
        ),
        (
            "sonora NS + AGC2 (echo_cancellation = false)",
            Processing {
                echo_cancellation: false,
                ..Processing::default()
            },
        ),
    ] {
        rows.push(Row {
            what,
            times: canceller(processing, &far, &mic),
            frame_ms: 10.0,
        });
    }
    // Conversion of a 44.1 kHz stereo capture device, 10 ms at a time.
    let stereo: Vec<f32> = far
        .iter()
        .take(n * 441 / 480)
        .flat_map(|&s| [s as f32 / 32768.0, s as f32 / 32768.0])
        .collect();
    let mut resampler = Resampler::new(44_100, 48_000).unwrap();
    let (mut mono, mut out) = (Vec::new(), Vec::new());
    let times = stereo
        .chunks_exact(441 * 2)
        .map(|block| {
            let start = Instant::now();
            mono.clear();
            out.clear();
            downmix(block, 2, &mut mono);
            resampler.process(&mono, &mut out);
            black_box(&out);
            start.elapsed()
        })
        .collect();
    rows.push(Row {
        what: "44.1 kHz stereo -> 48 kHz mono (capture)",
        times,
        frame_ms: 10.0,
    });
    let mut resampler = Resampler::new(48_000, 44_100).unwrap();
    let input: Vec<f32> = far.iter().map(|&s| s as f32 / 32768.0).collect();
    let times = input
        .chunks_exact(FRAME_10MS)
        .map(|block| {
            let start = Instant::now();
            out.clear();
            resampler.process(block, &mut out);
            black_box(&out);
            start.elapsed()
        })
        .collect();
    rows.push(Row {
        what: "48 kHz -> 44.1 kHz (playback)",
        times,
        frame_ms: 10.0,
    });
    // Opus, 20 ms frames of the microphone's speech: the door's complexity and libopus's default.
    for (what, complexity) in [
        (
            "Opus encode, 20 ms frame, complexity 5 (the door's)",
            COMPLEXITY,
        ),
        (
            "Opus encode, 20 ms frame, complexity 10 (libopus's default)",
            10,
        ),
    ] {
        let mut encoder = OpusEncoder::with_complexity(complexity).unwrap();
        let times = mic
            .chunks_exact(FRAME_SAMPLES)
            .map(|frame| {
                let start = Instant::now();
                black_box(encoder.encode(frame).unwrap());
                start.elapsed()
            })
            .collect();
        rows.push(Row {
            what,
            times,
            frame_ms: 20.0,
        });
    }
    let mut encoder = OpusEncoder::new().unwrap();
    let packets: Vec<Vec<u8>> = mic
        .chunks_exact(FRAME_SAMPLES)
        .map(|frame| encoder.encode(frame).unwrap())
        .collect();
    let mut decoder = OpusDecoder::new().unwrap();
    let times = packets
        .iter()
        .map(|p| {
            let start = Instant::now();
            black_box(decoder.decode(p).unwrap());
            start.elapsed()
        })
        .collect();
    rows.push(Row {
        what: "Opus decode, 20 ms frame",
        times,
        frame_ms: 20.0,
    });

    println!(
        "\naudio processing: CPU time per frame (10 ms, Opus 20 ms), {seconds} s of speech-like audio per row\n"
    );
    println!("| stage | median µs | p90 µs | share of real time (median) |");
    println!("|---|---:|---:|---:|");
    for row in &mut rows {
        row.times.sort();
        let median = percentile(&row.times, 0.5);
        println!(
            "| {} | {:.1} | {:.1} | {:.2} % |",
            row.what,
            median,
            percentile(&row.times, 0.9),
            median / (row.frame_ms * 1000.0) * 100.0
        );
    }
    println!(
        "| webrtc-audio-processing 2.1 (C++) | not built | | needs abseil >= 20240722 (Debian 12 has 20220623) fetched by meson at build time |"
    );
}
