use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::synthetic::{SyntheticHandle, SyntheticM2m, SyntheticOptions};
use super::*;
use crate::media::source::{H264Source, Pacing};
use crate::media::synthetic::TestPattern;
use crate::media::{MediaError, VideoFrame, VideoSource};

const NODE: &str = "/dev/video11";

fn settings(input: FourCc, width: u32, height: u32) -> M2mSettings {
    M2mSettings {
        input,
        width,
        height,
        fps: 15,
        bitrate: 800_000,
        max_bitrate: 2_000_000,
        timeout: Duration::from_millis(200),
    }
}

fn open(
    input: FourCc,
    (width, height): (u32, u32),
    options: SyntheticOptions,
) -> (M2mEncoder<SyntheticM2m>, SyntheticHandle) {
    let (device, handle) = SyntheticM2m::new(NODE, options);
    let encoder = M2mEncoder::open(device, settings(input, width, height)).unwrap();
    (encoder, handle)
}

fn yu12(width: u32, bytesperline: u32, rows: u32) -> RawFormat {
    RawFormat {
        fourcc: FourCc::YU12,
        width,
        height: rows,
        planes: vec![PlaneFormat {
            bytesperline,
            sizeimage: bytesperline * rows * 3 / 2,
        }],
    }
}

/// A tightly packed I420 frame whose every byte tells where it is: plane, row, column.
fn numbered_i420(w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for row in 0..h {
        out.extend((0..w).map(|x| (row * 7 + x) as u8));
    }
    for plane in 1..=2 {
        for row in 0..h / 2 {
            out.extend((0..w / 2).map(|x| (plane * 100 + row * 3 + x) as u8));
        }
    }
    out
}

#[test]
fn a_frame_padded_to_a_128_byte_stride_and_64_rows_lands_where_the_driver_reads_it() {
    let (w, h) = (100usize, 60usize);
    let format = yu12(100, 128, 64);
    let src = numbered_i420(w, h);
    let mut buf = vec![0xEEu8; 128 * 64 * 3 / 2];
    let used = copy_frame(
        (FourCc::YU12, 100, 60),
        &src,
        100,
        &mut [&mut buf[..]],
        &format,
    )
    .unwrap();
    assert_eq!(used, vec![128 * 64 * 3 / 2]);
    for row in 0..64 {
        let from = row.min(h - 1);
        assert_eq!(
            &buf[row * 128..row * 128 + w],
            &src[from * w..from * w + w],
            "luma row {row}"
        );
        // The stride's padding is left alone.
        assert_eq!(buf[row * 128 + w], 0xEE, "luma row {row} padding");
    }
    let (u, v) = (128 * 64, 128 * 64 + 64 * 32);
    let (su, sv) = (w * h, w * h + (w / 2) * (h / 2));
    for row in 0..32 {
        let from = row.min(h / 2 - 1);
        assert_eq!(
            &buf[u + row * 64..u + row * 64 + 50],
            &src[su + from * 50..su + from * 50 + 50],
            "U row {row}"
        );
        assert_eq!(
            &buf[v + row * 64..v + row * 64 + 50],
            &src[sv + from * 50..sv + from * 50 + 50],
            "V row {row}"
        );
    }
}

#[test]
fn an_unpadded_640x480_frame_is_copied_as_it_is() {
    let src = numbered_i420(640, 480);
    let format = yu12(640, 640, 480);
    let mut buf = vec![0u8; src.len()];
    copy_frame(
        (FourCc::YU12, 640, 480),
        &src,
        640,
        &mut [&mut buf[..]],
        &format,
    )
    .unwrap();
    assert!(buf == src);
}

