//! What a camera frame's conversion to I420 costs (`src/media/convert.rs`): YUYV, NV12 and YU12
//! with row padding, at 640×480 and 1280×720, on the same pseudo-random frame every run. Every
//! captured frame of a raw format goes through one of these before the encoder. Prints a table
//! of medians and 90th percentiles per frame, and the share of a frame's time at 30 fps.
//!
//! `cargo bench --bench convert`. `INTERCOM_BENCH_FRAMES` sets the frames per row (default 300).

use std::hint::black_box;
use std::time::{Duration, Instant};

use intercom::media::convert::{nv12_to_i420, yu12_to_i420, yuyv_to_i420};
use intercom::media::MediaError;

type Convert = fn(&[u8], u32, u32, u32) -> Result<Vec<u8>, MediaError>;

/// Bytes of pseudo-random noise (xorshift): no run a compressor or a branch predictor favours.
fn noise(len: usize) -> Vec<u8> {
    let mut s: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let frames: usize = std::env::var("INTERCOM_BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    println!("\nframe conversion to I420: CPU time per frame, {frames} frames per row\n");
    println!("| conversion | size | median µs | p90 µs | share of a frame at 30 fps (median) |");
    println!("|---|---|---:|---:|---:|");
    for (w, h) in [(640u32, 480u32), (1280, 720)] {
        // Strides as drivers give them: YUYV tight, NV12 and YU12 with rows padded to 64 bytes
        // more than the width (what the conversion has to drop).
        let rows: [(&str, Convert, u32, usize); 3] = [
            ("YUYV", yuyv_to_i420, 2 * w, (2 * w * h) as usize),
            (
                "NV12 (padded rows)",
                nv12_to_i420,
                w + 64,
                ((w + 64) * h * 3 / 2) as usize,
            ),
            (
                "YU12 (padded rows)",
                yu12_to_i420,
                w + 64,
                ((w + 64) * h * 3 / 2) as usize,
            ),
        ];
        for (what, convert, stride, len) in rows {
            let src = noise(len);
            let mut times: Vec<Duration> = (0..frames)
                .map(|_| {
                    let start = Instant::now();
                    black_box(convert(black_box(&src), w, h, stride).unwrap());
                    start.elapsed()
                })
                .collect();
            times.sort();
            let median = percentile(&times, 0.5);
            println!(
                "| {what} | {w}x{h} | {median:.0} | {:.0} | {:.2} % |",
                percentile(&times, 0.9),
                median / (1e6 / 30.0) * 100.0
            );
        }
    }
}
