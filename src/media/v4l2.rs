//! V4L2 cameras: the thin I/O around `camera.rs`'s choice. Reads what a device offers into a
//! [`CameraCaps`], finds the machine's M2M H.264 encoders, sets the chosen format and rate, and
//! streams (mmap buffers) — raw and MJPEG frames converted to I420 for the software encoder
//! ([`V4l2Frames`]), H.264 passed through as it comes ([`PassThroughH264`]), frames handed to
//! the M2M hardware encoder (`m2m::M2mH264`: `m2m.rs` drives it, `v4l2_m2m.rs` does its
//! ioctls) — as they are when it takes the camera's format, else as I420.
//!
//! A device is open only while something uses it (a call, a snapshot): dropping the source
//! stops streaming and closes it. A hardware encoder that cannot be opened or configured, or
//! that fails mid-call, is logged and replaced by the software encoder: the call keeps its video.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::control::{Control, Value};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format};

use super::camera::{
    self, CameraCaps, EncoderCaps, Encoding, FormatCaps, FourCc, Plan, Rates, SizeRates, Sizes,
};
use super::convert;
use super::m2m::{M2mEncoder, M2mH264, M2mSettings, RawFrames};
use super::source::{H264Source, Pacing, SoftwareH264, PUSH_WAIT};
use super::stills::SharedFrames;
use super::v4l2_m2m::V4l2M2m;
use super::VideoDevice;
use super::{MediaError, VideoFrame, VideoSettings, VideoSource};

