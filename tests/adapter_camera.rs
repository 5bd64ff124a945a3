//! The camera paths without a camera: the H.264 each path gives decodes (openh264's decoder),
//! MJPEG frames survive decoding and re-encoding, a camera command's output is passed through
//! access unit by access unit, snapshots are JPEGs of the right size — taken from a call's
//! stream while a call holds the camera — and a camera that is not there is a clear error.
//!
//! The camera command is this test binary itself, re-run to encode the test pattern and write
//! Annex-B H.264 to its standard output (fd 3 there, so that the test runner's own output stays
//! out of the stream).

use std::io::Write;
use std::os::fd::FromRawFd;

use intercom::media::h264::{is_keyframe, H264Encoder};
use intercom::media::source::{ExecH264, H264Source, Pacing};
use intercom::media::synthetic::TestPattern;
use intercom::media::VideoDevice;
use intercom::media::{
    convert, open_h264, snapshot, stills, MediaError, VideoSettings, VideoSource,
};
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
    assert!(end.to_string().contains("ended"), "{end}");
    assert!(
        matches!(end, MediaError::Gone(_)),
        "a command that ended is gone: {end:?}"
    );
    assert_eq!(units.len(), 20, "one access unit a frame");
    assert!(is_keyframe(&units[0]));
    let pictures = decode_all(&units);
    assert_eq!(pictures.len(), 20);
    assert!(pictures.iter().all(|d| *d == (320, 240)), "{pictures:?}");
}

/// Tests that hold the test pattern for a call or take its snapshot run one at a time: a
/// snapshot takes a held camera's frames.
static TEST_PATTERN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn test_pattern() -> std::sync::MutexGuard<'static, ()> {
    TEST_PATTERN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn the_software_path_from_the_test_pattern_decodes() {
    let _one = test_pattern();
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
    let _one = test_pattern();
    let still = snapshot(&VideoDevice::TestPattern, &VideoSettings::new(320, 240, 15)).unwrap();
    let (w, h, _) = convert::jpeg_to_i420(&still.jpeg).unwrap();
    assert_eq!((w, h), (320, 240));
    assert_eq!((still.width, still.height), (320, 240));

    let missing = VideoDevice::Path("/dev/video-missing".into());
    let err = snapshot(&missing, &VideoSettings::new(320, 240, 15)).unwrap_err();
    assert!(err.to_string().contains("/dev/video-missing"), "{err}");
    let err = snapshot(
        &VideoDevice::Exec(vec!["rpicam-vid".to_owned()]),
        &VideoSettings::new(320, 240, 15),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rpicam-vid"), "{err}");
}

/// Row `y` of the picture (luma `width` wide) shows the test pattern's eight bars (below its
/// text; they scroll, so where each is does not matter): each bar's luma over at least a
/// quarter of its width.
fn assert_shows_the_bars(luma: &[u8], width: usize, y: usize) {
    let row = &luma[y * width..][..width];
    for level in [235u8, 210, 170, 145, 106, 81, 41, 16] {
        let near = row.iter().filter(|&&l| l.abs_diff(level) <= 8).count();
        assert!(near >= width / 32, "bar {level}: {near} pixels in {row:?}");
    }
}

#[test]
fn a_snapshot_while_a_call_holds_the_camera_takes_the_calls_frames() {
    let _one = test_pattern();
    let device = VideoDevice::TestPattern;
    let call = open_h264(&device, &VideoSettings::new(320, 240, 15)).unwrap();
    assert!(stills::is_held(&device));
    // Asked at another size, the picture still comes from the call's 320x240 stream: the
    // camera is not opened a second time.
    let still = snapshot(&device, &VideoSettings::new(160, 120, 15)).unwrap();
    assert_eq!((still.width, still.height), (320, 240));
    let (w, h, i420) = convert::jpeg_to_i420(&still.jpeg).unwrap();
    assert_eq!((w, h), (320, 240));
    assert_shows_the_bars(&i420, 320, 230);
    drop(call);
    assert!(!stills::is_held(&device));
    // The call is over: the camera is opened for the snapshot, at the size asked.
    let still = snapshot(&device, &VideoSettings::new(160, 120, 15)).unwrap();
    assert_eq!((still.width, still.height), (160, 120));
}

/// A camera that sends H.264 at its own pace (like a UVC H.264 camera or `rpicam-vid`): a
/// keyframe only when asked for after the first, if `keyframes` is on.
struct H264Camera {
    pattern: TestPattern,
    encoder: H264Encoder,
    keyframes: bool,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl H264Source for H264Camera {
    fn pacing(&self) -> Pacing {
        Pacing::Push
    }

    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        if keyframe {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let frame = self.pattern.next_frame()?;
        std::thread::sleep(std::time::Duration::from_millis(5)); // a camera's frame interval
        self.encoder
            .encode(&frame, keyframe && self.keyframes)
            .map(Some)
    }

    fn name(&self) -> &str {
        "h264 camera"
    }
}

/// Runs an [`H264Camera`] held as `device` on a thread like a call's encoder thread, until
/// `stop`; returns once its first access unit (a keyframe, as every stream starts) is out.
fn run_held(
    device: &VideoDevice,
    keyframes: bool,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::thread::JoinHandle<usize>,
) {
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let camera = H264Camera {
        pattern: TestPattern::new(320, 240, 15),
        encoder: H264Encoder::new(320, 240, 15, 300_000).unwrap(),
        keyframes,
        asked: asked.clone(),
    };
    let mut held = stills::TappedStream::hold(device, Box::new(camera));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let (started_tx, started) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut units = 0;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            held.next_access_unit(false).unwrap();
            units += 1;
            let _ = started_tx.send(());
        }
        units
    });
    started.recv().unwrap();
    (stop, asked, thread)
}

#[test]
fn a_snapshot_of_an_h264_camera_in_a_call_is_its_next_keyframe_decoded() {
    let device = VideoDevice::Exec(vec!["h264-camera-for-a-snapshot".to_owned()]);
    let (stop, asked, thread) = run_held(&device, true);
    assert!(stills::is_held(&device));
    let still = snapshot(&device, &VideoSettings::new(160, 120, 15)).unwrap();
    assert_eq!((still.width, still.height), (320, 240));
    let (_, _, i420) = convert::jpeg_to_i420(&still.jpeg).unwrap();
    assert_shows_the_bars(&i420, 320, 230);
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one keyframe asked for"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(thread.join().unwrap() > 1);
    assert!(!stills::is_held(&device), "released with the call's source");
}

#[test]
fn a_held_h264_camera_that_gives_no_keyframe_is_a_clear_error() {
    let device = VideoDevice::Exec(vec!["h264-camera-without-keyframes".to_owned()]);
    let (stop, asked, thread) = run_held(&device, false);
    let err = stills::take(
        &device,
        "h264-camera-without-keyframes",
        std::time::Duration::from_millis(300),
    )
    .expect("the camera is held")
    .unwrap_err();
    assert!(
        err.to_string().contains("h264-camera-without-keyframes"),
        "{err}"
    );
    assert!(err.to_string().contains("no keyframe"), "{err}");
    assert!(asked.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}

#[test]
fn a_missing_camera_is_an_error_naming_it() {
    let err = open_h264(
        &VideoDevice::Path("/dev/video-missing".into()),
        &VideoSettings::new(640, 480, 15),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("camera /dev/video-missing"),
        "{err}"
    );
    // A file that is not a V4L2 device.
    let err = open_h264(
        &VideoDevice::Path("/dev/null".into()),
        &VideoSettings::new(640, 480, 15),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("/dev/null"), "{err}");
}
