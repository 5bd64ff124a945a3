//! Frame conversions: what cameras give (YUYV, NV12, YU12 with row padding, MJPEG) into I420,
//! the layout of [`super::VideoFrame`] and of the software encoder; and I420 into JPEG for
//! snapshots. Pure functions over byte slices.

use super::MediaError;

/// The bytes of a `width`×`height` I420 frame.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

fn short(what: &str, width: u32, height: u32, need: usize, got: usize) -> MediaError {
    MediaError::Failed(format!(
        "{what} frame {width}x{height}: needs {need} bytes, the camera gave {got}"
    ))
}

/// YUYV 4:2:2 (Y0 U Y1 V, `stride` bytes a row; 0: `2 * width`) to I420: the chroma of each
/// pair of rows is averaged.
pub fn yuyv_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let stride = if stride == 0 { 2 * w } else { stride as usize };
    let need = stride * h.saturating_sub(1) + 2 * w;
    if h == 0 || src.len() < need {
        return Err(short("YUYV", width, height, need, src.len()));
    }
    let (cw, ch) = (w / 2, h / 2);
    let mut out = vec![0u8; i420_len(width, height)];
    let (y, uv) = out.split_at_mut(w * h);
    let (u, v) = uv.split_at_mut(cw * ch);
    for row in 0..h {
        let line = &src[row * stride..row * stride + 2 * w];
        for (x, px) in y[row * w..(row + 1) * w].iter_mut().enumerate() {
            *px = line[2 * x];
        }
    }
    for crow in 0..ch {
        let a = &src[2 * crow * stride..];
        let b = &src[(2 * crow + 1) * stride..];
        for cx in 0..cw {
            let i = 4 * cx;
            u[crow * cw + cx] = (u16::from(a[i + 1]) + u16::from(b[i + 1])).div_ceil(2) as u8;
            v[crow * cw + cx] = (u16::from(a[i + 3]) + u16::from(b[i + 3])).div_ceil(2) as u8;
        }
    }
    Ok(out)
}

/// NV12 (a Y plane, then interleaved U/V at quarter size; `stride` bytes a row of either, 0:
/// `width`) to I420.
pub fn nv12_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let stride = if stride == 0 { w } else { stride as usize };
    let (cw, ch) = (w / 2, h / 2);
    let need = stride * h + stride * ch.saturating_sub(1) + 2 * cw;
    if h == 0 || src.len() < need {
        return Err(short("NV12", width, height, need, src.len()));
    }
    let mut out = vec![0u8; i420_len(width, height)];
    let (y, uv) = out.split_at_mut(w * h);
    let (u, v) = uv.split_at_mut(cw * ch);
    for row in 0..h {
        y[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
    }
    let chroma = &src[stride * h..];
    for crow in 0..ch {
        let line = &chroma[crow * stride..];
        for cx in 0..cw {
            u[crow * cw + cx] = line[2 * cx];
            v[crow * cw + cx] = line[2 * cx + 1];
        }
    }
    Ok(out)
}

/// YU12 (planar I420 with `stride` bytes a luma row, half that a chroma row; 0: `width`) to
/// tightly packed I420.
pub fn yu12_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let stride = if stride == 0 { w } else { stride as usize };
    let (cw, ch) = (w / 2, h / 2);
    let cstride = stride / 2;
    let need = stride * h + 2 * cstride * ch;
    if h == 0 || src.len() < need {
        return Err(short("YU12", width, height, need, src.len()));
    }
    if stride == w {
        return Ok(src[..i420_len(width, height)].to_vec());
    }
    let mut out = Vec::with_capacity(i420_len(width, height));
    for row in 0..h {
        out.extend_from_slice(&src[row * stride..row * stride + w]);
    }
    for plane in 0..2 {
        let base = stride * h + plane * cstride * ch;
        for row in 0..ch {
            out.extend_from_slice(&src[base + row * cstride..base + row * cstride + cw]);
        }
    }
    Ok(out)
}

