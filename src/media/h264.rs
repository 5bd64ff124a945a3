//! H.264 encoding with openh264: constrained baseline, Annex-B output, one slice a frame.
//!
//! What browsers expect of `profile-level-id=42e01f` with `packetization-mode=1`: constrained
//! baseline (no B frames, CAVLC), level 3.1, NAL units that the RTP payloader fragments (FU-A)
//! or aggregates (STAP-A) itself. Keyframes are IDR frames with SPS and PPS in front; one comes
//! first, and whenever [`H264Encoder::encode`] is asked for one (a PLI/FIR from the viewer, the
//! first frame after the connection comes up).

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, Level, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::{MediaError, VideoFrame};

/// The NAL unit type of an IDR slice (a keyframe).
pub const NAL_IDR: u8 = 5;

/// An openh264 encoder for one stream of frames of one size.
pub struct H264Encoder {
    encoder: Encoder,
    width: u32,
    height: u32,
    /// Whether a frame went in yet: openh264 initialises itself on the first frame, and the
    /// first frame is always IDR.
    started: bool,
    /// The target bitrate the encoder has, and one asked for before it was initialised.
    bitrate: u32,
    pending_bitrate: Option<u32>,
}

impl H264Encoder {
    /// An encoder for `width`×`height` frames at `fps`, aiming at `bitrate` bits per second.
    pub fn new(width: u32, height: u32, fps: u32, bitrate: u32) -> Result<H264Encoder, MediaError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(MediaError::Codec(format!(
                "H.264 encoder: {width}x{height} is not an even, non-empty size"
            )));
        }
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps.max(1) as f32))
            // Rate control may skip a frame to hold the bitrate (openh264 cannot hold it
            // otherwise): `encode` then returns nothing for that frame.
            .skip_frames(true)
            .complexity(Complexity::Low)
            // The Pi has four cores, the daemon needs one of them for everything else.
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| MediaError::Codec(format!("H.264 encoder: {e}")))?;
        Ok(H264Encoder {
            encoder,
            width,
            height,
            started: false,
            bitrate,
            pending_bitrate: None,
        })
    }

    /// Changes the target bitrate from the next frame on, without a new keyframe (openh264's
    /// `SetOption(ENCODER_OPTION_BITRATE)`; its rate control picks the new rate up at the next
    /// frame). Before the first frame it is kept until the encoder exists.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), MediaError> {
        let bitrate = bitrate.clamp(1, i32::MAX as u32);
        if !self.started {
            self.pending_bitrate = Some(bitrate);
            return Ok(());
        }
        if bitrate == self.bitrate {
            return Ok(());
        }
        // openh264 refuses a target above the layer's maximum, and the maximum is the target
        // (as the crate initialises it, and as the rate control holds it best): the maximum is
        // raised before the target goes up, and lowered after it went down.
        let target = (
            openh264_sys2::ENCODER_OPTION_BITRATE,
            openh264_sys2::SPATIAL_LAYER_ALL,
        );
        let max = (
            openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
            openh264_sys2::SPATIAL_LAYER_0,
        );
        let order = if bitrate > self.bitrate {
            [max, target]
        } else {
            [target, max]
        };
        for (option, layer) in order {
            let mut info = openh264_sys2::SBitrateInfo {
                iLayer: layer,
                iBitrate: bitrate as std::os::raw::c_int,
            };
            // SAFETY: the encoder is initialised (a frame went through it); SetOption copies
            // the two integers out of `info`, which lives across the call.
            let result = unsafe {
                self.encoder
                    .raw_api()
                    .set_option(option, std::ptr::addr_of_mut!(info).cast())
            };
            if result != 0 {
                return Err(MediaError::Codec(format!(
                    "H.264 encoder: cannot set the bitrate to {bitrate} bit/s (openh264 option {option}: error {result})"
                )));
            }
        }
        self.bitrate = bitrate;
        Ok(())
    }

    /// The target bitrate the encoder has, in bits per second.
    pub fn bitrate(&self) -> u32 {
        self.pending_bitrate.unwrap_or(self.bitrate)
    }

    /// A bitrate that suits `width`×`height` at `fps` for a door camera (mostly static scenes):
    /// 0.1 bit per pixel, at least 150 kbit/s, at most 2 Mbit/s.
    pub fn default_bitrate(width: u32, height: u32, fps: u32) -> u32 {
        let bits = u64::from(width) * u64::from(height) * u64::from(fps) / 10;
        bits.clamp(150_000, 2_000_000) as u32
    }

    /// Encodes `frame`; an IDR frame when `force_keyframe` (or when it is the first). Returns
    /// the access unit in Annex-B form (start codes before each NAL unit), empty if the encoder
    /// produced nothing for this frame.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<u8>, MediaError> {
        if frame.width != self.width || frame.height != self.height {
            return Err(MediaError::Codec(format!(
                "H.264 encoder: a {}x{} frame for a {}x{} stream",
                frame.width, frame.height, self.width, self.height
            )));
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (luma_len, chroma_len) = (w * h, (w / 2) * (h / 2));
        if frame.data.len() < luma_len + 2 * chroma_len {
            return Err(MediaError::Codec(format!(
                "H.264 encoder: a {}x{} I420 frame needs {} bytes, got {}",
                w,
                h,
                luma_len + 2 * chroma_len,
                frame.data.len()
            )));
        }
        let (y, rest) = frame.data.split_at(luma_len);
        let (u, rest) = rest.split_at(chroma_len);
        let v = &rest[..chroma_len];
        let yuv = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        if force_keyframe && self.started {
            self.encoder.force_intra_frame();
        }
        let timestamp = Timestamp::from_millis(frame.pts.as_millis() as u64);
        // The bitstream borrows the encoder's buffer (and is not Send): copy it out here.
        let bitstream = self
            .encoder
            .encode_at(&yuv, timestamp)
            .map_err(|e| MediaError::Codec(format!("H.264 encoder: {e}")))?;
        let data = bitstream.to_vec();
        self.started = true;
        if let Some(bitrate) = self.pending_bitrate.take() {
            self.set_bitrate(bitrate)?;
        }
        Ok(data)
    }
}