#[test]
fn a_cameras_padded_yuyv_and_nv12_rows_are_copied_without_their_padding() {
    // YUYV 6x4 from a camera with 16-byte rows into a driver's 32-byte rows.
    let src: Vec<u8> = (0..16 * 4).map(|i| i as u8).collect();
    let format = RawFormat {
        fourcc: FourCc::YUYV,
        width: 6,
        height: 4,
        planes: vec![PlaneFormat {
            bytesperline: 32,
            sizeimage: 32 * 4,
        }],
    };
    let mut buf = [0u8; 32 * 4];
    copy_frame((FourCc::YUYV, 6, 4), &src, 16, &mut [&mut buf[..]], &format).unwrap();
    for row in 0..4 {
        assert_eq!(&buf[row * 32..row * 32 + 12], &src[row * 16..row * 16 + 12]);
        assert!(buf[row * 32 + 12..row * 32 + 32].iter().all(|b| *b == 0));
    }
    // NV12 4x2, camera stride 8, into two planes of stride 16 (a multi-planar driver).
    let src: Vec<u8> = (0..8 * 3).map(|i| i as u8 + 1).collect();
    let format = RawFormat {
        fourcc: FourCc::NV12,
        width: 4,
        height: 2,
        planes: vec![
            PlaneFormat {
                bytesperline: 16,
                sizeimage: 32,
            },
            PlaneFormat {
                bytesperline: 16,
                sizeimage: 16,
            },
        ],
    };
    let (mut y, mut uv) = (vec![0u8; 32], vec![0u8; 16]);
    copy_frame(
        (FourCc::NV12, 4, 2),
        &src,
        8,
        &mut [&mut y[..], &mut uv[..]],
        &format,
    )
    .unwrap();
    assert_eq!(&y[..4], &src[..4]);
    assert_eq!(&y[16..20], &src[8..12]);
    assert_eq!(&uv[..4], &src[16..20]);
}

#[test]
fn frames_and_buffers_that_do_not_fit_are_errors_saying_why() {
    let format = yu12(100, 128, 64);
    let src = numbered_i420(100, 60);
    let mut buf = vec![0u8; 128 * 64 * 3 / 2];
    let short = copy_frame(
        (FourCc::YU12, 100, 60),
        &src[..src.len() - 1],
        100,
        &mut [&mut buf[..]],
        &format,
    )
    .unwrap_err();
    assert!(short.contains("needs 9000 bytes, got 8999"), "{short}");
    let mut small = vec![0u8; 128 * 64];
    let e = copy_frame(
        (FourCc::YU12, 100, 60),
        &src,
        100,
        &mut [&mut small[..]],
        &format,
    )
    .unwrap_err();
    assert!(e.contains("too small"), "{e}");
    let e = copy_frame(
        (FourCc::NV12, 100, 60),
        &src,
        100,
        &mut [&mut buf[..]],
        &format,
    )
    .unwrap_err();
    assert!(e.contains("NV12 frame for a YU12 buffer"), "{e}");
    let narrow = yu12(100, 64, 64);
    let e = copy_frame(
        (FourCc::YU12, 100, 60),
        &src,
        100,
        &mut [&mut buf[..]],
        &narrow,
    )
    .unwrap_err();
    assert!(e.contains("stride of 64"), "{e}");
}

#[test]
fn the_level_fits_the_size_the_rate_and_the_bitrate() {
    assert_eq!(h264_level(320, 240, 15, 500_000), (4, "1.3"));
    assert_eq!(h264_level(320, 240, 15, 2_000_000), (5, "2"));
    assert_eq!(h264_level(640, 480, 15, 2_000_000), (7, "2.2"));
    assert_eq!(h264_level(640, 480, 30, 2_000_000), (8, "3"));
    assert_eq!(h264_level(1280, 720, 30, 2_000_000), (9, "3.1"));
    assert_eq!(h264_level(1920, 1080, 30, 8_000_000), (11, "4"));
    assert_eq!(h264_level(3840, 2160, 30, 8_000_000), (13, "4.2"));
}

#[test]
fn the_control_ids_are_the_kernels() {
    use v4l::v4l_sys as k;
    assert_eq!(CID_BITRATE, k::V4L2_CID_MPEG_VIDEO_BITRATE);
    assert_eq!(CID_BITRATE_MODE, k::V4L2_CID_MPEG_VIDEO_BITRATE_MODE);
    assert_eq!(
        CID_REPEAT_SEQ_HEADER,
        k::V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER
    );
    assert_eq!(CID_FORCE_KEY_FRAME, k::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME);
    assert_eq!(CID_H264_I_PERIOD, k::V4L2_CID_MPEG_VIDEO_H264_I_PERIOD);
    assert_eq!(CID_H264_LEVEL, k::V4L2_CID_MPEG_VIDEO_H264_LEVEL);
    assert_eq!(CID_H264_PROFILE, k::V4L2_CID_MPEG_VIDEO_H264_PROFILE);
    assert_eq!(
        PROFILE_CONSTRAINED_BASELINE as u32,
        k::v4l2_mpeg_video_h264_profile_V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE
    );
    assert_eq!(
        h264_level(1280, 720, 30, 2_000_000).0 as u32,
        k::v4l2_mpeg_video_h264_level_V4L2_MPEG_VIDEO_H264_LEVEL_3_1
    );
    assert_eq!(
        BITRATE_MODE_CBR as u32,
        k::v4l2_mpeg_video_bitrate_mode_V4L2_MPEG_VIDEO_BITRATE_MODE_CBR
    );
    assert_eq!(BUF_FLAG_ERROR, k::V4L2_BUF_FLAG_ERROR);
}

