//! The media adapter: where frames and samples come from and where the peer's audio goes.
//!
//! Devices sit behind three small traits — [`VideoSource`], [`AudioSource`], [`AudioSink`] — with
//! synthetic implementations that are always built ([`synthetic`]), so every test and the demo run
//! without a camera or a sound card. [`open_video`], [`open_audio_source`] and
//! [`open_audio_sink`] turn the configuration into one of them. The codecs the calls need sit
//! beside them: [`h264::H264Encoder`] (openh264, Annex-B, constrained baseline) and
//! [`opus_codec`] (Opus, 20 ms mono frames, in-band FEC).
//!
//! Sources never pace themselves: the caller's clock asks for each frame (a tokio interval at
//! the frame rate, every 20 ms for audio). A call's video is an [`source::H264Source`]
//! ([`open_h264`]): the test pattern or a camera's raw frames encoded in software, a camera's
//! own H.264 passed through, or a program's H.264 output (`rpicam-vid`); [`camera`] chooses
//! among a V4L2 camera's formats, [`v4l2`] streams them, [`convert`] turns them into I420.
//! Audio on real devices: [`alsa`] (capture and playback PCMs, converted to 48 kHz mono),
//! [`speaker`] (the one owner of the playback PCM: tones and calls), [`aec`] (echo
//! cancellation, noise suppression, gain control on the capture path), [`tones`], [`resample`].

pub mod aec;
pub mod alsa;
pub mod camera;
pub mod convert;
pub mod h264;
pub mod m2m;
pub mod opus_codec;
pub mod resample;
pub mod source;
pub mod speaker;
pub mod speechlike;
pub mod stills;
pub mod synthetic;
pub mod tones;
pub mod v4l2;
pub mod v4l2_m2m;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use synthetic::{RecordingSink, TestBursts, TestPattern, TestTone};

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
    /// Wall-clock capture time (what the synthetic pattern prints on the frame).
    pub captured: SystemTime,
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

/// A failure of a device or codec, by kind; each holds the whole message, which names the
/// device (or codec) and what went wrong, and is what `Display` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The device vanished while in use: unplugged, its driver gone (ALSA's `ENODEV`, `ENXIO`,
    /// `EBADFD`, `ESHUTDOWN`, `EIO`; V4L2's `ENODEV`, `EIO`; a hardware encoder's), or a camera
    /// command that ended. The next call opens it again.
    Gone(String),
    /// The device could not be opened: not there, busy or held by another program, hanging, a
    /// command that does not start.
    Open(String),
    /// An encoder or decoder failed (openh264, libopus, a hardware H.264 encoder, MJPEG).
    Codec(String),
    /// Asked for what the device or the door cannot do: a format, a size, a rate, an endpoint
    /// of the wrong kind.
    Unsupported(String),
    /// Anything else that went wrong while using a device.
    Failed(String),
}

impl MediaError {
    /// The message, as `Display` prints it.
    pub fn message(&self) -> &str {
        match self {
            MediaError::Gone(m)
            | MediaError::Open(m)
            | MediaError::Codec(m)
            | MediaError::Unsupported(m)
            | MediaError::Failed(m) => m,
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for MediaError {}

/// A camera.
pub trait VideoSource: Send {
    /// The next frame. Pacing is the caller's: sources do not sleep.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError>;
}

impl<T: VideoSource + ?Sized> VideoSource for Box<T> {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        (**self).next_frame()
    }
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

/// The size and rate of the video the door sends (`[camera]` width, height, fps, max_bitrate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The most the software encoder may send, in bits a second.
    pub max_bitrate: u32,
}

/// `[camera] max_bitrate`'s default: the software encoder's own ceiling.
pub const DEFAULT_MAX_BITRATE: u32 = 2_000_000;

impl VideoSettings {
    /// A size and rate, with the default bitrate cap.
    pub fn new(width: u32, height: u32, fps: u32) -> VideoSettings {
        VideoSettings {
            width,
            height,
            fps,
            max_bitrate: DEFAULT_MAX_BITRATE,
        }
    }
}

/// A camera: the built-in test pattern, a V4L2 device, or a program writing H.264 to its
/// standard output (the program and its arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoDevice {
    TestPattern,
    Path(PathBuf),
    Exec(Vec<String>),
}

/// A microphone or speaker: an ALSA PCM, a synthetic source (capture only) or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEndpoint {
    Pcm(String),
    /// A 440 Hz tone.
    TestTone,
    /// 100 ms tone bursts at the wall clock's whole seconds (the benchmark's audio latency
    /// source).
    TestBursts,
    Null,
}

