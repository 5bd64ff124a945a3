//! Echo cancellation as the door runs it: what the speaker plays goes to the canceller's
//! reference (as the speaker owner pushes it), and the microphone hears it back 25 ms later,
//! 10 dB down, with a second, independent voice joining halfway. After convergence the echo
//! must be cancelled by at least 20 dB (ERLE), and the second voice must survive.

use intercom::media::aec::{EchoCanceller, Processing, Reference, FRAME_10MS};
use intercom::media::speechlike::speech_like;

const RATE: usize = 48_000;

fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

/// The best normalised correlation of `b` with `a` delayed by up to `max_lag` samples.
fn best_correlation(a: &[i16], b: &[i16], max_lag: usize) -> f64 {
    let n = a.len() - max_lag;
    (0..max_lag)
        .map(|lag| {
            let (x, y) = (&a[..n], &b[lag..lag + n]);
            let dot: f64 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum();
            dot / (energy(x) * energy(y)).sqrt() / n as f64
        })
        .fold(f64::MIN, f64::max)
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// Runs 16 s: the far end talks throughout; the visitor (`near`) talks in the last 4 s only.
/// Returns (mic, output, near) sample vectors.
fn run(processing: Processing, delay: usize) -> (Vec<i16>, Vec<i16>, Vec<i16>) {
    let n = 16 * RATE;
    let far = speech_like(11, n, 0.5);
    let mut near = speech_like(12, n, 0.25);
    near[..12 * RATE].fill(0);
    let mic: Vec<i16> = (0..n)
        .map(|i| {
            let echo = if i >= delay {
                f64::from(far[i - delay]) * 0.316
            } else {
                0.0
            };
            (echo + f64::from(near[i])).round() as i16
        })
        .collect();
    let reference = Reference::new();
    let mut aec = EchoCanceller::new(processing, reference.clone());
    let mut out = Vec::with_capacity(n);
    for (f, m) in far
        .chunks_exact(FRAME_10MS)
        .zip(mic.chunks_exact(FRAME_10MS))
    {
        reference.push(f);
        let mut frame = m.to_vec();
        aec.process(&mut frame).unwrap();
        out.extend_from_slice(&frame);
    }
    (mic, out, near)
}

#[test]
fn the_speakers_echo_is_cancelled_and_the_visitor_is_not() {
    for delay_ms in [10, 25, 40] {
        let delay = delay_ms * RATE / 1000;
        let processing = Processing {
            echo_cancellation: true,
            noise_suppression: false,
            gain_control: false,
        };
        let (mic, out, near) = run(processing, delay);
        // Echo only, after 6 s of convergence.
        let echo = 6 * RATE..12 * RATE;
        let erle = db(energy(&mic[echo.clone()]) / energy(&out[echo]).max(1.0));
        assert!(erle >= 20.0, "{delay_ms} ms: ERLE {erle:.1} dB");
        // Double talk: the visitor's voice in the output keeps its level within 6 dB.
        let talk = 12 * RATE..16 * RATE;
        let kept = db(energy(&out[talk.clone()]) / energy(&near[talk.clone()]));
        assert!(kept.abs() <= 6.0, "{delay_ms} ms: visitor at {kept:+.1} dB");
        // How much the output looks like the visitor (the best lag over 10 ms).
        let corr = best_correlation(&near[talk.clone()], &out[talk.clone()], 480);
        // Printed, not asserted: the canceller's high-pass filter and its suppressor during
        // double talk change the waveform's phase, so the correlation is no measure of level.
        println!(
            "delay {delay_ms} ms: ERLE {erle:.1} dB, visitor {kept:+.1} dB, correlation {corr:.2}"
        );
    }
}

#[test]
fn with_everything_on_the_echo_is_still_cancelled() {
    let (mic, out, near) = run(Processing::default(), 25 * RATE / 1000);
    let echo = 6 * RATE..12 * RATE;
    let erle = db(energy(&mic[echo.clone()]) / energy(&out[echo]).max(1.0));
    assert!(erle >= 20.0, "ERLE {erle:.1} dB");
    let talk = 12 * RATE..16 * RATE;
    assert!(energy(&out[talk.clone()]) > 0.1 * energy(&near[talk]));
}