/// Mean absolute luma difference between a decoded picture and a frame.
fn luma_error(decoded: &impl YUVSource, frame: &VideoFrame) -> f64 {
    let (w, h) = (frame.width as usize, frame.height as usize);
    assert_eq!(decoded.dimensions(), (w, h));
    let stride = decoded.strides().0;
    let mut error = 0u64;
    for row in 0..h {
        for x in 0..w {
            error += u64::from(decoded.y()[row * stride + x].abs_diff(frame.data[row * w + x]));
        }
    }
    error as f64 / (w * h) as f64
}

/// The frame in the camera format `fourcc`, rows of `stride` bytes (the padding filled with
/// junk a wrong copy would show).
fn as_camera(frame: &VideoFrame, fourcc: FourCc, stride: usize) -> Vec<u8> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (y, rest) = frame.data.split_at(w * h);
    let (u, v) = rest.split_at(w * h / 4);
    let mut out = Vec::new();
    let pad = |out: &mut Vec<u8>, to: usize| out.resize(to, 0x55);
    match &fourcc.0 {
        b"YU12" => {
            for row in 0..h {
                out.extend_from_slice(&y[row * w..][..w]);
                pad(&mut out, (row + 1) * stride);
            }
            for plane in [u, v] {
                for row in 0..h / 2 {
                    let start = out.len();
                    out.extend_from_slice(&plane[row * w / 2..][..w / 2]);
                    pad(&mut out, start + stride / 2);
                }
            }
        }
        b"NV12" => {
            for row in 0..h {
                out.extend_from_slice(&y[row * w..][..w]);
                pad(&mut out, (row + 1) * stride);
            }
            for row in 0..h / 2 {
                let start = out.len();
                for x in 0..w / 2 {
                    out.extend([u[row * w / 2 + x], v[row * w / 2 + x]]);
                }
                pad(&mut out, start + stride);
            }
        }
        b"YUYV" => {
            for row in 0..h {
                let start = out.len();
                for x in 0..w / 2 {
                    let c = (row / 2) * (w / 2) + x;
                    out.extend([y[row * w + 2 * x], u[c], y[row * w + 2 * x + 1], v[c]]);
                }
                pad(&mut out, start + stride);
            }
        }
        _ => unreachable!(),
    }
    out
}

/// Test-pattern frames in a camera format through the encoder, every access unit decoded and
/// compared with its frame.
struct Checker {
    fourcc: FourCc,
    size: (u32, u32),
    stride: usize,
    pattern: TestPattern,
    /// Frames whose access unit has not come yet.
    frames: VecDeque<VideoFrame>,
    decoder: Decoder,
}

impl Checker {
    fn new(fourcc: FourCc, (width, height, stride): (u32, u32, usize)) -> Checker {
        Checker {
            fourcc,
            size: (width, height),
            stride,
            pattern: TestPattern::new(width, height, 15),
            frames: VecDeque::new(),
            decoder: Decoder::new().unwrap(),
        }
    }

    /// Runs `count` frames; returns the access units.
    fn run(&mut self, encoder: &mut M2mEncoder<SyntheticM2m>, count: usize) -> Vec<Vec<u8>> {
        let mut units = Vec::new();
        for _ in 0..count {
            let frame = self.pattern.next_frame().unwrap();
            let raw = as_camera(&frame, self.fourcc, self.stride);
            self.frames.push_back(frame);
            let au = encoder.encode(&raw, self.stride as u32, false).unwrap();
            if au.is_empty() {
                continue;
            }
            let frame = self.frames.pop_front().unwrap();
            let picture = self
                .decoder
                .decode(&au)
                .unwrap()
                .expect("a picture an access unit");
            let error = luma_error(&picture, &frame);
            let (fourcc, (w, h)) = (self.fourcc, self.size);
            assert!(error < 4.0, "{fourcc} {w}x{h}: mean luma error {error}");
            units.push(au);
        }
        assert!(
            units.len() + 1 >= count,
            "{} access units for {count} frames",
            units.len()
        );
        units
    }
}