/// Which devices a call uses: the camera, the microphone and the speaker (built from the
/// configuration by `crate::settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    pub camera: VideoDevice,
    pub capture: AudioEndpoint,
    pub playback: AudioEndpoint,
    /// What runs on the microphone's signal (ALSA capture only).
    pub processing: aec::Processing,
}

impl MediaSettings {
    /// The synthetic devices: test pattern, test tone, nothing played.
    pub fn synthetic() -> MediaSettings {
        MediaSettings {
            camera: VideoDevice::TestPattern,
            capture: AudioEndpoint::TestTone,
            playback: AudioEndpoint::Null,
            processing: aec::Processing::off(),
        }
    }
}

/// Opens the camera `device` for raw frames at (or near) `video`'s size: the test pattern, or
/// a V4L2 camera's raw or JPEG format (also on a camera whose calls use its H.264).
pub fn open_video(
    device: &VideoDevice,
    video: &VideoSettings,
) -> Result<Box<dyn VideoSource>, MediaError> {
    match device {
        VideoDevice::TestPattern => Ok(Box::new(TestPattern::new(
            video.width,
            video.height,
            video.fps,
        ))),
        VideoDevice::Path(p) => Ok(Box::new(v4l2::open_still(p, video)?)),
        VideoDevice::Exec(command) => Err(MediaError::Unsupported(format!(
            "camera command {:?}: gives H.264 only, no raw frames",
            command.first().map_or("", String::as_str)
        ))),
    }
}

/// Opens the camera `device` for a call's H.264: the test pattern encoded in software (as
/// before there were cameras), a V4L2 camera by the plan `camera::choose` makes (logged), or
/// a program's output. The device stays open until the source is dropped, and is held for
/// snapshots meanwhile ([`stills`]).
pub fn open_h264(
    device: &VideoDevice,
    video: &VideoSettings,
) -> Result<Box<dyn source::H264Source>, MediaError> {
    let source: Box<dyn source::H264Source> = match device {
        VideoDevice::TestPattern => {
            let bitrate =
                source::capped_bitrate(video.width, video.height, video.fps, video.max_bitrate);
            let frames = stills::SharedFrames::hold(device, open_video(device, video)?);
            return Ok(Box::new(source::SoftwareH264::new(
                Box::new(frames),
                (video.width, video.height, video.fps),
                bitrate,
                "test pattern".to_owned(),
            )));
        }
        VideoDevice::Path(p) => v4l2::open_h264(p, video)?.0,
        VideoDevice::Exec(command) => {
            log::info!(
                "camera: H.264 from {:?}, passed through without encoding",
                command.join(" ")
            );
            Box::new(source::ExecH264::spawn(command)?)
        }
    };
    Ok(match source.pacing() {
        source::Pacing::Push => Box::new(stills::TappedStream::hold(device, source)),
        source::Pacing::Pull => source,
    })
}

/// A picture of the door.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Taken from a call's stream (the call held the camera), not by opening it.
    pub from_call: bool,
}

/// The camera `device` as errors name it.
fn camera_name(device: &VideoDevice) -> String {
    match device {
        VideoDevice::TestPattern => "test-pattern".to_owned(),
        VideoDevice::Path(p) => p.display().to_string(),
        VideoDevice::Exec(command) => format!("{:?}", command.first().map_or("", String::as_str)),
    }
}

