//! A deterministic speech-like signal for tests and benchmarks of the audio path: a buzz at a
//! gliding pitch plus noise, through two formant resonators, in syllables of 150-300 ms
//! separated by short pauses. Two seeds give two independent "voices".

use std::f32::consts::TAU;

use super::SAMPLE_RATE;

/// A small linear congruential generator: reproducible, no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A two-pole resonator at `freq` Hz with bandwidth `bw` Hz.
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new(freq: f32, bw: f32) -> Resonator {
        let r = (-std::f32::consts::PI * bw / SAMPLE_RATE as f32).exp();
        let theta = TAU * freq / SAMPLE_RATE as f32;
        Resonator {
            a1: 2.0 * r * theta.cos(),
            a2: -r * r,
            gain: 1.0 - r,
            y1: 0.0,
            y2: 0.0,
        }
    }

    fn tick(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// `n` samples (48 kHz) of speech-like sound from `seed`, peaking near `level` of full scale.
pub fn speech_like(seed: u64, n: usize, level: f32) -> Vec<i16> {
    let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let rate = SAMPLE_RATE as f32;
    let mut out = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        // One syllable: its pitch, formants and length, then a pause.
        let pitch = 110.0 + 120.0 * (rng.next() + 1.0) / 2.0;
        let f1 = 350.0 + 450.0 * (rng.next() + 1.0) / 2.0;
        let f2 = 1000.0 + 1500.0 * (rng.next() + 1.0) / 2.0;
        let len = ((0.15 + 0.15 * (rng.next() + 1.0) / 2.0) * rate) as usize;
        let pause = ((0.03 + 0.1 * (rng.next() + 1.0) / 2.0) * rate) as usize;
        let (mut r1, mut r2) = (Resonator::new(f1, 90.0), Resonator::new(f2, 150.0));
        let mut phase = 0f32;
        for k in 0..len.min(n - i) {
            let t = k as f32 / len as f32;
            let env = (std::f32::consts::PI * t).sin().powf(0.7);
            phase = (phase + pitch * (1.0 + 0.1 * t) / rate) % 1.0;
            let excitation = (1.0 - 2.0 * phase) + 0.3 * rng.next();
            raw.push(env * (r1.tick(excitation) + 0.6 * r2.tick(excitation)));
        }
        i += len.min(n - i);
        let gap = pause.min(n - i);
        raw.extend(std::iter::repeat_n(0.0, gap));
        i += gap;
    }
    let peak = raw.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-9);
    out.extend(
        raw.iter()
            .map(|&x| (x / peak * level * 32767.0).round() as i16),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_differ_and_repeat() {
        let a = speech_like(1, 48_000, 0.5);
        let b = speech_like(2, 48_000, 0.5);
        assert_eq!(a, speech_like(1, 48_000, 0.5));
        assert_ne!(a, b);
        let peak = a.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((16_000..=16_400).contains(&peak), "{peak}");
        // Pauses: some 10 ms stretches are silent.
        assert!(a.chunks(480).any(|c| c.iter().all(|&s| s == 0)));
    }
}