fn encode_and_check(
    encoder: &mut M2mEncoder<SyntheticM2m>,
    fourcc: FourCc,
    size: (u32, u32, usize),
    count: usize,
) -> Vec<Vec<u8>> {
    Checker::new(fourcc, size).run(encoder, count)
}

#[test]
fn i420_frames_go_through_the_hardware_path_and_decode_to_the_same_picture() {
    for (w, h) in [(100, 60), (320, 240), (640, 480)] {
        let (mut encoder, handle) = open(FourCc::YU12, (w, h), SyntheticOptions::default());
        let format = encoder.format().clone();
        assert_eq!(format.planes[0].bytesperline, w.div_ceil(32) * 32);
        assert_eq!(format.height, h.div_ceil(16) * 16);
        let units = encode_and_check(&mut encoder, FourCc::YU12, (w, h, w as usize), 12);
        let types = nal_types(&units[0]);
        assert!(
            types.starts_with(&[7, 8, 5]),
            "first access unit: {types:?}"
        );
        // A frame of latency: the last frame is still in the device.
        assert_eq!(handle.counts().1, 11);
        assert_eq!(units.len(), 11);
    }
}

#[test]
fn a_cameras_own_padded_formats_are_passed_as_they_are() {
    for fourcc in [FourCc::YU12, FourCc::NV12, FourCc::YUYV] {
        let stride = if fourcc == FourCc::YUYV {
            2 * 176 + 32
        } else {
            192
        };
        let (mut encoder, _) = open(fourcc, (176, 144), SyntheticOptions::default());
        encode_and_check(&mut encoder, fourcc, (176, 144, stride), 6);
    }
}

#[test]
fn a_keyframe_request_gives_an_idr_frame_with_sps_and_pps_in_one_access_unit() {
    for split_headers in [true, false] {
        let options = SyntheticOptions {
            split_headers,
            ..SyntheticOptions::default()
        };
        let (mut encoder, handle) = open(FourCc::YU12, (160, 120), options);
        let mut pattern = TestPattern::new(160, 120, 15);
        let mut units = Vec::new();
        for i in 0..10 {
            let frame = pattern.next_frame().unwrap();
            units.push(encoder.encode(&frame.data, 160, i == 5).unwrap());
        }
        assert_eq!(handle.counts().0, 1);
        assert!(handle.controls().contains(&(CID_FORCE_KEY_FRAME, 0)));
        // Frame 5's access unit comes a call later (the device's latency).
        let idr: Vec<usize> = (0..units.len()).filter(|i| is_idr(&units[*i])).collect();
        assert_eq!(idr, vec![1, 6], "split headers: {split_headers}");
        for i in idr {
            let types = nal_types(&units[i]);
            assert!(types.starts_with(&[7, 8, 5]), "access unit {i}: {types:?}");
        }
        // Each access unit holds one picture.
        assert!(units[2..].iter().all(|u| nal_types(u)
            .iter()
            .filter(|t| matches!(t, 1 | 5))
            .count()
            == 1));
    }
}

fn is_idr(au: &[u8]) -> bool {
    nal_types(au).contains(&5)
}

#[test]
fn the_encoder_is_set_up_for_browsers_and_late_joiners() {
    let (_encoder, handle) = open(FourCc::YU12, (640, 480), SyntheticOptions::default());
    let controls = handle.controls();
    for wanted in [
        (CID_H264_PROFILE, PROFILE_CONSTRAINED_BASELINE),
        (CID_H264_LEVEL, 7),
        (CID_H264_I_PERIOD, 30),
        (CID_REPEAT_SEQ_HEADER, 1),
        (CID_BITRATE, 800_000),
    ] {
        assert!(controls.contains(&wanted), "{wanted:?} not in {controls:?}");
    }
}

