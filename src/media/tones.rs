//! The ringtone (an incoming call rings at the door) and the ringback (the door calls out), as
//! 48 kHz mono loops: generated, or read from a WAV file.
//!
//! Built in: the ringtone is a two-tone warble (800/1000 Hz alternating every 25 ms) in the
//! cadence 0.4 s on, 0.2 s off, 0.4 s on, 2 s off; the ringback is the European one, 425 Hz,
//! 1 s on, 4 s off. A WAV file must be 16-bit PCM, of any rate and channel count: it is mixed
//! down to mono and resampled to 48 kHz once, when it is loaded, and played in a loop.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use super::resample::{downmix, f32_to_i16, i16_to_f32, Resampler};
use super::{MediaError, SAMPLE_RATE};

/// `[audio] ringtone` / `ringback`: the built-in tone, a WAV file, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToneSetting {
    Builtin,
    Off,
    Wav(PathBuf),
}

/// Which tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToneKind {
    Ringtone,
    Ringback,
}

/// One period of a tone, played in a loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    pub samples: Vec<i16>,
}

/// The largest WAV file read: 22 s of CD-quality stereo, 45 s of 48 kHz mono. A ring is a loop
/// of a few seconds, held in memory as 48 kHz mono for as long as the daemon runs.
pub const MAX_WAV_SIZE: u64 = 4 << 20;

const LEVEL: f32 = 0.3;
/// Fade in and out of each burst, so that none starts or ends with a click.
const RAMP: usize = SAMPLE_RATE as usize / 200;

fn ms(n: u32) -> usize {
    SAMPLE_RATE as usize * n as usize / 1000
}

/// A burst of `len` samples of `wave(t)` with ramps at both ends.
fn burst(len: usize, wave: impl Fn(f32) -> f32, out: &mut Vec<i16>) {
    for i in 0..len {
        let ramp = (i.min(len - 1 - i) as f32 / RAMP as f32).min(1.0);
        let t = i as f32 / SAMPLE_RATE as f32;
        out.push(f32_to_i16(LEVEL * ramp * wave(t)));
    }
}

fn silence(len: usize, out: &mut Vec<i16>) {
    out.extend(std::iter::repeat_n(0, len));
}

impl Tone {
    /// The built-in ringtone: see the module.
    pub fn builtin_ringtone() -> Tone {
        let warble = |t: f32| {
            let f = if ((t * 40.0) as u32).is_multiple_of(2) {
                800.0
            } else {
                1000.0
            };
            (TAU * f * t).sin()
        };
        let mut samples = Vec::new();
        burst(ms(400), warble, &mut samples);
        silence(ms(200), &mut samples);
        burst(ms(400), warble, &mut samples);
        silence(ms(2000), &mut samples);
        Tone { samples }
    }

    /// The built-in ringback: 425 Hz, 1 s on, 4 s off.
    pub fn builtin_ringback() -> Tone {
        let mut samples = Vec::new();
        burst(ms(1000), |t| (TAU * 425.0 * t).sin(), &mut samples);
        silence(ms(4000), &mut samples);
        Tone { samples }
    }

    /// What `setting` says for `kind`: `None` for `off`.
    pub fn load(kind: ToneKind, setting: &ToneSetting) -> Result<Option<Tone>, MediaError> {
        Ok(match setting {
            ToneSetting::Off => None,
            ToneSetting::Builtin => Some(match kind {
                ToneKind::Ringtone => Tone::builtin_ringtone(),
                ToneKind::Ringback => Tone::builtin_ringback(),
            }),
            ToneSetting::Wav(path) => Some(Tone::from_wav(path)?),
        })
    }

    /// A 16-bit PCM WAV file, converted to 48 kHz mono.
    pub fn from_wav(path: &Path) -> Result<Tone, MediaError> {
        let bytes = crate::files::read(path, MAX_WAV_SIZE)
            .map_err(|e| MediaError::Open(format!("cannot read {}: {e}", path.display())))?;
        Tone::parse_wav(&bytes)
            .map_err(|e| MediaError::Unsupported(format!("{}: {e}", path.display())))
    }

