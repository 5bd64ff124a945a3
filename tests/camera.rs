//! The camera paths without a camera: the H.264 each path gives decodes (openh264's decoder),
//! MJPEG frames survive decoding and re-encoding, a camera command's output is passed through
//! access unit by access unit, snapshots are JPEGs of the right size, and a camera that is not
//! there is a clear error.
//!
//! The camera command is this test binary itself, re-run to encode the test pattern and write
//! Annex-B H.264 to its standard output (fd 3 there, so that the test runner's own output stays
//! out of the stream).

use std::io::Write;
use std::os::fd::FromRawFd;

use intercom::config::VideoDevice;
use intercom::media::h264::{is_keyframe, H264Encoder};
use intercom::media::source::{ExecH264, H264Source, Pacing};
use intercom::media::synthetic::TestPattern;
use intercom::media::{convert, open_h264, snapshot_jpeg, VideoSettings, VideoSource};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

const EMIT: &str = "INTERCOM_TEST_EMIT_H264";

/// Not a test: the camera command. Encodes `$INTERCOM_TEST_EMIT_H264` frames of the 320x240
/// test pattern and writes them to fd 3. Does nothing in an ordinary run.
#[test]
fn emit_test_h264() {
    let Some(frames) = std::env::var(EMIT)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    // SAFETY: the command line opens fd 3 for this process (`3>&1`) and nothing else uses it.
    let mut out = unsafe { std::fs::File::from_raw_fd(3) };
    let mut pattern = TestPattern::new(320, 240, 15);
    let mut encoder = H264Encoder::new(320, 240, 15, 300_000).unwrap();
    for _ in 0..frames {
        let au = encoder
            .encode(&pattern.next_frame().unwrap(), false)
            .unwrap();
        out.write_all(&au).unwrap();
    }
    out.flush().unwrap();
}

/// Decodes `units` in order: the size of each picture, and how many pictures came out.
fn decode_all(units: &[Vec<u8>]) -> Vec<(usize, usize)> {
    let mut decoder = Decoder::new().unwrap();
    let mut pictures = Vec::new();
    for au in units {
        if let Some(yuv) = decoder.decode(au).unwrap() {
            pictures.push(yuv.dimensions());
        }
    }
    pictures
}

#[test]
fn a_camera_commands_h264_passes_through_and_decodes() {
    let me = std::env::current_exe().unwrap();
    let command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("{EMIT}=20 exec \"$0\" --exact emit_test_h264 --nocapture 3>&1 1>/dev/null"),
        me.display().to_string(),
    ];
    let mut source = ExecH264::spawn(&command).unwrap();
    assert_eq!(source.pacing(), Pacing::Push);
    let mut units = Vec::new();
    let end = loop {
        match source.next_access_unit(false) {
            Ok(Some(au)) => units.push(au),
            Ok(None) => {}
            Err(e) => break e,
        }
    };
    assert!(end.0.contains("ended"), "{end}");
    assert_eq!(units.len(), 20, "one access unit a frame");
    assert!(is_keyframe(&units[0]));
    let pictures = decode_all(&units);
    assert_eq!(pictures.len(), 20);
    assert!(pictures.iter().all(|d| *d == (320, 240)), "{pictures:?}");
}

#[test]
fn the_software_path_from_the_test_pattern_decodes() {
    let settings = VideoSettings::new(320, 240, 15);
    let mut source = open_h264(&VideoDevice::TestPattern, &settings).unwrap();
    assert_eq!(source.pacing(), Pacing::Pull);
    let mut units = Vec::new();
    for i in 0..12 {
        let au = source.next_access_unit(i == 6).unwrap().unwrap();
        if i == 6 {
            assert!(is_keyframe(&au), "a requested keyframe");
        }
        if !au.is_empty() {
            units.push(au);
        }
    }
    assert!(is_keyframe(&units[0]));
    let pictures = decode_all(&units);
    assert_eq!(pictures.len(), units.len());
    assert!(pictures.iter().all(|d| *d == (320, 240)));
}

#[test]
fn mjpeg_frames_decode_encode_and_decode_again() {
    let mut pattern = TestPattern::new(320, 240, 15);
    let frame = pattern.next_frame().unwrap();
    // What an MJPEG camera would send: a 4:2:0 JPEG of the picture.
    let jpeg = convert::i420_to_jpeg(&frame.data, 320, 240, 90).unwrap();
    let (w, h, i420) = convert::jpeg_to_i420(&jpeg).unwrap();
    assert_eq!((w, h), (320, 240));
    let decoded_frame = intercom::media::VideoFrame {
        data: i420,
        ..frame.clone()
    };
    let mut encoder = H264Encoder::new(320, 240, 15, 800_000).unwrap();
    let au = encoder.encode(&decoded_frame, true).unwrap();
    let mut decoder = Decoder::new().unwrap();
    let yuv = decoder.decode(&au).unwrap().expect("a picture");
    assert_eq!(yuv.dimensions(), (320, 240));
    // The luma after JPEG and H.264 is still the test pattern's.
    let stride = yuv.strides().0;
    let mut error = 0u64;
    for row in 0..240 {
        for x in 0..320 {
            error += u64::from(yuv.y()[row * stride + x].abs_diff(frame.data[row * 320 + x]));
        }
    }
    let mean = error as f64 / (320.0 * 240.0);
    assert!(mean < 6.0, "mean luma error {mean}");
}

#[test]
fn snapshots_are_jpegs_of_the_configured_size() {
    let jpeg = snapshot_jpeg(&VideoDevice::TestPattern, &VideoSettings::new(320, 240, 15)).unwrap();
    let (w, h, _) = convert::jpeg_to_i420(&jpeg).unwrap();
    assert_eq!((w, h), (320, 240));

    let missing = VideoDevice::Path("/dev/video-missing".into());
    let err = snapshot_jpeg(&missing, &VideoSettings::new(320, 240, 15)).unwrap_err();
    assert!(err.0.contains("/dev/video-missing"), "{err}");
    let err = snapshot_jpeg(
        &VideoDevice::Exec(vec!["rpicam-vid".to_owned()]),
        &VideoSettings::new(320, 240, 15),
    )
    .unwrap_err();
    assert!(err.0.contains("rpicam-vid"), "{err}");
}

#[test]
fn a_missing_camera_is_an_error_naming_it() {
    let err = open_h264(
        &VideoDevice::Path("/dev/video-missing".into()),
        &VideoSettings::new(640, 480, 15),
    )
    .err()
    .unwrap();
    assert!(err.0.contains("camera /dev/video-missing"), "{err}");
    // A file that is not a V4L2 device.
    let err = open_h264(
        &VideoDevice::Path("/dev/null".into()),
        &VideoSettings::new(640, 480, 15),
    )
    .err()
    .unwrap();
    assert!(err.0.contains("/dev/null"), "{err}");
}