#[test]
fn a_bitrate_change_reaches_the_running_encoder() {
    let (mut encoder, handle) = open(FourCc::YU12, (320, 240), SyntheticOptions::default());
    let mut checker = Checker::new(FourCc::YU12, (320, 240, 320));
    checker.run(&mut encoder, 4);
    assert_eq!(handle.bitrate(), (Some(800_000), Some(800_000)));
    encoder.set_bitrate(250_000).unwrap();
    assert_eq!(encoder.bitrate(), 250_000);
    assert_eq!(handle.bitrate(), (Some(250_000), Some(250_000)));
    // The stream goes on without a new keyframe.
    let after = checker.run(&mut encoder, 4);
    assert!(after.iter().all(|au| !is_idr(au)));
}

#[test]
fn a_vanished_encoder_is_an_error_naming_it_not_a_hang_or_a_panic() {
    let (mut encoder, handle) = open(FourCc::YU12, (160, 120), SyntheticOptions::default());
    let frame = TestPattern::new(160, 120, 15).next_frame().unwrap();
    for _ in 0..3 {
        encoder.encode(&frame.data, 160, false).unwrap();
    }
    handle.vanish();
    let e = encoder.encode(&frame.data, 160, false).unwrap_err();
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("vanished"),
        "{e}"
    );
    assert!(
        matches!(e, MediaError::Gone(_)),
        "a vanished encoder is gone: {e:?}"
    );
    let again = encoder.encode(&frame.data, 160, true).unwrap_err();
    assert_eq!(again, e, "later calls give the same error");
    assert!(encoder
        .set_bitrate(100_000)
        .unwrap_err()
        .to_string()
        .contains(NODE));
    drop(encoder);
    assert!(handle.closed().is_some(), "closed after all");
}

#[test]
fn an_encoder_vanishing_while_the_encoder_waits_ends_the_wait() {
    let options = SyntheticOptions {
        stall: true,
        ..SyntheticOptions::default()
    };
    let (device, handle) = SyntheticM2m::new(NODE, options);
    let mut settings = settings(FourCc::YU12, 160, 120);
    settings.timeout = Duration::from_secs(3600);
    let mut encoder = M2mEncoder::open(device, settings).unwrap();
    let frame = TestPattern::new(160, 120, 15).next_frame().unwrap();
    // The stalled device keeps every frame buffer: the fifth frame waits for one.
    let waiter = std::thread::spawn(move || {
        let mut last = Ok(Vec::new());
        for _ in 0..5 {
            last = encoder.encode(&frame.data, 160, false);
            if last.is_err() {
                break;
            }
        }
        last
    });
    while handle.held().0 < 4 {
        std::thread::yield_now();
    }
    handle.vanish();
    let e = waiter.join().unwrap().unwrap_err();
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("vanished"),
        "{e}"
    );
    assert!(
        matches!(e, MediaError::Gone(_)),
        "a vanished encoder is gone: {e:?}"
    );
}

#[test]
fn a_stuck_encoder_is_an_error_after_the_timeout() {
    let options = SyntheticOptions {
        stall: true,
        ..SyntheticOptions::default()
    };
    let (mut encoder, _handle) = open(FourCc::YU12, (160, 120), options);
    let frame = TestPattern::new(160, 120, 15).next_frame().unwrap();
    let e = (0..10)
        .find_map(|_| encoder.encode(&frame.data, 160, false).err())
        .expect("an error");
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("stuck"),
        "{e}"
    );
    assert!(
        matches!(e, MediaError::Codec(_)),
        "a stuck encoder is still there: {e:?}"
    );
}

#[test]
fn every_buffer_comes_back_and_the_device_closes_on_drop() {
    let (mut encoder, handle) = open(FourCc::YU12, (160, 120), SyntheticOptions::default());
    encode_and_check(&mut encoder, FourCc::YU12, (160, 120, 160), 5);
    let (output, capture) = handle.held();
    assert_eq!((output, capture), encoder.held());
    assert!(
        output >= 1 && capture == 6,
        "held while running: {output} {capture}"
    );
    assert_eq!(handle.streaming(), (true, true));
    drop(encoder);
    assert_eq!(handle.streaming(), (false, false));
    assert_eq!(handle.closed(), Some((0, 0)), "nothing held when closed");
}

#[test]
fn a_refused_profile_fails_the_open_and_a_refused_level_does_not() {
    let options = SyntheticOptions {
        refuse_control: Some(CID_H264_PROFILE),
        ..SyntheticOptions::default()
    };
    let (device, handle) = SyntheticM2m::new(NODE, options);
    let e = M2mEncoder::open(device, settings(FourCc::YU12, 160, 120))
        .err()
        .expect("an error");
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("constrained baseline"),
        "{e}"
    );
    assert_eq!(handle.closed(), Some((0, 0)));
    let options = SyntheticOptions {
        refuse_control: Some(CID_H264_LEVEL),
        ..SyntheticOptions::default()
    };
    let (mut encoder, _) = open(FourCc::YU12, (160, 120), options);
    encode_and_check(&mut encoder, FourCc::YU12, (160, 120, 160), 3);
}