    /// Parses a WAV file's bytes. See [`Tone::from_wav`].
    pub fn parse_wav(bytes: &[u8]) -> Result<Tone, String> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("not a WAV file (no RIFF/WAVE header)".to_owned());
        }
        let mut fmt: Option<(u16, u16, u32, u16)> = None;
        let mut data: Option<&[u8]> = None;
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let len =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
                    as usize;
            let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
            match id {
                b"fmt " if body.len() >= 16 => {
                    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                    let mut format = u16_at(0);
                    if format == 0xFFFE && body.len() >= 26 {
                        // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes.
                        format = u16_at(24);
                    }
                    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                    fmt = Some((format, u16_at(2), rate, u16_at(14)));
                }
                b"data" => data = Some(body),
                _ => {}
            }
            at += 8 + len + (len & 1);
        }
        let (format, channels, rate, bits) = fmt.ok_or("no fmt chunk")?;
        let data = data.ok_or("no data chunk")?;
        if format != 1 || bits != 16 {
            return Err(format!(
                "expected 16-bit PCM, found format {format} with {bits} bits per sample"
            ));
        }
        if channels == 0 || rate == 0 {
            return Err(format!("{channels} channels at {rate} Hz"));
        }
        let interleaved: Vec<f32> = data
            .chunks_exact(2)
            .map(|b| i16_to_f32(i16::from_le_bytes([b[0], b[1]])))
            .collect();
        let mut mono = Vec::new();
        downmix(&interleaved, channels as usize, &mut mono);
        let mut resampler = Resampler::new(rate, SAMPLE_RATE).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        resampler.process(&mono, &mut out);
        // The filter's tail: what the last input samples still owe.
        resampler.process(&[0.0; super::resample::TAPS], &mut out);
        let samples: Vec<i16> = out.into_iter().map(f32_to_i16).collect();
        if samples.is_empty() {
            return Err("no samples".to_owned());
        }
        Ok(Tone { samples })
    }
}

/// Writes a 16-bit PCM WAV file (tests and tools).
pub fn wav_bytes(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt() / 32768.0
    }

    #[test]
    fn builtin_cadences() {
        let ring = Tone::builtin_ringtone();
        assert_eq!(ring.samples.len(), ms(3000));
        assert!(rms(&ring.samples[ms(50)..ms(350)]) > 0.15);
        assert_eq!(rms(&ring.samples[ms(410)..ms(590)]), 0.0);
        assert_eq!(rms(&ring.samples[ms(1010)..]), 0.0);
        let back = Tone::builtin_ringback();
        assert_eq!(back.samples.len(), ms(5000));
        // 425 Hz: 425 cycles in the second it sounds, so 850 sign changes.
        let crossings = back.samples[..ms(1000)]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((845..=855).contains(&crossings), "{crossings}");
        assert_eq!(rms(&back.samples[ms(1001)..]), 0.0);
    }

    #[test]
    fn a_stereo_22k_wav_becomes_48k_mono() {
        // One second of 500 Hz at 22 050 Hz, the left channel only.
        let frames: Vec<i16> = (0..22_050)
            .flat_map(|i| {
                let s = (8000.0 * (TAU * 500.0 * i as f32 / 22_050.0).sin()) as i16;
                [s, 0]
            })
            .collect();
        let tone = Tone::parse_wav(&wav_bytes(&frames, 22_050, 2)).unwrap();
        assert!(
            (48_000..=48_200).contains(&tone.samples.len()),
            "{}",
            tone.samples.len()
        );
        // The mix-down halves it: amplitude 4000, RMS 4000/sqrt(2).
        let level = rms(&tone.samples[1000..47_000]) * 32768.0;
        assert!((level - 4000.0 / 2f64.sqrt()).abs() < 60.0, "{level}");
    }

    #[test]
    fn bad_wavs_say_why() {
        assert!(Tone::parse_wav(b"hello").unwrap_err().contains("not a WAV"));
        let mut eight_bit = wav_bytes(&[0; 10], 8000, 1);
        eight_bit[34] = 8;
        assert!(Tone::parse_wav(&eight_bit)
            .unwrap_err()
            .contains("16-bit PCM"));
        let err = Tone::from_wav(Path::new("/nonexistent/ring.wav")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ring.wav"), "{err}");
    }
}