/// Takes one picture with the camera `device` (or the test pattern) at (or near) `video`'s
/// size and returns it as a JPEG. When a call holds the camera, the picture comes from the
/// call's stream ([`stills`]); otherwise the camera is open only for this, and an H.264-only
/// camera or a camera command has no still format: that is an error saying so.
pub fn snapshot(device: &VideoDevice, video: &VideoSettings) -> Result<Snapshot, MediaError> {
    let (frame, from_call) = match stills::take(device, &camera_name(device), stills::KEYFRAME_WAIT)
    {
        Some(frame) => (frame?, true),
        None => {
            let mut source = open_video(device, video)?;
            let frame = source.next_frame()?;
            drop(source);
            (frame, false)
        }
    };
    Ok(Snapshot {
        jpeg: convert::i420_to_jpeg(&frame.data, frame.width, frame.height, 85)?,
        width: frame.width,
        height: frame.height,
        from_call,
    })
}

// The devices and their reports are the station's vocabulary (what a missing one costs is
// its decision); the adapters here make them.
pub use crate::station::{DeviceReport, Part};

/// How a PCM endpoint is named in reports.
fn endpoint_name(endpoint: &AudioEndpoint) -> String {
    match endpoint {
        AudioEndpoint::Pcm(name) => format!("{name:?}"),
        AudioEndpoint::TestTone => "test-tone".to_owned(),
        AudioEndpoint::TestBursts => "test-bursts".to_owned(),
        AudioEndpoint::Null => "null".to_owned(),
    }
}

impl MediaSettings {
    /// The name of `part` as configured, for reports and logs.
    pub fn name_of(&self, part: Part) -> String {
        match part {
            Part::Camera => camera_name(&self.camera),
            Part::Microphone => endpoint_name(&self.capture),
            Part::Speaker => endpoint_name(&self.playback),
        }
    }
}

/// Looks at the configured devices without holding them, as the daemon does when it starts: a
/// camera path or command that is not there, a PCM that does not open (each open bounded, see
/// [`alsa`]). Blocks for as long as the opens take: not on the runtime.
pub fn look_at_devices(media: &MediaSettings, video: bool) -> Vec<DeviceReport> {
    let mut found = Vec::new();
    if video {
        let name = media.name_of(Part::Camera);
        let present = match &media.camera {
            VideoDevice::TestPattern => true,
            VideoDevice::Path(p) => p.exists(),
            VideoDevice::Exec(command) => command
                .first()
                .is_some_and(|program| source::program_exists(program)),
        };
        found.push(if present {
            DeviceReport::ok(Part::Camera, name)
        } else {
            log::warn!("camera {name} is missing: calls are audio only until it is there");
            DeviceReport {
                part: Part::Camera,
                name,
                problem: Some("missing".to_owned()),
            }
        });
    }
    for (part, endpoint, direction) in [
        (Part::Microphone, &media.capture, ::alsa::Direction::Capture),
        (Part::Speaker, &media.playback, ::alsa::Direction::Playback),
    ] {
        let AudioEndpoint::Pcm(pcm) = endpoint else {
            continue;
        };
        let name = media.name_of(part);
        found.push(match alsa::probe(pcm, direction) {
            Ok(_) => DeviceReport::ok(part, name),
            Err(e) => {
                log::warn!("{e}: calls go on without it ({})", part.without());
                DeviceReport::failed(part, name)
            }
        });
    }
    found
}

/// Opens the microphone: a tone, silence (`null`), or an ALSA PCM without processing.
pub fn open_audio_source(endpoint: &AudioEndpoint) -> Result<Box<dyn AudioSource>, MediaError> {
    match endpoint {
        AudioEndpoint::TestTone => Ok(Box::new(TestTone::new(440.0))),
        AudioEndpoint::TestBursts => Ok(Box::new(TestBursts::new())),
        AudioEndpoint::Null => Ok(Box::new(Silence)),
        AudioEndpoint::Pcm(name) => Ok(Box::new(alsa::AlsaCapture::open(name, None)?)),
    }
}

