//! Sample-rate and channel conversion between a sound card's format and the calls' 48 kHz mono.
//!
//! [`Resampler`] is a rational polyphase FIR: the ratio `to / from` reduced to `up / down`, a
//! Kaiser-windowed sinc low-pass cut below the lower of the two Nyquist frequencies, split into
//! `up` phases of [`TAPS`] taps each. It streams: any block size in, whatever is due out, with a
//! constant delay of `TAPS / 2` input samples. 44.1 kHz ↔ 48 kHz costs 48 multiply-adds per
//! output sample.

use super::MediaError;

/// Taps of each polyphase branch (the filter's length in input samples).
pub const TAPS: usize = 48;
/// Kaiser window shape: about 85 dB stop-band attenuation.
const KAISER_BETA: f64 = 8.0;
/// The pass band ends at this fraction of the lower Nyquist frequency.
const PASS: f64 = 0.92;
/// Ratios whose reduced numerator is larger than this are refused (odd rates only).
const MAX_PHASES: usize = 2048;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The zeroth-order modified Bessel function of the first kind (Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= half / k as f64;
        let t = term * term;
        sum += t;
        if t < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// Converts a mono stream from one sample rate to another. See the module.
pub struct Resampler {
    from: u32,
    to: u32,
    up: usize,
    down: usize,
    /// `up` branches of `TAPS` coefficients, branch-major; each branch sums to 1.
    coeffs: Vec<f32>,
    /// Input not yet fully used, oldest first, with `TAPS - 1` samples of history in front.
    history: Vec<f32>,
    /// Index in `history` of the newest input sample the next output needs.
    pos: usize,
    /// Phase of the next output, `0..up`.
    phase: usize,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Resampler, MediaError> {
        if from == 0 || to == 0 {
            return Err(MediaError::Unsupported(format!(
                "resampler: cannot convert {from} Hz to {to} Hz"
            )));
        }
        let g = gcd(u64::from(from), u64::from(to));
        let up = (u64::from(to) / g) as usize;
        let down = (u64::from(from) / g) as usize;
        if up > MAX_PHASES {
            return Err(MediaError::Unsupported(format!(
                "resampler: {from} Hz to {to} Hz is not a ratio it handles (reduced to {up}/{down})"
            )));
        }
        let coeffs = if up == 1 && down == 1 {
            Vec::new()
        } else {
            design(up, down)
        };
        Ok(Resampler {
            from,
            to,
            up,
            down,
            coeffs,
            history: vec![0.0; TAPS - 1],
            pos: TAPS - 1,
            phase: 0,
        })
    }

    /// Input and output rates.
    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// Whether this resampler passes samples through unchanged.
    pub fn is_identity(&self) -> bool {
        self.up == 1 && self.down == 1
    }

    /// The delay the filter adds, in output samples.
    pub fn delay(&self) -> f64 {
        if self.is_identity() {
            0.0
        } else {
            // The prototype's centre, (up * TAPS - 1) / 2 at up times the input rate.
            (self.up * TAPS - 1) as f64 / (2 * self.up) as f64 * f64::from(self.to)
                / f64::from(self.from)
        }
    }

    /// Converts `input` and appends what is due to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.is_identity() {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend_from_slice(input);
        while self.pos < self.history.len() {
            let branch = &self.coeffs[self.phase * TAPS..(self.phase + 1) * TAPS];
            let window = &self.history[self.pos + 1 - TAPS..=self.pos];
            // branch[k] weighs the sample k steps back from `pos`.
            let acc: f32 = window.iter().rev().zip(branch).map(|(x, h)| x * h).sum();
            out.push(acc);
            self.phase += self.down;
            self.pos += self.phase / self.up;
            self.phase %= self.up;
        }
        let used = self.pos - (TAPS - 1);
        if used > 0 {
            self.history.drain(..used.min(self.history.len()));
            self.pos -= used;
        }
    }
}

/// The prototype low-pass at `up` times the input rate, split into `up` branches.
fn design(up: usize, down: usize) -> Vec<f32> {
    let n = up * TAPS;
    // Cut-off as a fraction of the prototype's rate: half the lower of the two rates.
    let cutoff = PASS * 0.5 / (up.max(down) as f64);
    let centre = (n as f64 - 1.0) / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    let proto: Vec<f64> = (0..n)
        .map(|j| {
            let t = j as f64 - centre;
            let x = 2.0 * cutoff * t;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = t / centre;
            let w = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            sinc * w
        })
        .collect();
    let mut coeffs = vec![0f32; n];
    for p in 0..up {
        let sum: f64 = (0..TAPS).map(|k| proto[k * up + p]).sum();
        for k in 0..TAPS {
            coeffs[p * TAPS + k] = (proto[k * up + p] / sum) as f32;
        }
    }
    coeffs
}

