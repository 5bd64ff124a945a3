//! Opus for calls: 48 kHz, mono, 20 ms frames of [`FRAME_SAMPLES`], the VoIP application, in-band
//! FEC on and tuned for 10 % loss.
//!
//! Browsers negotiate `opus/48000/2`; a mono encoder's packets are valid there (the decoder
//! upmixes them), and a mono decoder downmixes whatever the browser sends.

use super::{MediaError, FRAME_SAMPLES, SAMPLE_RATE};

/// The largest Opus packet a 20 ms frame can need (RFC 6716 caps a frame at 1275 bytes).
const MAX_PACKET: usize = 1500;
/// The largest frame a packet can decode to: 120 ms at 48 kHz.
const MAX_FRAME: usize = SAMPLE_RATE as usize * 120 / 1000;
/// Speech at this rate is transparent; FEC takes some of it on loss.
const BITRATE: i32 = 32_000;
/// What the encoder assumes about the path; it shapes how much FEC it adds.
const EXPECTED_LOSS_PERCENT: i32 = 10;
/// The encoder's complexity (0-10). libopus defaults to 10; 5 is what WebRTC's own Opus
/// encoder uses on ARM phones. Speech at 32 kbit/s loses little, and encoding costs about half
/// (`cargo bench --bench audio` prints both).
pub const COMPLEXITY: i32 = 5;

fn err(what: &str, e: opus::Error) -> MediaError {
    MediaError::Codec(format!("Opus {what}: {e}"))
}

/// Encodes 20 ms mono frames.
pub struct OpusEncoder {
    encoder: opus::Encoder,
}

impl OpusEncoder {
    pub fn new() -> Result<OpusEncoder, MediaError> {
        Self::with_complexity(COMPLEXITY)
    }

    /// An encoder of another complexity (0-10), for comparisons.
    pub fn with_complexity(complexity: i32) -> Result<OpusEncoder, MediaError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| err("encoder", e))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .map_err(|e| err("encoder bitrate", e))?;
        encoder
            .set_inband_fec(true)
            .map_err(|e| err("encoder FEC", e))?;
        encoder
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(|e| err("encoder loss", e))?;
        encoder
            .set_complexity(complexity)
            .map_err(|e| err("encoder complexity", e))?;
        Ok(OpusEncoder { encoder })
    }

    /// Encodes one frame of exactly [`FRAME_SAMPLES`] samples into one packet.
    pub fn encode(&mut self, frame: &[i16]) -> Result<Vec<u8>, MediaError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(MediaError::Codec(format!(
                "Opus encoder: a frame is {FRAME_SAMPLES} samples, got {}",
                frame.len()
            )));
        }
        self.encoder
            .encode_vec(frame, MAX_PACKET)
            .map_err(|e| err("encode", e))
    }
}

/// Decodes packets to mono samples, and conceals lost ones.
pub struct OpusDecoder {
    decoder: opus::Decoder,
    buf: Vec<i16>,
}

impl OpusDecoder {
    pub fn new() -> Result<OpusDecoder, MediaError> {
        let decoder =
            opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(|e| err("decoder", e))?;
        Ok(OpusDecoder {
            decoder,
            buf: vec![0; MAX_FRAME],
        })
    }

    /// Decodes one packet.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16], MediaError> {
        if packet.is_empty() {
            return Err(MediaError::Codec(
                "Opus decoder: an empty packet".to_owned(),
            ));
        }
        let n = self
            .decoder
            .decode(packet, &mut self.buf, false)
            .map_err(|e| err("decode", e))?;
        Ok(&self.buf[..n])
    }

    /// Audio for one lost 20 ms frame: recovered from the FEC data in `next` (the packet after
    /// the lost one) when there is some, concealed otherwise.
    pub fn recover(&mut self, next: Option<&[u8]>) -> Result<&[i16], MediaError> {
        let out = &mut self.buf[..FRAME_SAMPLES];
        let n = match next {
            Some(packet) if !packet.is_empty() => self.decoder.decode(packet, out, true),
            _ => self.decoder.decode(&[], out, false),
        }
        .map_err(|e| err("loss concealment", e))?;
        Ok(&self.buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::synthetic::{RecordingSink, TestTone};
    use crate::media::{AudioSink, AudioSource};

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len() as f64).sqrt() / f64::from(i16::MAX)
    }

    #[test]
    fn a_tone_keeps_its_level_through_opus() {
        let mut tone = TestTone::new(440.0);
        let mut encoder = OpusEncoder::new().unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut input = Vec::new();
        let mut output = RecordingSink::default();
        let mut frame = vec![0i16; FRAME_SAMPLES];
        let mut bytes = 0;
        for i in 0..100 {
            tone.read(&mut frame).unwrap();
            let packet = encoder.encode(&frame).unwrap();
            bytes += packet.len();
            let decoded = decoder.decode(&packet).unwrap();
            assert_eq!(decoded.len(), FRAME_SAMPLES);
            // Past the codec's start-up (its look-ahead and the first frames' ramp).
            if i >= 10 {
                input.extend_from_slice(&frame);
                output.write(decoded).unwrap();
            }
        }
        let (a, b) = (rms(&input), output.rms());
        assert!((b - a).abs() / a < 0.2, "rms in {a:.3}, out {b:.3}");
        // 2 s at about 32 kbit/s.
        assert!((4_000..12_000).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next() {
        let mut tone = TestTone::new(440.0);
        let mut encoder = OpusEncoder::new().unwrap();
        let mut decoder = OpusDecoder::new().unwrap();
        let mut frame = vec![0i16; FRAME_SAMPLES];
        let packets: Vec<Vec<u8>> = (0..30)
            .map(|_| {
                tone.read(&mut frame).unwrap();
                encoder.encode(&frame).unwrap()
            })
            .collect();
        for p in &packets[..20] {
            decoder.decode(p).unwrap();
        }
        // Packet 20 is lost; 21 carries its FEC copy.
        let recovered = decoder.recover(Some(&packets[21])).unwrap().to_vec();
        assert_eq!(recovered.len(), FRAME_SAMPLES);
        assert!(rms(&recovered) > 0.05, "{}", rms(&recovered));
        assert_eq!(decoder.decode(&packets[21]).unwrap().len(), FRAME_SAMPLES);
        assert_eq!(decoder.recover(None).unwrap().len(), FRAME_SAMPLES);
    }

    #[test]
    fn odd_frames_are_errors() {
        let mut encoder = OpusEncoder::new().unwrap();
        assert!(encoder.encode(&[0; 100]).is_err());
        assert!(OpusDecoder::new().unwrap().decode(&[]).is_err());
    }
}