/// The NAL unit types of an Annex-B access unit, in order.
pub fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1 {
            if let Some(header) = annex_b.get(i + 3) {
                types.push(header & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// Whether an Annex-B access unit holds an IDR slice.
pub fn is_keyframe(annex_b: &[u8]) -> bool {
    nal_types(annex_b).contains(&NAL_IDR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::synthetic::TestPattern;
    use crate::media::VideoSource;

    #[test]
    fn first_frame_and_forced_frames_are_keyframes() {
        let mut pattern = TestPattern::new(320, 240, 15);
        let mut encoder = H264Encoder::new(320, 240, 15, 300_000).unwrap();
        let first = encoder
            .encode(&pattern.next_frame().unwrap(), false)
            .unwrap();
        let types = nal_types(&first);
        // SPS, PPS, then the IDR slice.
        assert!(types.contains(&7) && types.contains(&8), "{types:?}");
        assert!(is_keyframe(&first), "{types:?}");

        let mut deltas = 0;
        for _ in 0..5 {
            let au = encoder
                .encode(&pattern.next_frame().unwrap(), false)
                .unwrap();
            assert!(!au.is_empty());
            if !is_keyframe(&au) {
                deltas += 1;
            }
        }
        assert!(deltas >= 4, "unforced frames are mostly P frames");

        let forced = encoder
            .encode(&pattern.next_frame().unwrap(), true)
            .unwrap();
        assert!(is_keyframe(&forced), "{:?}", nal_types(&forced));
        let after = encoder
            .encode(&pattern.next_frame().unwrap(), false)
            .unwrap();
        assert!(!is_keyframe(&after), "{:?}", nal_types(&after));
    }

    #[test]
    fn profile_is_constrained_baseline_compatible() {
        let mut pattern = TestPattern::new(640, 480, 15);
        let mut encoder = H264Encoder::new(640, 480, 15, 500_000).unwrap();
        let au = encoder
            .encode(&pattern.next_frame().unwrap(), false)
            .unwrap();
        // The SPS follows the first start code: NAL header, profile_idc, constraint flags, level.
        let sps = au
            .windows(4)
            .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
            .map(|i| &au[i + 3..])
            .unwrap();
        assert_eq!(sps[1], 66, "profile_idc baseline");
        assert!(sps[3] <= 31, "level at most 3.1, got {}", sps[3]);
    }

    /// Bytes of `frames` frames of `pattern` through `encoder`.
    fn encoded_bytes(encoder: &mut H264Encoder, pattern: &mut TestPattern, frames: usize) -> usize {
        (0..frames)
            .map(|_| {
                encoder
                    .encode(&pattern.next_frame().unwrap(), false)
                    .unwrap()
                    .len()
            })
            .sum()
    }

    #[test]
    fn bitrate_changes_mid_stream_without_a_keyframe() {
        let mut pattern = TestPattern::new(640, 480, 15);
        let mut encoder = H264Encoder::new(640, 480, 15, 1_500_000).unwrap();
        // Settle past the first keyframe, then measure a second of each rate.
        encoded_bytes(&mut encoder, &mut pattern, 15);
        let high = encoded_bytes(&mut encoder, &mut pattern, 15);
        encoder.set_bitrate(150_000).unwrap();
        assert_eq!(encoder.bitrate(), 150_000);
        let first = encoder
            .encode(&pattern.next_frame().unwrap(), false)
            .unwrap();
        assert!(
            !is_keyframe(&first),
            "a new rate is no reason for a keyframe"
        );
        encoded_bytes(&mut encoder, &mut pattern, 14);
        let low = encoded_bytes(&mut encoder, &mut pattern, 15);
        // The test pattern needs about 350 kbit/s of the 1.5 Mbit/s it may take; at 150 kbit/s
        // the rate control holds the target.
        assert!(
            low * 8 <= 150_000 * 5 / 4 && low * 2 < high,
            "150 kbit/s gave {low} bytes a second, 1.5 Mbit/s {high}"
        );
        // And back up: the maximum follows the target.
        encoder.set_bitrate(1_500_000).unwrap();
        encoded_bytes(&mut encoder, &mut pattern, 15);
        let again = encoded_bytes(&mut encoder, &mut pattern, 15);
        assert!(
            again * 2 > low * 3,
            "{again} bytes after going back up, {low} before"
        );
    }

    #[test]
    fn a_bitrate_set_before_the_first_frame_applies_after_it() {
        let mut pattern = TestPattern::new(320, 240, 15);
        let mut encoder = H264Encoder::new(320, 240, 15, 300_000).unwrap();
        encoder.set_bitrate(500_000).unwrap();
        assert_eq!(encoder.bitrate(), 500_000);
        encoded_bytes(&mut encoder, &mut pattern, 2);
        assert_eq!(encoder.bitrate(), 500_000);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(H264Encoder::new(321, 240, 15, 300_000).is_err());
        let mut encoder = H264Encoder::new(320, 240, 15, 300_000).unwrap();
        let frame = TestPattern::new(160, 120, 15).next_frame().unwrap();
        assert!(encoder.encode(&frame, false).is_err());
    }
}
