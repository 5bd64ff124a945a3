//! Synthetic devices: a moving test pattern with a visible frame counter, a tone, and a sink
//! that records what it is given. Used when the configuration says `test-pattern`, `test-tone`
//! or `null`, and by every test.

use std::f32::consts::TAU;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{AudioSink, AudioSource, MediaError, VideoFrame, VideoSource, SAMPLE_RATE};

/// Colour bars that scroll one step a frame, with the frame number drawn large in the middle.
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    frame: u64,
}

impl TestPattern {
    pub fn new(width: u32, height: u32, fps: u32) -> TestPattern {
        TestPattern {
            width,
            height,
            fps,
            frame: 0,
        }
    }
}

/// Luma and chroma of eight bars (white, yellow, cyan, green, magenta, red, blue, black).
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

/// 3×5 bitmaps of the glyphs the pattern prints, one row a nibble (bit 2 = left column).
fn glyph(ch: u8) -> [u8; 5] {
    match ch {
        b'0' => [7, 5, 5, 5, 7],
        b'1' => [2, 6, 2, 2, 7],
        b'2' => [7, 1, 7, 4, 7],
        b'3' => [7, 1, 7, 1, 7],
        b'4' => [5, 5, 7, 1, 1],
        b'5' => [7, 4, 7, 1, 7],
        b'6' => [7, 4, 7, 5, 7],
        b'7' => [7, 1, 1, 1, 1],
        b'8' => [7, 5, 7, 5, 7],
        b'9' => [7, 5, 7, 1, 7],
        b':' => [0, 2, 0, 2, 0],
        b'.' => [0, 0, 0, 0, 2],
        _ => [0; 5],
    }
}

/// Black text on a white box, in luma only, centred horizontally with its top at `y0`.
/// Returns the height of the box.
fn draw_text(luma: &mut [u8], w: usize, h: usize, text: &str, y0: usize, scale: usize) -> usize {
    let box_w = (text.len() * 4 + 1) * scale;
    let box_h = 7 * scale;
    let x0 = w.saturating_sub(box_w) / 2;
    for y in y0..(y0 + box_h).min(h) {
        for x in x0..(x0 + box_w).min(w) {
            luma[y * w + x] = 235;
        }
    }
    for (i, ch) in text.bytes().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                let px = x0 + (1 + i * 4 + col) * scale;
                let py = y0 + (1 + row) * scale;
                for y in py..(py + scale).min(h) {
                    for x in px..(px + scale).min(w) {
                        luma[y * w + x] = 16;
                    }
                }
            }
        }
    }
    box_h
}

/// The scale of the counter's glyphs, of the time's, and the top of the two lines, so that
/// both fit a frame `h` high, centred.
fn text_layout(h: usize) -> (usize, usize, usize) {
    let scale = (h / 16).max(1);
    let small = (scale / 3).max(1);
    let block = 7 * scale + small + 7 * small;
    (scale, small, h.saturating_sub(block) / 2)
}

/// `HH:MM:SS.mmm` of `t`, UTC.
fn time_of_day(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

impl VideoSource for TestPattern {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let captured = SystemTime::now();
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = vec![0u8; w * h * 3 / 2];
        let (luma, chroma) = data.split_at_mut(w * h);
        let (u_plane, v_plane) = chroma.split_at_mut(w * h / 4);
        let shift = (self.frame as usize * 4) % w.max(1);
        for x in 0..w {
            let bar = BARS[((x + shift) % w) * 8 / w];
            for y in 0..h {
                luma[y * w + x] = bar.0;
            }
            if x % 2 == 0 {
                for y in 0..h / 2 {
                    u_plane[y * (w / 2) + x / 2] = bar.1;
                    v_plane[y * (w / 2) + x / 2] = bar.2;
                }
            }
        }
        // The frame counter large in the middle, the capture time (UTC) smaller below it: a
        // viewer can read the glass-to-glass delay off a screenshot beside a clock.
        let (scale, small, y0) = text_layout(h);
        let counter_h = draw_text(luma, w, h, &self.frame.to_string(), y0, scale);
        draw_text(
            luma,
            w,
            h,
            &time_of_day(captured),
            y0 + counter_h + small,
            small,
        );
        let pts = Duration::from_secs(self.frame) / self.fps.max(1);
        self.frame += 1;
        Ok(VideoFrame {
            width: self.width,
            height: self.height,
            pts,
            captured,
            data,
        })
    }
}

/// A continuous sine tone.
pub struct TestTone {
    frequency: f32,
    amplitude: f32,
    phase: f32,
}

impl TestTone {
    pub fn new(frequency: f32) -> TestTone {
        TestTone {
            frequency,
            amplitude: 0.25 * i16::MAX as f32,
            phase: 0.0,
        }
    }
}

impl AudioSource for TestTone {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        let step = TAU * self.frequency / SAMPLE_RATE as f32;
        for s in buf {
            *s = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + step) % TAU;
        }
        Ok(())
    }
}

/// A sink that keeps count of what it was given: samples and their RMS level.
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub samples: u64,
    sum_squares: f64,
}

impl RecordingSink {
    /// RMS level of everything written, 0.0 (silence) to 1.0 (full scale).
    pub fn rms(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        (self.sum_squares / self.samples as f64).sqrt() / i16::MAX as f64
    }
}

impl AudioSink for RecordingSink {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        self.samples += samples.len() as u64;
        self.sum_squares += samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_moves_and_counts() {
        let mut p = TestPattern::new(64, 48, 15);
        let a = p.next_frame().unwrap();
        let b = p.next_frame().unwrap();
        assert_eq!(a.data.len(), 64 * 48 * 3 / 2);
        assert_ne!(a.data, b.data, "consecutive frames differ");
        assert_eq!(b.pts, Duration::from_secs(1) / 15);
    }

    #[test]
    fn pattern_prints_the_capture_time() {
        let mut p = TestPattern::new(640, 480, 15);
        let frame = p.next_frame().unwrap();
        // The time line sits below the counter: a box of white and black pixels only, where the
        // bars under it are mid-grey luma.
        let (w, h) = (640usize, 480usize);
        let (scale, small, y0) = text_layout(h);
        let top = y0 + 7 * scale + small;
        assert!(top + 7 * small <= h);
        let box_w = (12 * 4 + 1) * small;
        let left = (w - box_w) / 2;
        let mut pixels = Vec::new();
        for y in top..top + 7 * small {
            pixels.extend_from_slice(&frame.data[y * w + left..y * w + left + box_w]);
        }
        assert!(pixels.iter().all(|&p| p == 16 || p == 235));
        assert!(pixels.contains(&16) && pixels.contains(&235));
        assert_eq!(
            time_of_day(UNIX_EPOCH + Duration::from_millis(3_723_004)),
            "01:02:03.004"
        );
    }

    #[test]
    fn tone_has_the_level_it_promises() {
        let mut tone = TestTone::new(440.0);
        let mut sink = RecordingSink::default();
        let mut buf = vec![0i16; 960];
        for _ in 0..50 {
            tone.read(&mut buf).unwrap();
            sink.write(&buf).unwrap();
        }
        assert_eq!(sink.samples, 48_000);
        // A sine of amplitude 0.25 has an RMS of 0.25 / sqrt(2).
        assert!(
            (sink.rms() - 0.25 / 2f64.sqrt()).abs() < 0.01,
            "{}",
            sink.rms()
        );
    }
}