/// Decodes a JPEG (an MJPEG frame) to I420 of its own size: `(width, height, data)`. The
/// decoder gives full-resolution YCbCr; chroma is averaged over each 2×2 block. An odd size is
/// cut to even (the encoders take even sizes only).
pub fn jpeg_to_i420(jpeg: &[u8]) -> Result<(u32, u32, Vec<u8>), MediaError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let pixels = decoder
        .decode()
        .map_err(|e| MediaError::Codec(format!("MJPEG frame: {e:?}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| MediaError::Codec("MJPEG frame: no size".to_owned()))?;
    let (fw, fh) = (usize::from(info.width), usize::from(info.height));
    let components = decoder
        .output_colorspace()
        .map_or(3, |c| c.num_components());
    let (w, h) = (fw & !1, fh & !1);
    if w == 0 || h == 0 || pixels.len() < fw * fh * components {
        return Err(MediaError::Codec(format!(
            "MJPEG frame: {fw}x{fh} with {} bytes decoded",
            pixels.len()
        )));
    }
    let (cw, ch) = (w / 2, h / 2);
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let (y, uv) = out.split_at_mut(w * h);
    let (u, v) = uv.split_at_mut(cw * ch);
    let at = |x: usize, yy: usize, c: usize| pixels[(yy * fw + x) * components + c];
    for row in 0..h {
        for x in 0..w {
            y[row * w + x] = at(x, row, 0);
        }
    }
    if components >= 3 {
        for crow in 0..ch {
            for cx in 0..cw {
                let (x, r) = (2 * cx, 2 * crow);
                for (plane, c) in [(&mut *u, 1), (&mut *v, 2)] {
                    let sum = u16::from(at(x, r, c))
                        + u16::from(at(x + 1, r, c))
                        + u16::from(at(x, r + 1, c))
                        + u16::from(at(x + 1, r + 1, c));
                    plane[crow * cw + cx] = ((sum + 2) / 4) as u8;
                }
            }
        }
    } else {
        // Greyscale.
        u.fill(128);
        v.fill(128);
    }
    Ok((w as u32, h as u32, out))
}

/// Encodes an I420 frame as a JPEG (4:2:0, `quality` 1–100).
pub fn i420_to_jpeg(
    data: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (width as usize, height as usize);
    if data.len() < i420_len(width, height)
        || w > usize::from(u16::MAX)
        || h > usize::from(u16::MAX)
    {
        return Err(MediaError::Failed(format!(
            "snapshot: a {width}x{height} I420 frame needs {} bytes, got {}",
            i420_len(width, height),
            data.len()
        )));
    }
    let cw = w / 2;
    let (y, uv) = data.split_at(w * h);
    let (u, v) = uv.split_at(cw * (h / 2));
    // The encoder takes interleaved full-resolution YCbCr and subsamples itself.
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for x in 0..w {
            let c = (row / 2) * cw + x / 2;
            ycbcr.extend_from_slice(&[y[row * w + x], u[c], v[c]]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(
            &ycbcr,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Ycbcr,
        )
        .map_err(|e| MediaError::Codec(format!("snapshot: JPEG encoding: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 YUYV frame with distinct values everywhere.
    #[test]
    fn yuyv_converts_exactly() {
        #[rustfmt::skip]
        let src = [
            // Row 0: Y0 U Y1 V | Y2 U Y3 V, then 4 bytes of padding (stride 12).
            10, 100, 11, 200, 12, 102, 13, 202, 0, 0, 0, 0,
            20, 110, 21, 210, 22, 112, 23, 212, 0, 0, 0, 0,
        ];
        let out = yuyv_to_i420(&src, 4, 2, 12).unwrap();
        assert_eq!(
            out,
            vec![10, 11, 12, 13, 20, 21, 22, 23, 105, 107, 205, 207]
        );
        // Tight rows, the default stride.
        let tight: Vec<u8> = src.chunks(12).flat_map(|r| r[..8].to_vec()).collect();
        assert_eq!(yuyv_to_i420(&tight, 4, 2, 0).unwrap(), out);
        let err = yuyv_to_i420(&tight[..10], 4, 2, 0).unwrap_err();
        assert!(err.to_string().contains("YUYV frame 4x2"), "{err}");
    }

    #[test]
    fn a_frame_of_no_height_is_an_error_in_every_format() {
        for (what, result) in [
            ("YUYV", yuyv_to_i420(&[0; 16], 4, 0, 0)),
            ("NV12", nv12_to_i420(&[0; 16], 4, 0, 0)),
            ("YU12", yu12_to_i420(&[0; 16], 4, 0, 0)),
        ] {
            assert!(result.is_err(), "{what}: {result:?}");
        }
    }

    #[test]
    fn nv12_converts_exactly() {
        #[rustfmt::skip]
        let src = [
            // Y, 4x2 with stride 6.
            1, 2, 3, 4, 0, 0,
            5, 6, 7, 8, 0, 0,
            // UV, one row.
            50, 60, 51, 61, 0, 0,
        ];
        assert_eq!(
            nv12_to_i420(&src, 4, 2, 6).unwrap(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 50, 51, 60, 61]
        );
        assert!(nv12_to_i420(&src[..12], 4, 2, 6).is_err());
    }

    #[test]
    fn yu12_drops_row_padding() {
        #[rustfmt::skip]
        let src = [
            1, 2, 3, 4, 9, 9, 9, 9,
            5, 6, 7, 8, 9, 9, 9, 9,
            50, 51, 9, 9,
            60, 61, 9, 9,
        ];
        assert_eq!(
            yu12_to_i420(&src, 4, 2, 8).unwrap(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 50, 51, 60, 61]
        );
        let tight = [1, 2, 3, 4, 5, 6, 7, 8, 50, 51, 60, 61];
        assert_eq!(yu12_to_i420(&tight, 4, 2, 0).unwrap(), tight.to_vec());
    }

    #[test]
    fn jpeg_round_trip_keeps_the_picture() {
        let mut pattern = crate::media::synthetic::TestPattern::new(64, 48, 15);
        let frame = crate::media::VideoSource::next_frame(&mut pattern).unwrap();
        let jpeg = i420_to_jpeg(&frame.data, 64, 48, 95).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG starts with SOI");
        let (w, h, back) = jpeg_to_i420(&jpeg).unwrap();
        assert_eq!((w, h), (64, 48));
        assert_eq!(back.len(), frame.data.len());
        let mean_error = frame
            .data
            .iter()
            .zip(&back)
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / back.len() as f64;
        assert!(mean_error < 3.0, "mean error {mean_error}");
        assert!(jpeg_to_i420(b"not a jpeg").is_err());
    }
}
