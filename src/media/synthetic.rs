//! Synthetic devices: a moving test pattern with a visible frame counter and a machine-readable
//! capture time, a tone, tone bursts on the wall clock's whole seconds, and a sink that records
//! what it is given (and notes when a burst begins). Used when the configuration says
//! `test-pattern`, `test-tone`, `test-bursts` or `null`, and by every test and the benchmark.

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

/// Copies the first row (`w` bytes) of `plane` over all its other rows.
fn fill_down(plane: &mut [u8], w: usize) {
    if w == 0 {
        return;
    }
    let (first, rest) = plane.split_at_mut(w);
    for row in rest.chunks_exact_mut(w) {
        row.copy_from_slice(first);
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

/// Cells per row of the capture-time stamp, and its rows.
pub const STAMP_COLUMNS: usize = 24;
pub const STAMP_ROWS: usize = 2;
/// The stamp's first eight cells, a fixed pattern a reader checks before trusting the rest.
pub const STAMP_SYNC: [bool; 8] = [true, false, true, true, false, false, true, false];

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The stamp's 48 cells, row by row, left to right: the sync pattern, the low 32 bits of
/// `ms` (most significant first), then a check byte (the four bytes of those bits summed,
/// XOR 0xA5).
pub fn stamp_cells(ms: u64) -> [bool; STAMP_COLUMNS * STAMP_ROWS] {
    let value = ms as u32;
    let check = stamp_check(value);
    let mut cells = [false; STAMP_COLUMNS * STAMP_ROWS];
    cells[..8].copy_from_slice(&STAMP_SYNC);
    for i in 0..32 {
        cells[8 + i] = value >> (31 - i) & 1 == 1;
    }
    for i in 0..8 {
        cells[40 + i] = check >> (7 - i) & 1 == 1;
    }
    cells
}

/// The side of one stamp cell for a frame `w` wide: square, as large as fits.
pub fn stamp_cell_size(w: usize) -> usize {
    (w / STAMP_COLUMNS).max(1)
}

/// Draws the capture time `ms` as a block code along the top of the frame: black and white
/// square cells in luma, neutral chroma, large enough to survive H.264 at low bit rates. A
/// reader samples the middle of each cell (see [`read_stamp`]).
fn draw_stamp(luma: &mut [u8], u: &mut [u8], v: &mut [u8], w: usize, h: usize, ms: u64) {
    let cell = stamp_cell_size(w);
    for (i, on) in stamp_cells(ms).iter().enumerate() {
        let (cx, cy) = ((i % STAMP_COLUMNS) * cell, (i / STAMP_COLUMNS) * cell);
        for y in cy..(cy + cell).min(h) {
            for x in cx..(cx + cell).min(w) {
                luma[y * w + x] = if *on { 235 } else { 16 };
                if x % 2 == 0 && y % 2 == 0 {
                    u[(y / 2) * (w / 2) + x / 2] = 128;
                    v[(y / 2) * (w / 2) + x / 2] = 128;
                }
            }
        }
    }
}

/// Reads the stamp back from a frame's luma plane: the low 32 bits of the capture time in
/// milliseconds, or `None` if the sync pattern or the check byte does not match. The browser
/// page of the benchmark decodes it the same way from the received video.
pub fn read_stamp(luma: &[u8], w: usize, h: usize) -> Option<u32> {
    let cell = stamp_cell_size(w);
    if STAMP_ROWS * cell > h {
        return None;
    }
    let mut cells = [false; STAMP_COLUMNS * STAMP_ROWS];
    for (i, c) in cells.iter_mut().enumerate() {
        let (cx, cy) = ((i % STAMP_COLUMNS) * cell, (i / STAMP_COLUMNS) * cell);
        // The middle half of the cell, away from the edges the codec blurs.
        let (from, to) = (cell / 4, (cell * 3 / 4).max(cell / 4 + 1));
        let (mut sum, mut n) = (0u32, 0u32);
        for y in cy + from..cy + to {
            for x in cx + from..cx + to {
                sum += luma[y * w + x] as u32;
                n += 1;
            }
        }
        *c = sum / n.max(1) >= 128;
    }
    if cells[..8] != STAMP_SYNC {
        return None;
    }
    let value = cells[8..40].iter().fold(0u32, |a, &b| a << 1 | b as u32);
    let check = cells[40..].iter().fold(0u8, |a, &b| a << 1 | b as u8);
    (check == stamp_check(value)).then_some(value)
}

/// The stamp's check byte for `value`.
fn stamp_check(value: u32) -> u8 {
    value
        .to_be_bytes()
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        ^ 0xA5
}

impl VideoSource for TestPattern {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        crate::panics::test_panic("camera");
        let captured = SystemTime::now();
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = vec![0u8; w * h * 3 / 2];
        let (luma, chroma) = data.split_at_mut(w * h);
        let (u_plane, v_plane) = chroma.split_at_mut(w * h / 4);
        let shift = (self.frame as usize * 4) % w.max(1);
        // The bars are the same on every row: draw the first row of each plane, then copy it
        // down (row by row, as the planes are laid out in memory).
        let bar = |x: usize| BARS[((x + shift) % w) * 8 / w];
        for (x, l) in luma[..w].iter_mut().enumerate() {
            *l = bar(x).0;
        }
        for (x, (u, v)) in u_plane[..w / 2]
            .iter_mut()
            .zip(&mut v_plane[..w / 2])
            .enumerate()
        {
            (*u, *v) = (bar(2 * x).1, bar(2 * x).2);
        }
        fill_down(luma, w);
        fill_down(u_plane, w / 2);
        fill_down(v_plane, w / 2);
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
        draw_stamp(luma, u_plane, v_plane, w, h, unix_ms(captured));
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

/// The tone of [`TestBursts`], its length, and its amplitude (of full scale).
pub const BURST_HZ: f32 = 1000.0;
pub const BURST_MS: u64 = 100;
const BURST_AMPLITUDE: f32 = 0.5;

/// A 1 kHz tone burst of 100 ms at each whole second of the wall clock, silence between: a
/// microphone whose sound has a known origin time, for measuring one-way audio latency. Like
/// a real microphone, a read returns the samples of the 20 ms (or whatever `buf` holds) that
/// ended at the moment of the read.
#[derive(Debug, Default)]
pub struct TestBursts {
    phase: f32,
}

impl TestBursts {
    pub fn new() -> TestBursts {
        TestBursts::default()
    }

    /// Fills `buf` with the samples whose time ends at `end`.
    pub fn fill(&mut self, buf: &mut [i16], end: SystemTime) {
        let end_us = end
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        let n = buf.len() as u64;
        let step = TAU * BURST_HZ / SAMPLE_RATE as f32;
        let amplitude = BURST_AMPLITUDE * i16::MAX as f32;
        for (k, s) in buf.iter_mut().enumerate() {
            let t_us = end_us.saturating_sub((n - k as u64) * 1_000_000 / SAMPLE_RATE as u64);
            *s = if t_us % 1_000_000 < BURST_MS * 1000 {
                let v = (self.phase.sin() * amplitude) as i16;
                self.phase = (self.phase + step) % TAU;
                v
            } else {
                self.phase = 0.0;
                0
            };
        }
    }
}

impl AudioSource for TestBursts {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        self.fill(buf, SystemTime::now());
        Ok(())
    }
}

/// Finds where a sound begins after a silence, as [`TestBursts`] makes them: a sample above
/// about -18 dBFS after at least 100 ms below about -30 dBFS.
#[derive(Debug, Default)]
pub struct OnsetDetector {
    quiet: u64,
}

impl OnsetDetector {
    const QUIET: i32 = 1000;
    const LOUD: i32 = 4000;
    const QUIET_SAMPLES: u64 = SAMPLE_RATE as u64 / 10;

    /// The index in `samples` of the first onset among them, if any.
    pub fn feed(&mut self, samples: &[i16]) -> Option<usize> {
        let mut found = None;
        for (i, &s) in samples.iter().enumerate() {
            let a = (s as i32).abs();
            if a >= Self::LOUD {
                if self.quiet >= Self::QUIET_SAMPLES && found.is_none() {
                    found = Some(i);
                }
                self.quiet = 0;
            } else if a < Self::QUIET {
                self.quiet += 1;
            }
        }
        found
    }
}

/// A sink that keeps count of what it was given: samples and their RMS level. It also logs (at
/// debug level) the wall-clock time of each sound that begins after a silence — the time the
/// sample is written here, plus its place in the write — which the benchmark reads to measure
/// the browser-to-door audio latency.
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub samples: u64,
    sum_squares: f64,
    onsets: OnsetDetector,
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
        if let Some(i) = self.onsets.feed(samples) {
            let at = SystemTime::now()
                + Duration::from_micros(i as u64 * 1_000_000 / SAMPLE_RATE as u64);
            log::debug!("audio onset from the peer at {} ms", unix_ms(at));
        }
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
    fn the_bars_fill_every_row_of_every_plane_and_move() {
        let (w, h) = (64usize, 48usize);
        let mut p = TestPattern::new(w as u32, h as u32, 15);
        for frame_no in 0..3usize {
            let frame = p.next_frame().unwrap();
            let shift = frame_no * 4 % w;
            let (luma, chroma) = frame.data.split_at(w * h);
            let (u, v) = chroma.split_at(w * h / 4);
            // The last rows: below the text and the stamp.
            for x in 0..w {
                assert_eq!(luma[(h - 1) * w + x], BARS[(x + shift) % w * 8 / w].0);
            }
            for x in 0..w / 2 {
                let bar = BARS[(2 * x + shift) % w * 8 / w];
                assert_eq!(
                    (u[(h / 2 - 1) * w / 2 + x], v[(h / 2 - 1) * w / 2 + x]),
                    (bar.1, bar.2)
                );
            }
        }
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
    fn the_stamp_reads_back_and_rejects_damage() {
        for (w, h) in [(640usize, 480usize), (320, 240), (64, 48)] {
            let mut p = TestPattern::new(w as u32, h as u32, 15);
            let frame = p.next_frame().unwrap();
            let ms = unix_ms(frame.captured);
            assert_eq!(read_stamp(&frame.data, w, h), Some(ms as u32), "{w}x{h}");
        }
        let (w, h) = (320usize, 240usize);
        let mut frame = TestPattern::new(320, 240, 15).next_frame().unwrap();
        // One data cell flipped: the check byte no longer matches.
        let cell = stamp_cell_size(w);
        let (x, y) = (10 * cell + cell / 2, cell / 2);
        let flipped = if frame.data[y * w + x] > 128 { 16 } else { 235 };
        for yy in y - cell / 2..y + cell / 2 {
            for xx in x - cell / 2..x + cell / 2 {
                frame.data[yy * w + xx] = flipped;
            }
        }
        assert_eq!(read_stamp(&frame.data, w, h), None);
        assert_eq!(read_stamp(&[128u8; 320 * 240], w, h), None);
    }

    #[test]
    fn bursts_start_on_whole_seconds_and_the_detector_finds_them() {
        let mut src = TestBursts::new();
        let mut detector = OnsetDetector::default();
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let mut onsets = Vec::new();
        let mut buf = vec![0i16; 960];
        // 3 s of 20 ms reads: onsets at the whole seconds 1, 2 and 3 s after the start's second.
        for i in 1..=150u64 {
            let end = start + Duration::from_millis(20 * i);
            src.fill(&mut buf, end);
            if let Some(k) = detector.feed(&buf) {
                let ms = unix_ms(end) as f64 - (960 - k) as f64 / 48.0;
                onsets.push(ms);
            }
        }
        assert_eq!(onsets.len(), 3, "{onsets:?}");
        for (i, ms) in onsets.iter().enumerate() {
            let nominal = 1_700_000_001_000.0 + 1000.0 * i as f64;
            assert!((ms - nominal).abs() < 0.1, "{ms} vs {nominal}");
        }
        // A continuous tone never counts as an onset.
        let mut tone = TestTone::new(440.0);
        let mut detector = OnsetDetector::default();
        for _ in 0..100 {
            tone.read(&mut buf).unwrap();
            assert_eq!(detector.feed(&buf), None);
        }
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