#[test]
fn odd_sizes_and_formats_the_device_does_not_take_are_errors_naming_it() {
    let (device, _) = SyntheticM2m::new(NODE, SyntheticOptions::default());
    let e = M2mEncoder::open(device, settings(FourCc::YU12, 161, 120))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("161x120"),
        "{e}"
    );
    let (device, _) = SyntheticM2m::new(NODE, SyntheticOptions::default());
    let e = M2mEncoder::open(device, settings(FourCc::MJPG, 160, 120))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains(NODE) && e.to_string().contains("MJPG"),
        "{e}"
    );
}

/// The test pattern as a camera giving YU12 (tightly packed).
struct PatternCamera(TestPattern);

impl VideoSource for PatternCamera {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        self.0.next_frame()
    }
}

impl RawFrames for PatternCamera {
    fn fourcc(&self) -> FourCc {
        FourCc::YU12
    }

    fn next_raw(&mut self) -> Result<(Vec<u8>, u32), MediaError> {
        let frame = self.0.next_frame()?;
        Ok((frame.data, frame.width))
    }

    fn to_i420(&mut self, _raw: &[u8]) -> Result<VideoFrame, MediaError> {
        unreachable!("the encoder takes YU12")
    }
}

fn hardware_source(
    options: SyntheticOptions,
) -> (M2mH264<SyntheticM2m, PatternCamera>, SyntheticHandle) {
    let (encoder, handle) = open(FourCc::YU12, (160, 120), options);
    let camera = PatternCamera(TestPattern::new(160, 120, 15));
    (
        M2mH264::new(encoder, camera, "/dev/video0".to_owned()),
        handle,
    )
}

#[test]
fn the_hardware_source_is_pulled_and_takes_keyframe_and_bitrate_requests() {
    let (mut source, handle) = hardware_source(SyntheticOptions::default());
    assert_eq!(source.pacing(), Pacing::Pull);
    assert_eq!(source.name(), "/dev/video0");
    let mut decoder = Decoder::new().unwrap();
    let mut pictures = 0;
    let mut units = Vec::new();
    for i in 0..8 {
        let au = source.next_access_unit(i == 4).unwrap().unwrap();
        if !au.is_empty() {
            pictures += usize::from(decoder.decode(&au).unwrap().is_some());
            units.push(au);
        }
    }
    assert_eq!(pictures, 7);
    assert_eq!(units.iter().filter(|u| is_idr(u)).count(), 2);
    assert!(source.set_bitrate(300_000).unwrap());
    assert_eq!(handle.bitrate().0, Some(300_000));
    assert!(source.in_hardware());
    drop(source);
    assert_eq!(handle.closed(), Some((0, 0)));
}

#[test]
fn an_encoder_vanishing_mid_call_hands_the_frames_to_the_software_encoder() {
    let (mut source, handle) = hardware_source(SyntheticOptions::default());
    let mut decoder = Decoder::new().unwrap();
    for _ in 0..5 {
        let au = source.next_access_unit(false).unwrap().unwrap();
        if !au.is_empty() {
            decoder.decode(&au).unwrap().expect("a picture");
        }
    }
    handle.vanish();
    let au = source.next_access_unit(false).unwrap().unwrap();
    assert!(!source.in_hardware());
    assert!(handle.closed().is_some(), "the vanished encoder is closed");
    let types = nal_types(&au);
    assert!(
        types.starts_with(&[7, 8, 5]),
        "the software encoder starts with an IDR frame: {types:?}"
    );
    decoder.decode(&au).unwrap().expect("a picture");
    for _ in 0..3 {
        let au = source.next_access_unit(false).unwrap().unwrap();
        if !au.is_empty() {
            let picture = decoder.decode(&au).unwrap().expect("a picture");
            assert_eq!(picture.dimensions(), (160, 120));
        }
    }
    assert!(
        source.set_bitrate(200_000).unwrap(),
        "the software encoder takes bitrates"
    );
}