/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`: `V4L2_CID_CODEC_BASE` (0x00990900) + 229.
const CID_FORCE_KEY_FRAME: u32 = 0x0099_09e5;
/// A camera that gives no frame for this long is gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// A hardware encoder that keeps every buffer or gives no H.264 for this long is stuck.
const ENCODER_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFERS: u32 = 4;

fn io_error(device: &str, what: &str, e: &io::Error) -> MediaError {
    let gone = matches!(e.raw_os_error(), Some(19 /* ENODEV */ | 5 /* EIO */));
    if gone {
        MediaError::Gone(format!(
            "camera {device}: {what}: {e} (the camera was unplugged or failed)"
        ))
    } else if what == "cannot open" {
        MediaError::Open(format!("camera {device}: {what}: {e}"))
    } else {
        MediaError::Failed(format!("camera {device}: {what}: {e}"))
    }
}

fn open_device(path: &Path) -> Result<Device, MediaError> {
    let name = path.display().to_string();
    // v4l panics on a path it cannot make a C string of.
    if std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).contains(&0) {
        return Err(MediaError::Open(format!(
            "camera {name:?}: a device path cannot hold a NUL byte"
        )));
    }
    let device = Device::with_path(path).map_err(|e| io_error(&name, "cannot open", &e))?;
    let caps = device
        .query_caps()
        .map_err(|e| io_error(&name, "not a V4L2 device", &e))?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return Err(MediaError::Unsupported(format!(
            "camera {name}: {} ({}) is not a single-planar video capture device{}",
            caps.card,
            caps.driver,
            if caps.capabilities.contains(Flags::VIDEO_M2M_MPLANE)
                || caps.capabilities.contains(Flags::VIDEO_M2M)
            {
                " (it is a codec); see `intercom devices`"
            } else {
                ""
            }
        )));
    }
    Ok(device)
}

/// What the device at `path` offers.
pub fn probe(path: &Path) -> Result<CameraCaps, MediaError> {
    let device = open_device(path)?;
    probe_device(&device, path)
}

fn probe_device(device: &Device, path: &Path) -> Result<CameraCaps, MediaError> {
    let name = path.display().to_string();
    let card = device.query_caps().map(|c| c.card).unwrap_or_default();
    let descriptions = device
        .enum_formats()
        .map_err(|e| io_error(&name, "listing formats", &e))?;
    let rates_of = |fourcc, w, h| -> Rates {
        let Ok(intervals) = device.enum_frameintervals(fourcc, w, h) else {
            return Rates::Unknown;
        };
        let mut discrete = Vec::new();
        for i in intervals {
            match i.interval {
                FrameIntervalEnum::Discrete(f) => discrete.push((f.numerator, f.denominator)),
                FrameIntervalEnum::Stepwise(s) => {
                    return Rates::Stepwise {
                        min: (s.min.numerator, s.min.denominator),
                        max: (s.max.numerator, s.max.denominator),
                    }
                }
            }
        }
        if discrete.is_empty() {
            Rates::Unknown
        } else {
            Rates::Discrete(discrete)
        }
    };
    let mut formats = Vec::new();
    for d in descriptions {
        let sizes = device.enum_framesizes(d.fourcc).unwrap_or_default();
        let mut discrete = Vec::new();
        let mut stepwise = None;
        for s in sizes {
            match s.size {
                FrameSizeEnum::Discrete(sz) => discrete.push(SizeRates {
                    width: sz.width,
                    height: sz.height,
                    rates: rates_of(d.fourcc, sz.width, sz.height),
                }),
                FrameSizeEnum::Stepwise(st) => {
                    stepwise = Some(Sizes::Stepwise {
                        min: (st.min_width, st.min_height),
                        max: (st.max_width, st.max_height),
                        step: (st.step_width, st.step_height),
                        rates: rates_of(d.fourcc, st.max_width, st.max_height),
                    })
                }
            }
        }
        formats.push(FormatCaps {
            fourcc: FourCc(d.fourcc.repr),
            description: d.description,
            sizes: stepwise.unwrap_or(Sizes::Discrete(discrete)),
        });
    }
    let keyframe_control = device
        .query_controls()
        .map(|c| c.iter().any(|c| c.id == CID_FORCE_KEY_FRAME))
        .unwrap_or(false);
    Ok(CameraCaps {
        device: name,
        card,
        formats,
        keyframe_control,
    })
}

/// The formats a queue of `device` takes (`VIDIOC_ENUM_FMT` with buffer type `typ`).
fn enum_formats_of(device: &Device, typ: Type) -> Vec<FourCc> {
    let mut out = Vec::new();
    for index in 0..64 {
        // SAFETY: v4l2_fmtdesc is plain data; the ioctl fills it or fails.
        let mut desc: v4l::v4l_sys::v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        desc.index = index;
        desc.type_ = typ as u32;
        let ok = unsafe {
            v4l::v4l2::ioctl(
                device.handle().fd(),
                v4l::v4l2::vidioc::VIDIOC_ENUM_FMT,
                &mut desc as *mut _ as *mut std::os::raw::c_void,
            )
        };
        if ok.is_err() {
            break;
        }
        out.push(FourCc::from_u32(desc.pixelformat));
    }
    out
}

/// The machine's V4L2 memory-to-memory H.264 encoders (the Pi 3/4's `bcm2835-codec-encode`).
pub fn encoders() -> Vec<EncoderCaps> {
    let mut out = Vec::new();
    for (node, _) in super::video_devices() {
        let Ok(device) = Device::with_path(&node) else {
            continue;
        };
        let Ok(caps) = device.query_caps() else {
            continue;
        };
        let (output, capture) = if caps.capabilities.contains(Flags::VIDEO_M2M_MPLANE) {
            (Type::VideoOutputMplane, Type::VideoCaptureMplane)
        } else if caps.capabilities.contains(Flags::VIDEO_M2M) {
            (Type::VideoOutput, Type::VideoCapture)
        } else {
            continue;
        };
        if enum_formats_of(&device, capture).contains(&FourCc::H264) {
            out.push(EncoderCaps {
                device: node,
                card: caps.card,
                inputs: enum_formats_of(&device, output),
            });
        }
    }
    out
}

/// An mmap stream that never panics when dropped: v4l's own `Drop` panics when stopping fails
/// with anything but ENODEV, so it is stopped here first and, if that fails, leaked (with its
/// buffers and file descriptor) rather than dropped.
struct Streaming {
    device_name: String,
    stream: Option<Stream<'static>>,
    // Declared after the stream: closed after it.
    _device: Device,
    format: Format,
    started: Instant,
    last_frame: Instant,
}

impl Streaming {
    /// Sets `plan`'s format and rate on `device` and starts streaming.
    fn start(device: Device, name: String, plan: &Plan) -> Result<Streaming, MediaError> {
        let wanted = Format::new(plan.width, plan.height, v4l::FourCC::new(&plan.fourcc.0));
        let format = device.set_format(&wanted).map_err(|e| {
            io_error(
                &name,
                &format!("setting {} {}x{}", plan.fourcc, plan.width, plan.height),
                &e,
            )
        })?;
        if format.fourcc.repr != plan.fourcc.0
            || (format.width, format.height) != (plan.width, plan.height)
        {
            return Err(MediaError::Unsupported(format!(
                "camera {name}: asked for {} {}x{}, the driver set {} {}x{}",
                plan.fourcc,
                plan.width,
                plan.height,
                FourCc(format.fourcc.repr),
                format.width,
                format.height
            )));
        }
        // Not every driver takes a rate (libcamerify's may not): then it runs at its own.
        if let Err(e) = device.set_params(&Parameters::with_fps(plan.fps)) {
            log::debug!("camera {name}: setting {} fps: {e}", plan.fps);
        }
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|e| io_error(&name, "allocating buffers", &e))?;
        stream.set_timeout(PUSH_WAIT);
        let now = Instant::now();
        Ok(Streaming {
            device_name: name,
            stream: Some(stream),
            _device: device,
            format,
            started: now,
            last_frame: now,
        })
    }

    /// The next buffer, copied out; `None` when none came within [`PUSH_WAIT`].
    fn next(&mut self) -> Result<Option<Vec<u8>>, MediaError> {
        let stream = self.stream.as_mut().expect("present until dropped");
        match CaptureStream::next(stream) {
            Ok((data, meta)) => {
                self.last_frame = Instant::now();
                let used = (meta.bytesused as usize).min(data.len());
                let used = if used == 0 { data.len() } else { used };
                Ok(Some(data[..used].to_vec()))
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if self.last_frame.elapsed() >= FRAME_TIMEOUT {
                    Err(MediaError::Failed(format!(
                        "camera {}: no frame for {} s",
                        self.device_name,
                        FRAME_TIMEOUT.as_secs()
                    )))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(io_error(&self.device_name, "reading a frame", &e)),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            match stream.stop() {
                Ok(()) => drop(stream),
                Err(e) if e.raw_os_error() == Some(19) => drop(stream),
                Err(e) => {
                    log::warn!(
                        "camera {}: stopping the stream: {e}; its buffers are left as they are",
                        self.device_name
                    );
                    std::mem::forget(stream);
                }
            }
        }
    }
}

/// Raw or MJPEG frames from a camera, as I420 [`VideoFrame`]s.
pub struct V4l2Frames {
    capture: Streaming,
    fourcc: FourCc,
}

impl V4l2Frames {
    fn convert(&self, buf: &[u8]) -> Result<VideoFrame, MediaError> {
        let f = &self.capture.format;
        let (w, h, stride) = (f.width, f.height, f.stride);
        let data = match &self.fourcc.0 {
            b"YUYV" => convert::yuyv_to_i420(buf, w, h, stride)?,
            b"NV12" => convert::nv12_to_i420(buf, w, h, stride)?,
            b"YU12" => convert::yu12_to_i420(buf, w, h, stride)?,
            b"MJPG" | b"JPEG" => {
                let (jw, jh, data) = convert::jpeg_to_i420(buf)?;
                if (jw, jh) != (w & !1, h & !1) {
                    return Err(MediaError::Failed(format!(
                        "camera {}: a {jw}x{jh} JPEG in a {w}x{h} stream",
                        self.capture.device_name
                    )));
                }
                data
            }
            _ => {
                return Err(MediaError::Unsupported(format!(
                    "camera {}: {} frames are not converted",
                    self.capture.device_name, self.fourcc
                )))
            }
        };
        Ok(VideoFrame {
            width: w & !1,
            height: h & !1,
            pts: self.capture.started.elapsed(),
            captured: SystemTime::now(),
            data,
        })
    }
}

impl V4l2Frames {
    /// The camera's next buffer, as it is.
    fn next_buffer(&mut self) -> Result<Vec<u8>, MediaError> {
        loop {
            if let Some(buf) = self.capture.next()? {
                return Ok(buf);
            }
        }
    }
}

impl VideoSource for V4l2Frames {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let buf = self.next_buffer()?;
        self.convert(&buf)
    }
}

impl RawFrames for V4l2Frames {
    fn fourcc(&self) -> FourCc {
        self.fourcc
    }

    fn next_raw(&mut self) -> Result<(Vec<u8>, u32), MediaError> {
        Ok((self.next_buffer()?, self.capture.format.stride))
    }

    fn to_i420(&mut self, raw: &[u8]) -> Result<VideoFrame, MediaError> {
        self.convert(raw)
    }
}

/// Opens and configures the M2M encoder `device` for `input` frames of `width`×`height` at
/// `fps`, starting at `bitrate` and never above `max_bitrate`.
fn open_encoder(
    device: &Path,
    input: FourCc,
    (width, height, fps): (u32, u32, u32),
    (bitrate, max_bitrate): (u32, u32),
) -> Result<M2mEncoder<V4l2M2m>, MediaError> {
    let settings = M2mSettings {
        input,
        width,
        height,
        fps,
        bitrate,
        max_bitrate,
        timeout: ENCODER_TIMEOUT,
    };
    M2mEncoder::open(V4l2M2m::open(device)?, settings)
}

/// A camera's raw frames, shared with snapshots while a call holds them.
type HeldFrames = SharedFrames<V4l2Frames>;

/// Opens and configures the encoder at `device` for `frames` in `input`, as a call's source.
/// On failure, the frames come back with the error.
fn open_hardware(
    device: &Path,
    input: FourCc,
    frames: HeldFrames,
    name: String,
    size: (u32, u32, u32),
    rates: (u32, u32),
) -> Result<M2mH264<V4l2M2m, HeldFrames>, (MediaError, Box<HeldFrames>)> {
    match open_encoder(device, input, size, rates) {
        Ok(encoder) => Ok(M2mH264::new(encoder, frames, name)),
        Err(e) => Err((e, Box::new(frames))),
    }
}

/// Opens and configures the M2M encoder `device` for `input` frames of `width`×`height` at
/// `fps`, and closes it again: what `intercom check` reports.
pub fn check_encoder(
    device: &Path,
    input: FourCc,
    (width, height, fps): (u32, u32, u32),
) -> Result<String, MediaError> {
    let bitrate = super::source::capped_bitrate(width, height, fps, u32::MAX);
    let encoder = open_encoder(device, input, (width, height, fps), (bitrate, bitrate))?;
    let f = encoder.format();
    Ok(format!(
        "takes {input} {width}x{height} at {fps} fps (buffers of {} rows, {} bytes a row)",
        f.height,
        f.planes.first().map_or(0, |p| p.bytesperline)
    ))
}

/// A camera's own H.264, access unit by access unit (one a buffer), as it comes.
pub struct PassThroughH264 {
    capture: Streaming,
    keyframe_control: bool,
}

impl H264Source for PassThroughH264 {
    fn pacing(&self) -> Pacing {
        Pacing::Push
    }

    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        if keyframe && self.keyframe_control {
            let force = Control {
                id: CID_FORCE_KEY_FRAME,
                value: Value::None,
            };
            if let Err(e) = self.capture._device.set_control(force) {
                log::debug!("camera {}: keyframe request: {e}", self.capture.device_name);
            }
        }
        self.capture.next()
    }

    fn name(&self) -> &str {
        &self.capture.device_name
    }
}

/// Opens the camera at `path` for a call: probes it, chooses (and logs) the plan, and starts
/// streaming. `bitrate`: for the software encoder.
pub fn open_h264(
    path: &Path,
    video: &VideoSettings,
) -> Result<(Box<dyn H264Source>, Plan), MediaError> {
    let name = path.display().to_string();
    let device = open_device(path)?;
    let caps = probe_device(&device, path)?;
    let encoders = encoders();
    let plan = camera::choose(&caps, &encoders, (video.width, video.height, video.fps))
        .map_err(MediaError::Unsupported)?;
    log::info!("camera: {}", plan.reason);
    let keyframe_control = caps.keyframe_control;
    let capture = Streaming::start(device, name.clone(), &plan)?;
    if plan.encoding == Encoding::PassThrough {
        if !keyframe_control {
            log::info!(
                "camera {name}: no keyframe control; keyframes come at the camera's own interval"
            );
        }
        let source = PassThroughH264 {
            capture,
            keyframe_control,
        };
        return Ok((Box::new(source), plan));
    }
    let fps = plan.fps;
    let (w, h) = (capture.format.width & !1, capture.format.height & !1);
    let bitrate = super::source::capped_bitrate(w, h, fps, video.max_bitrate);
    // Raw frames: shared with snapshots while the call holds the camera.
    let frames = SharedFrames::hold(
        &VideoDevice::Path(path.to_path_buf()),
        V4l2Frames {
            capture,
            fourcc: plan.fourcc,
        },
    );
    let software = |frames: SharedFrames<V4l2Frames>, name: String| -> Box<dyn H264Source> {
        Box::new(SoftwareH264::new(
            Box::new(frames),
            (w, h, fps),
            bitrate,
            name,
        ))
    };
    let source: Box<dyn H264Source> = match &plan.encoding {
        Encoding::Hardware { device, input } => match open_hardware(
            Path::new(device),
            *input,
            frames,
            name.clone(),
            (w, h, plan.fps),
            (bitrate, video.max_bitrate),
        ) {
            Ok(source) => {
                log::info!(
                    "camera {name}: {} frames encoded by the hardware encoder {device}",
                    input
                );
                Box::new(source)
            }
            Err((e, frames)) => {
                log::warn!("camera {name}: {e}; encoding in software instead");
                software(*frames, name)
            }
        },
        Encoding::PassThrough | Encoding::Software => software(frames, name),
    };
    Ok((source, plan))
}

/// Opens the camera at `path` for still frames (a snapshot): a raw or JPEG format nearest the
/// size, even on a camera whose calls use its H.264.
pub fn open_still(path: &Path, video: &VideoSettings) -> Result<V4l2Frames, MediaError> {
    let name = path.display().to_string();
    let device = open_device(path)?;
    let caps = probe_device(&device, path)?;
    let plan = camera::choose_still(&caps, (video.width, video.height))
        .map_err(MediaError::Unsupported)?;
    let capture = Streaming::start(device, name, &plan)?;
    Ok(V4l2Frames {
        capture,
        fourcc: plan.fourcc,
    })
}
