//! Laying a camera's frame out in an encoder's OUTPUT buffer: its components, strides and the
//! padding rows (pure: tested without a device).

use super::*;

/// Where one component (Y, U, V, interleaved UV, or packed YUYV) of a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Component {
    plane: usize,
    offset: usize,
    stride: usize,
    /// Bytes of a row that hold pixels.
    row_bytes: usize,
    /// Rows of pixels.
    rows: usize,
    /// Rows the buffer has room for (past `rows`: padding).
    rows_allocated: usize,
}

/// The components of a `fourcc` frame of `width`×`height` pixels in a buffer of
/// `height_allocated` rows with `planes` (one: contiguous, the chroma after the padded luma).
pub(super) fn components(
    fourcc: FourCc,
    (width, height, height_allocated): (u32, u32, u32),
    planes: &[PlaneFormat],
) -> Result<Vec<Component>, String> {
    let (w, h, ha) = (width as usize, height as usize, height_allocated as usize);
    let stride = |i: usize| planes.get(i).map_or(0, |p| p.bytesperline as usize);
    let c = |plane, offset, stride, row_bytes, rows, rows_allocated| Component {
        plane,
        offset,
        stride,
        row_bytes,
        rows,
        rows_allocated,
    };
    let list = match (&fourcc.0, planes.len()) {
        (b"YU12", 1) => {
            let s = stride(0);
            let (luma, chroma) = (s * ha, (s / 2) * (ha / 2));
            vec![
                c(0, 0, s, w, h, ha),
                c(0, luma, s / 2, w / 2, h / 2, ha / 2),
                c(0, luma + chroma, s / 2, w / 2, h / 2, ha / 2),
            ]
        }
        (b"YU12" | b"YM12", 3) => vec![
            c(0, 0, stride(0), w, h, ha),
            c(1, 0, stride(1), w / 2, h / 2, ha / 2),
            c(2, 0, stride(2), w / 2, h / 2, ha / 2),
        ],
        (b"NV12", 1) => {
            let s = stride(0);
            vec![c(0, 0, s, w, h, ha), c(0, s * ha, s, w, h / 2, ha / 2)]
        }
        (b"NV12" | b"NM12", 2) => vec![
            c(0, 0, stride(0), w, h, ha),
            c(1, 0, stride(1), w, h / 2, ha / 2),
        ],
        (b"YUYV", 1) => vec![c(0, 0, stride(0), 2 * w, h, ha)],
        _ => {
            return Err(format!(
                "{fourcc} in {} plane(s) is not a format frames are copied into",
                planes.len()
            ))
        }
    };
    if let Some(bad) = list.iter().find(|c| c.stride < c.row_bytes) {
        return Err(format!(
            "{fourcc} {width}x{height}: a row of {} bytes does not fit a stride of {}",
            bad.row_bytes, bad.stride
        ));
    }
    Ok(list)
}

impl Component {
    /// The bytes the component needs in its plane.
    fn end(&self) -> usize {
        if self.rows_allocated == 0 {
            return self.offset;
        }
        self.offset + self.stride * (self.rows_allocated - 1) + self.row_bytes
    }
}

/// Copies a `fourcc` frame of `width`×`height` from `src` (rows of `src_stride` bytes — for
/// the planar formats the luma's, the chroma's half of it — the chroma right after the luma,
/// as cameras and [`super::VideoFrame`]s lay them out) into the planes `dst` laid out as
/// `format` says. Rows past the frame's height in a padded buffer repeat its last row (less
/// for the encoder to code in the padding). Returns the bytes used of each plane.
pub fn copy_frame(
    (fourcc, width, height): (FourCc, u32, u32),
    src: &[u8],
    src_stride: u32,
    dst: &mut [&mut [u8]],
    format: &RawFormat,
) -> Result<Vec<u32>, String> {
    if format.fourcc != fourcc {
        return Err(format!("a {fourcc} frame for a {} buffer", format.fourcc));
    }
    if width > format.width || height > format.height {
        return Err(format!(
            "a {width}x{height} frame for {}x{} buffers",
            format.width, format.height
        ));
    }
    if dst.len() != format.planes.len() {
        return Err(format!(
            "{} plane(s) for a format of {}",
            dst.len(),
            format.planes.len()
        ));
    }
    let src_plane = [PlaneFormat {
        bytesperline: src_stride,
        sizeimage: src.len() as u32,
    }];
    let from = components(fourcc, (width, height, height), &src_plane)?;
    let to = components(fourcc, (width, height, format.height), &format.planes)?;
    if let Some(last) = from.last() {
        if last.end() > src.len() {
            return Err(format!(
                "a {fourcc} {width}x{height} frame with rows of {src_stride} bytes needs {} bytes, got {}",
                last.end(),
                src.len()
            ));
        }
    }
    for (i, plane) in dst.iter().enumerate() {
        if let Some(c) = to.iter().filter(|c| c.plane == i).max_by_key(|c| c.end()) {
            if c.end() > plane.len() {
                return Err(format!(
                    "plane {i} of {} bytes is too small for {fourcc} {}x{} (rows of {}): needs {}",
                    plane.len(),
                    format.width,
                    format.height,
                    c.stride,
                    c.end()
                ));
            }
        }
    }
    for (f, t) in from.iter().zip(&to) {
        let plane = &mut dst[t.plane];
        for row in 0..t.rows_allocated {
            let src_row = row.min(f.rows.saturating_sub(1));
            let s = f.offset + src_row * f.stride;
            let d = t.offset + row * t.stride;
            plane[d..d + t.row_bytes].copy_from_slice(&src[s..s + f.row_bytes]);
        }
    }
    Ok(dst
        .iter()
        .zip(&format.planes)
        .map(|(plane, p)| (p.sizeimage as usize).min(plane.len()) as u32)
        .collect())
}