/// Averages interleaved `channels`-channel frames into mono.
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

/// Copies each mono sample to every one of `channels` interleaved channels.
pub fn upmix(mono: &[f32], channels: usize, out: &mut Vec<f32>) {
    for &s in mono {
        for _ in 0..channels.max(1) {
            out.push(s);
        }
    }
}

/// S16 to float in [-1, 1).
pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// Float to S16, rounded and clipped.
pub fn f32_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Amplitude of `freq` in `x` (a single-bin DFT), and the RMS of everything else.
    fn tone_and_rest(x: &[f32], freq: f32, rate: u32) -> (f64, f64) {
        let (mut re, mut im) = (0f64, 0f64);
        for (i, &s) in x.iter().enumerate() {
            let w = std::f64::consts::TAU * f64::from(freq) * i as f64 / f64::from(rate);
            re += f64::from(s) * w.cos();
            im += f64::from(s) * w.sin();
        }
        let n = x.len() as f64;
        let amp = 2.0 * (re * re + im * im).sqrt() / n;
        let phase = im.atan2(re);
        let rest: f64 = x
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let w = std::f64::consts::TAU * f64::from(freq) * i as f64 / f64::from(rate);
                let fit = amp * (w - phase).cos();
                (f64::from(s) - fit).powi(2)
            })
            .sum::<f64>()
            / n;
        (amp, rest.sqrt())
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_from_44k1_to_48k() {
        let input = sine(1000.0, 44_100, 44_100);
        let mut r = Resampler::new(44_100, 48_000).unwrap();
        let mut out = Vec::new();
        // Odd block sizes, as a sound card's periods may be.
        for block in input.chunks(441) {
            r.process(block, &mut out);
        }
        assert!((47_990..=48_000).contains(&out.len()), "{}", out.len());
        let steady = &out[1000..47_000];
        let (amp, rest) = tone_and_rest(steady, 1000.0, 48_000);
        assert!((amp - 0.5).abs() < 0.01, "amplitude {amp}");
        // Everything that is not the tone: more than 60 dB below it.
        assert!(rest < amp * 1e-3, "residue {rest} for amplitude {amp}");
    }

    #[test]
    fn down_and_back_up_keeps_speech_band_audio() {
        let input: Vec<f32> = sine(300.0, 48_000, 48_000)
            .iter()
            .zip(sine(3100.0, 48_000, 48_000))
            .map(|(a, b)| 0.5 * (a + b))
            .collect();
        let mut down = Resampler::new(48_000, 44_100).unwrap();
        let mut up = Resampler::new(44_100, 48_000).unwrap();
        let (mut mid, mut out) = (Vec::new(), Vec::new());
        down.process(&input, &mut mid);
        up.process(&mid, &mut out);
        let delay = (down.delay() * 48_000.0 / 44_100.0 + up.delay()).round() as usize;
        let mut err = 0f64;
        let mut sig = 0f64;
        for i in 2000..40_000 {
            err += f64::from(out[i + delay] - input[i]).powi(2);
            sig += f64::from(input[i]).powi(2);
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 25.0, "round trip SNR {snr:.1} dB");
    }

    #[test]
    fn identity_and_channel_conversion() {
        let mut r = Resampler::new(48_000, 48_000).unwrap();
        assert!(r.is_identity());
        let mut out = Vec::new();
        r.process(&[0.25, -0.5], &mut out);
        assert_eq!(out, [0.25, -0.5]);
        let mut mono = Vec::new();
        downmix(&[0.5, 0.25, -1.0, 0.0], 2, &mut mono);
        assert_eq!(mono, [0.375, -0.5]);
        let mut stereo = Vec::new();
        upmix(&[0.5, -0.25], 2, &mut stereo);
        assert_eq!(stereo, [0.5, 0.5, -0.25, -0.25]);
        assert_eq!(f32_to_i16(i16_to_f32(-12345)), -12345);
        assert_eq!(f32_to_i16(2.0), i16::MAX);
        assert!(Resampler::new(48_000, 47_999).is_err());
    }
}
