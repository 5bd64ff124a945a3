//! The media adapter: where frames and samples come from and where the peer's audio goes.
//!
//! Devices sit behind three small traits — [`VideoSource`], [`AudioSource`], [`AudioSink`] — with
//! synthetic implementations that are always built ([`synthetic`]), so every test and the demo run
//! without a camera or a sound card. The ALSA and V4L2 backends, the encoders, Opus and echo
//! cancellation arrive with the media and hardware work, behind the same traits.

pub mod synthetic;

use std::fmt;
use std::time::Duration;

/// The sample rate of every audio path: Opus's native rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE as usize) / 50;

/// One raw video frame, I420 (YUV 4:2:0 planar): `width * height` luma bytes, then the two
/// quarter-size chroma planes.
#[derive(Clone)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    /// Capture time relative to the source's start.
    pub pts: Duration,
    pub data: Vec<u8>,
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VideoFrame({}x{} @ {:?})",
            self.width, self.height, self.pts
        )
    }
}

/// A failure of a device, with what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError(pub String);

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MediaError {}

/// A camera.
pub trait VideoSource: Send {
    /// The next frame. Pacing is the caller's: sources do not sleep.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError>;
}

/// A microphone: 48 kHz mono S16.
pub trait AudioSource: Send {
    /// Fills `buf` completely with the next samples.
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError>;
}

/// A speaker: 48 kHz mono S16.
pub trait AudioSink: Send {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError>;
}

/// ALSA PCMs this machine declares (names and descriptions), for `intercom devices`.
pub fn alsa_pcms() -> Vec<(String, String)> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    hints
        .filter_map(|h| {
            let name = h.name?;
            let desc = h.desc.unwrap_or_default().replace('\n', " — ");
            Some((name, desc))
        })
        .collect()
}

/// V4L2 video devices (`/dev/videoN`) and their names, for `intercom devices`.
pub fn video_devices() -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir("/sys/class/video4linux") else {
        return Vec::new();
    };
    let mut devices: Vec<_> = dir
        .flatten()
        .map(|e| {
            let node = e.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
            (format!("/dev/{node}"), name.trim().to_owned())
        })
        .collect();
    devices.sort();
    devices
}
