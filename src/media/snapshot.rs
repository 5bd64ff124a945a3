//! A still picture of the camera: one frame, as a JPEG (jpeg-encoder, pure Rust), for the
//! snapshot the door posts when it rings.

use super::{MediaError, VideoFrame, VideoSource};

/// The JPEG quality: a face at the door stays recognisable at a few tens of KiB for 640x480.
const QUALITY: u8 = 85;

/// Takes the next frame of `source` and encodes it as a JPEG of the frame's size.
pub fn jpeg_from_source(source: &mut dyn VideoSource) -> Result<Vec<u8>, MediaError> {
    let frame = source.next_frame()?;
    jpeg_from_frame(&frame)
}

/// Encodes one I420 frame as a JPEG: its planes are YCbCr already, so no colour conversion
/// (each chroma sample covers 2x2 pixels, as the JPEG's 4:2:0 sampling keeps it).
pub fn jpeg_from_frame(frame: &VideoFrame) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let bad = |what: &str| MediaError(format!("snapshot of a {w}x{h} frame: {what}"));
    if frame.data.len() < w * h + 2 * cw * ch {
        return Err(bad(&format!(
            "{} bytes of I420, expected {}",
            frame.data.len(),
            w * h + 2 * cw * ch
        )));
    }
    let width = u16::try_from(w).map_err(|_| bad("too wide for a JPEG"))?;
    let height = u16::try_from(h).map_err(|_| bad("too high for a JPEG"))?;
    let (luma, chroma) = frame.data.split_at(w * h);
    let (cb, cr) = chroma.split_at(cw * ch);
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * cw + x / 2;
            ycbcr.extend_from_slice(&[luma[y * w + x], cb[c], cr[c]]);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
        .encode(&ycbcr, width, height, jpeg_encoder::ColorType::Ycbcr)
        .map_err(|e| bad(&e.to_string()))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VideoDevice;
    use crate::media::{open_video, VideoSettings};

    #[test]
    fn the_test_pattern_becomes_a_jpeg_of_its_size() {
        let settings = VideoSettings {
            width: 320,
            height: 240,
            fps: 15,
        };
        let mut source = open_video(&VideoDevice::TestPattern, &settings).unwrap();
        let jpeg = jpeg_from_source(source.as_mut()).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "SOI marker");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "EOI marker");
        // The frame header (SOF0) carries the size: height then width.
        let sof = jpeg.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
        let height = u16::from_be_bytes([jpeg[sof + 5], jpeg[sof + 6]]);
        let width = u16::from_be_bytes([jpeg[sof + 7], jpeg[sof + 8]]);
        assert_eq!((width, height), (320, 240));
    }

    #[test]
    fn a_short_frame_is_an_error_naming_its_size() {
        let frame = VideoFrame {
            width: 64,
            height: 48,
            pts: std::time::Duration::ZERO,
            captured: std::time::SystemTime::UNIX_EPOCH,
            data: vec![0; 100],
        };
        let e = jpeg_from_frame(&frame).unwrap_err();
        assert!(e.0.contains("64x48"), "{e}");
    }
}