/// Opens the microphone a call uses: an ALSA capture PCM gets the configured processing, with
/// the configured speaker's output as the echo canceller's reference.
pub fn open_call_source(media: &MediaSettings) -> Result<Box<dyn AudioSource>, MediaError> {
    let AudioEndpoint::Pcm(name) = &media.capture else {
        return open_audio_source(&media.capture);
    };
    let processing = media.processing.any().then(|| {
        let reference = match &media.playback {
            AudioEndpoint::Pcm(speaker) => speaker::Speaker::shared(speaker).reference(),
            // Nothing is played: nothing to cancel, but noise and gain still apply.
            _ => aec::Reference::new(),
        };
        aec::EchoCanceller::new(media.processing, reference)
    });
    Ok(Box::new(alsa::AlsaCapture::open(name, processing)?))
}

/// Opens the speaker: nothing (`null`), or the owner of an ALSA PCM ([`speaker::Speaker`]),
/// shared with the tones. Opening the sink never fails on the device: the speaker's thread opens
/// it, and a call goes on without it when it cannot.
pub fn open_audio_sink(endpoint: &AudioEndpoint) -> Result<Box<dyn AudioSink>, MediaError> {
    match endpoint {
        AudioEndpoint::Null => Ok(Box::new(Discard)),
        AudioEndpoint::TestTone | AudioEndpoint::TestBursts => Err(MediaError::Unsupported(
            "audio playback: \"test-tone\" and \"test-bursts\" are capture sources".to_owned(),
        )),
        AudioEndpoint::Pcm(name) => Ok(Box::new(speaker::Speaker::shared(name).sink())),
    }
}

/// A microphone that hears nothing.
#[derive(Debug, Default)]
pub struct Silence;

impl AudioSource for Silence {
    fn read(&mut self, buf: &mut [i16]) -> Result<(), MediaError> {
        buf.fill(0);
        Ok(())
    }
}

/// A speaker that plays nothing.
#[derive(Debug, Default)]
pub struct Discard;

impl AudioSink for Discard {
    fn write(&mut self, _samples: &[i16]) -> Result<(), MediaError> {
        Ok(())
    }
}

/// A [`RecordingSink`] that can be read while something else writes to it: clone the handle,
/// give one clone away as the sink, read the level from the other.
#[derive(Debug, Clone, Default)]
pub struct SharedRecording(Arc<Mutex<RecordingSink>>);

impl SharedRecording {
    pub fn new() -> SharedRecording {
        SharedRecording::default()
    }

    /// Samples written so far and their RMS level (0.0 to 1.0).
    pub fn level(&self) -> AudioLevel {
        let sink = self.0.lock().unwrap_or_else(|e| e.into_inner());
        AudioLevel {
            samples: sink.samples,
            rms: sink.rms(),
        }
    }
}

impl AudioSink for SharedRecording {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(samples)
    }
}

/// What a recording sink heard: how many samples, and how loud (RMS, 0.0 to 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AudioLevel {
    pub samples: u64,
    pub rms: f64,
}

/// Writes everything to two sinks: the device and a recording of it.
pub struct Tee<A, B>(pub A, pub B);

impl<A: AudioSink, B: AudioSink> AudioSink for Tee<A, B> {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        let a = self.0.write(samples);
        let b = self.1.write(samples);
        a.and(b)
    }
}

impl<T: AudioSink + ?Sized> AudioSink for Box<T> {
    fn write(&mut self, samples: &[i16]) -> Result<(), MediaError> {
        (**self).write(samples)
    }
}

/// ALSA PCMs this machine declares, (capture, playback), each as names and descriptions, for
/// `intercom devices`.
pub fn alsa_pcms() -> (alsa::PcmList, alsa::PcmList) {
    alsa::pcms_by_direction()
}

/// A camera's formats, sizes and rates as `intercom devices` prints them (an error line when it
/// cannot be read).
pub fn describe_camera(node: &str) -> Vec<String> {
    match v4l2::probe(std::path::Path::new(node)) {
        Ok(caps) => camera::describe(&caps),
        Err(e) => vec![e.to_string()],
    }
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
