//! Driving a V4L2 memory-to-memory H.264 encoder (the Pi 3/4's `bcm2835-codec-encode`): the
//! stateful encoder protocol, without a single ioctl.
//!
//! [`M2mEncoder`] is generic over [`M2mDevice`], the few operations the protocol needs (set the
//! formats, request buffers on the OUTPUT queue — raw frames in — and the CAPTURE queue — H.264
//! out —, queue and dequeue them, stream on and off, set a control, wait for readiness). The
//! ioctl backend is `v4l2_m2m.rs`; [`synthetic::SyntheticM2m`] behaves like a hardware encoder
//! (it keeps queued buffers, answers a frame late, encodes with openh264) so all of this runs in
//! tests.
//!
//! What the encoder does: at open, the coded format first, then the raw one (the driver's answer
//! is trusted: its `bytesperline` and padded height lay the planes out), the frame rate, the
//! controls (constrained baseline, a level that fits, an I-frame period, SPS and PPS before every
//! IDR so that a viewer joining late can decode, the bitrate), buffers, streaming, every CAPTURE
//! buffer queued. Then a frame at a time: copied into a free OUTPUT buffer ([`copy_frame`]),
//! queued, and the oldest finished access unit returned — the hardware may give a frame's H.264
//! a frame or more later, so the first calls may return nothing. Buffers holding only SPS/PPS
//! are joined to the slice after them. No wait is unbounded: a device that keeps its buffers or
//! gives no H.264 for [`M2mSettings::timeout`] is an error naming it. Dropping the encoder stops
//! both queues (which returns every buffer); the device's own drop unmaps and closes.
//!
//! [`M2mH264`] makes a call's [`H264Source`] of it: a camera's frames ([`RawFrames`]) pulled
//! one a call, and the software encoder taking over if the hardware fails mid-call.

mod frame;
mod source;
pub mod synthetic;

use frame::components;
pub use frame::copy_frame;
pub use source::{M2mH264, RawFrames};

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::camera::FourCc;
use super::h264::nal_types;
use super::source::{H264Source, Pacing, SoftwareH264};
use super::{MediaError, VideoFrame, VideoSource};

/// `V4L2_CID_MPEG_VIDEO_BITRATE` (`V4L2_CID_CODEC_BASE` + 207), bits a second.
pub const CID_BITRATE: u32 = 0x0099_09cf;
/// `V4L2_CID_MPEG_VIDEO_BITRATE_MODE` (+ 206): 0 VBR, 1 CBR.
pub const CID_BITRATE_MODE: u32 = 0x0099_09ce;
/// `V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER` (+ 226): SPS and PPS before every IDR frame.
pub const CID_REPEAT_SEQ_HEADER: u32 = 0x0099_09e2;
/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (+ 229): a button; the next frame is an IDR frame.
pub const CID_FORCE_KEY_FRAME: u32 = 0x0099_09e5;
/// `V4L2_CID_MPEG_VIDEO_H264_I_PERIOD` (+ 358): frames between I frames.
pub const CID_H264_I_PERIOD: u32 = 0x0099_0a66;
/// `V4L2_CID_MPEG_VIDEO_H264_LEVEL` (+ 359): a `V4L2_MPEG_VIDEO_H264_LEVEL_*` index.
pub const CID_H264_LEVEL: u32 = 0x0099_0a67;
/// `V4L2_CID_MPEG_VIDEO_H264_PROFILE` (+ 363).
pub const CID_H264_PROFILE: u32 = 0x0099_0a6b;
/// `V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE`.
pub const PROFILE_CONSTRAINED_BASELINE: i32 = 1;
/// `V4L2_MPEG_VIDEO_BITRATE_MODE_CBR`.
pub const BITRATE_MODE_CBR: i32 = 1;
/// `V4L2_BUF_FLAG_ERROR`: the buffer's data is not to be used.
pub const BUF_FLAG_ERROR: u32 = 0x40;

const ENODEV: i32 = 19;
const EIO: i32 = 5;

/// A queue of an M2M device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Raw frames going in.
    Output,
    /// H.264 coming out.
    Capture,
}

/// One plane of a buffer as the driver laid it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneFormat {
    pub bytesperline: u32,
    pub sizeimage: u32,
}

/// A raw format as the driver set it: `height` may be padded past the frame's (bcm2835 pads it
/// to 16 rows) and `bytesperline` past the width (to 32 bytes). One plane for the contiguous
/// formats (YU12, NV12, YUYV); one a component for the multi-planar ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFormat {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    pub planes: Vec<PlaneFormat>,
}

/// Which queues have a buffer to dequeue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    pub output: bool,
    pub capture: bool,
}

/// A dequeued buffer: its index, and (CAPTURE) where its data is in its first plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    pub index: u32,
    pub offset: u32,
    pub bytesused: u32,
    pub flags: u32,
}

/// What [`M2mEncoder`] needs of a device. Errors are the system's (`ENODEV` when it is gone).
pub trait M2mDevice {
    /// The device node, for messages.
    fn name(&self) -> &str;
    /// Sets the CAPTURE format: H.264 at `width`×`height`, buffers of (at least) `sizeimage`
    /// bytes. Returns the buffer size the driver chose.
    fn set_coded_format(&mut self, width: u32, height: u32, sizeimage: u32) -> io::Result<u32>;
    /// Sets the OUTPUT format; returns what the driver set.
    fn set_raw_format(&mut self, fourcc: FourCc, width: u32, height: u32) -> io::Result<RawFormat>;
    /// The frame rate of the OUTPUT queue (`VIDIOC_S_PARM`).
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()>;
    fn set_control(&mut self, id: u32, value: i32) -> io::Result<()>;
    /// Allocates (and maps) `count` buffers on `queue`, 0 frees them; returns how many there are.
    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32>;
    /// The planes of OUTPUT buffer `index`, to write a frame into (only while userspace has it).
    fn output_planes(&mut self, index: u32) -> io::Result<Vec<&mut [u8]>>;
    /// The memory of CAPTURE buffer `index`'s first plane (only while userspace has it).
    fn capture_data(&self, index: u32) -> io::Result<&[u8]>;
    /// Hands OUTPUT buffer `index` to the driver, with the bytes used of each plane.
    fn queue_output(&mut self, index: u32, bytesused: &[u32]) -> io::Result<()>;
    /// Hands CAPTURE buffer `index` to the driver, to fill.
    fn queue_capture(&mut self, index: u32) -> io::Result<()>;
    /// A finished buffer of `queue`, `None` when there is none yet (never waits).
    fn dequeue(&mut self, queue: Queue) -> io::Result<Option<Dequeued>>;
    fn stream(&mut self, queue: Queue, on: bool) -> io::Result<()>;
    /// Waits up to `timeout` for a buffer to dequeue on either queue.
    fn poll(&mut self, timeout: Duration) -> io::Result<Ready>;
}

/// What the encoder is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct M2mSettings {
    /// The raw format frames come in (the camera's own, or I420).
    pub input: FourCc,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The starting bitrate, bits a second.
    pub bitrate: u32,
    /// The most [`M2mEncoder::set_bitrate`] will be asked for (chooses the level).
    pub max_bitrate: u32,
    /// How long the device may keep every buffer or give no H.264 before it counts as stuck.
    pub timeout: Duration,
}

/// Frames between I frames: two seconds (a lost keyframe request still heals that soon).
pub fn i_period(fps: u32) -> u32 {
    fps.max(1) * 2
}

/// OUTPUT and CAPTURE buffers asked for.
const OUTPUT_BUFFERS: u32 = 4;
const CAPTURE_BUFFERS: u32 = 6;
/// Access units waiting to be returned before the encoder waits for the device to catch up.
const MAX_BACKLOG: usize = 3;

/// The smallest H.264 level (Annex A, table A-1) that holds `width`×`height` at `fps` and
/// `bitrate`: its `V4L2_MPEG_VIDEO_H264_LEVEL_*` index and its name.
pub fn h264_level(width: u32, height: u32, fps: u32, bitrate: u32) -> (i32, &'static str) {
    // (index, name, max frame size in macroblocks, max macroblocks a second, max kbit/s)
    const LEVELS: [(i32, &str, u64, u64, u64); 13] = [
        (0, "1", 99, 1_485, 64),
        (2, "1.1", 396, 3_000, 192),
        (3, "1.2", 396, 6_000, 384),
        (4, "1.3", 396, 11_880, 768),
        (5, "2", 396, 11_880, 2_000),
        (6, "2.1", 792, 19_800, 4_000),
        (7, "2.2", 1_620, 20_250, 4_000),
        (8, "3", 1_620, 40_500, 10_000),
        (9, "3.1", 3_600, 108_000, 14_000),
        (10, "3.2", 5_120, 216_000, 20_000),
        (11, "4", 8_192, 245_760, 20_000),
        (12, "4.1", 8_192, 245_760, 50_000),
        (13, "4.2", 8_704, 522_240, 50_000),
    ];
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let rate = mbs * u64::from(fps.max(1));
    let kbits = u64::from(bitrate).div_ceil(1000);
    LEVELS
        .iter()
        .find(|l| mbs <= l.2 && rate <= l.3 && kbits <= l.4)
        .map_or((13, "4.2"), |l| (l.0, l.1))
}

/// An H.264 encoder on an M2M device. See the module.
pub struct M2mEncoder<D: M2mDevice> {
    device: D,
    settings: M2mSettings,
    format: RawFormat,
    /// OUTPUT buffers userspace has (free to fill), in the order they came back.
    output_free: VecDeque<u32>,
    output_count: u32,
    /// CAPTURE buffers the driver has: all of them, but for the moment one is read.
    capture_queued: Vec<bool>,
    /// Finished access units, oldest first.
    backlog: VecDeque<Vec<u8>>,
    /// SPS/PPS (or SEI) from a buffer without a slice, for the next access unit.
    headers: Vec<u8>,
    /// When the last H.264 came (or streaming started).
    last_h264: Instant,
    /// Frames queued since then.
    frames_since_h264: u32,
    bitrate: u32,
    streaming: bool,
    /// Set once the device has vanished: every later call gives it.
    gone: Option<MediaError>,
}

impl<D: M2mDevice> M2mEncoder<D> {
    /// Configures `device` for `settings` and starts it. The error names the device and what
    /// it refused.
    pub fn open(device: D, settings: M2mSettings) -> Result<M2mEncoder<D>, MediaError> {
        let mut encoder = M2mEncoder {
            device,
            settings,
            format: RawFormat {
                fourcc: settings.input,
                width: 0,
                height: 0,
                planes: Vec::new(),
            },
            output_free: VecDeque::new(),
            output_count: 0,
            capture_queued: Vec::new(),
            backlog: VecDeque::new(),
            headers: Vec::new(),
            last_h264: Instant::now(),
            frames_since_h264: 0,
            bitrate: settings.bitrate,
            streaming: false,
            gone: None,
        };
        encoder.configure()?;
        Ok(encoder)
    }

    fn configure(&mut self) -> Result<(), MediaError> {
        let s = self.settings;
        if s.width == 0 || s.height == 0 || s.width % 2 == 1 || s.height % 2 == 1 {
            return Err(self.error(format!(
                "{}x{} is not an even, non-empty size",
                s.width, s.height
            )));
        }
        // The coded format first: the raw formats the driver offers can depend on it.
        let coded = (s.width * s.height * 3 / 4).max(256 * 1024);
        self.device
            .set_coded_format(s.width, s.height, coded)
            .map_err(|e| self.io_error("setting the H.264 format", &e))?;
        let format = self
            .device
            .set_raw_format(s.input, s.width, s.height)
            .map_err(|e| {
                self.io_error(&format!("setting {} {}x{}", s.input, s.width, s.height), &e)
            })?;
        if format.fourcc != s.input || format.width < s.width || format.height < s.height {
            return Err(self.error(format!(
                "asked for {} {}x{}, the driver set {} {}x{}",
                s.input, s.width, s.height, format.fourcc, format.width, format.height
            )));
        }
        components(s.input, (s.width, s.height, format.height), &format.planes)
            .map_err(|e| self.error(format!("the driver's layout: {e}")))?;
        log::debug!(
            "H.264 encoder {}: {} {}x{} in buffers of {}x{} rows, planes {:?}",
            self.device.name(),
            s.input,
            s.width,
            s.height,
            format.width,
            format.height,
            format.planes
        );
        self.format = format;
        if let Err(e) = self.device.set_frame_rate(s.fps) {
            log::debug!(
                "H.264 encoder {}: setting {} fps: {e}",
                self.device.name(),
                s.fps
            );
        }
        // Browsers take constrained baseline (profile-level-id 42e0xx): required.
        self.device
            .set_control(CID_H264_PROFILE, PROFILE_CONSTRAINED_BASELINE)
            .map_err(|e| self.io_error("setting the constrained baseline profile", &e))?;
        let (level, level_name) =
            h264_level(s.width, s.height, s.fps, s.max_bitrate.max(s.bitrate));
        let optional = [
            (CID_H264_LEVEL, level, format!("level {level_name}")),
            (
                CID_H264_I_PERIOD,
                i_period(s.fps) as i32,
                format!("an I frame every {} frames", i_period(s.fps)),
            ),
            (
                CID_REPEAT_SEQ_HEADER,
                1,
                "SPS and PPS before every IDR frame".to_owned(),
            ),
            (
                CID_BITRATE_MODE,
                BITRATE_MODE_CBR,
                "constant bitrate".to_owned(),
            ),
        ];
        for (id, value, what) in optional {
            if let Err(e) = self.device.set_control(id, value) {
                if is_gone(&e) {
                    return Err(self.io_error(&format!("setting {what}"), &e));
                }
                log::warn!("H.264 encoder {}: setting {what}: {e}", self.device.name());
            }
        }
        self.device
            .set_control(CID_BITRATE, clamp_i32(s.bitrate))
            .map_err(|e| {
                self.io_error(&format!("setting the bitrate to {} bit/s", s.bitrate), &e)
            })?;
        self.output_count = self
            .device
            .request_buffers(Queue::Output, OUTPUT_BUFFERS)
            .map_err(|e| self.io_error("allocating frame buffers", &e))?;
        let captures = self
            .device
            .request_buffers(Queue::Capture, CAPTURE_BUFFERS)
            .map_err(|e| self.io_error("allocating H.264 buffers", &e))?;
        if self.output_count == 0 || captures == 0 {
            return Err(self.error(format!(
                "the driver gave {} frame and {captures} H.264 buffers",
                self.output_count
            )));
        }
        self.output_free = (0..self.output_count).collect();
        self.capture_queued = vec![false; captures as usize];
        for index in 0..captures {
            self.device
                .queue_capture(index)
                .map_err(|e| self.io_error("queueing an H.264 buffer", &e))?;
            self.capture_queued[index as usize] = true;
        }
        self.streaming = true;
        for queue in [Queue::Capture, Queue::Output] {
            self.device
                .stream(queue, true)
                .map_err(|e| self.io_error("starting", &e))?;
        }
        self.last_h264 = Instant::now();
        log::info!(
            "H.264 encoder {}: {} {}x{} at {} fps, {} bit/s, constrained baseline level {level_name}",
            self.device.name(),
            s.input,
            s.width,
            s.height,
            s.fps,
            s.bitrate
        );
        Ok(())
    }

    /// The device node.
    pub fn name(&self) -> &str {
        self.device.name()
    }

    /// The OUTPUT format the driver set (its strides and padded height).
    pub fn format(&self) -> &RawFormat {
        &self.format
    }

    /// The bitrate last set, bits a second.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Buffers the driver holds: (OUTPUT, CAPTURE).
    pub fn held(&self) -> (usize, usize) {
        (
            self.output_count as usize - self.output_free.len(),
            self.capture_queued.iter().filter(|q| **q).count(),
        )
    }

    /// The device, for its owner's inspection.
    pub fn device(&self) -> &D {
        &self.device
    }

    fn error(&self, message: String) -> MediaError {
        MediaError::Codec(format!("H.264 encoder {}: {message}", self.device.name()))
    }

    fn io_error(&self, what: &str, e: &io::Error) -> MediaError {
        if is_gone(e) {
            MediaError::Gone(format!(
                "H.264 encoder {}: {what}: {e} (the encoder vanished)",
                self.device.name()
            ))
        } else {
            self.error(format!("{what}: {e}"))
        }
    }

    /// Remembers a vanished device's error, so that every later call gives it at once.
    fn check(&mut self, what: &str, result: io::Error) -> MediaError {
        let e = self.io_error(what, &result);
        if let MediaError::Gone(_) = e {
            self.gone = Some(e.clone());
        }
        e
    }

    /// Encodes one frame (`fourcc` as the settings' input, rows of `stride` bytes; see
    /// [`copy_frame`]); an IDR frame with SPS and PPS when `keyframe`. Returns the oldest
    /// finished access unit: empty while the hardware has not finished one yet.
    pub fn encode(
        &mut self,
        frame: &[u8],
        stride: u32,
        keyframe: bool,
    ) -> Result<Vec<u8>, MediaError> {
        if let Some(e) = &self.gone {
            return Err(e.clone());
        }
        self.collect()?;
        let index = self.free_output()?;
        let s = self.settings;
        let format = self.format.clone();
        let planes = match self.device.output_planes(index) {
            Ok(p) => p,
            Err(e) => return Err(self.check("mapping a frame buffer", e)),
        };
        let mut planes = planes;
        let used = copy_frame(
            (s.input, s.width, s.height),
            frame,
            stride,
            &mut planes,
            &format,
        );
        let used = match used {
            Ok(u) => u,
            Err(e) => {
                self.output_free.push_front(index);
                return Err(self.error(e));
            }
        };
        if keyframe {
            if let Err(e) = self.device.set_control(CID_FORCE_KEY_FRAME, 0) {
                if is_gone(&e) {
                    self.output_free.push_front(index);
                    return Err(self.check("asking for a keyframe", e));
                }
                log::debug!("H.264 encoder {}: keyframe request: {e}", self.name());
            }
        }
        if let Err(e) = self.device.queue_output(index, &used) {
            self.output_free.push_front(index);
            return Err(self.check("queueing a frame", e));
        }
        self.frames_since_h264 += 1;
        // Wait a little for this frame's H.264 when nothing older is waiting (the hardware is
        // fast: its latency is better spent here than a frame later) and long, up to the
        // timeout, when the hardware is far behind.
        let interval = Duration::from_millis(500 / u64::from(s.fps.max(1)));
        if self.backlog.is_empty() {
            self.wait_h264(interval.min(s.timeout))?;
        }
        if self.backlog.is_empty()
            && self.frames_since_h264 > MAX_BACKLOG as u32
            && !self.wait_h264(s.timeout)?
        {
            return Err(self.error(format!(
                "no H.264 for {} frames in {} ms (the encoder is stuck)",
                self.frames_since_h264,
                self.last_h264.elapsed().as_millis()
            )));
        }
        Ok(self.backlog.pop_front().unwrap_or_default())
    }

    /// Aims the encoder at `bitrate` bits a second from the next frame on.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), MediaError> {
        if let Some(e) = &self.gone {
            return Err(e.clone());
        }
        if let Err(e) = self.device.set_control(CID_BITRATE, clamp_i32(bitrate)) {
            return Err(self.check(&format!("setting the bitrate to {bitrate} bit/s"), e));
        }
        self.bitrate = bitrate;
        Ok(())
    }

    /// A free OUTPUT buffer, waiting up to the timeout for the driver to give one back.
    fn free_output(&mut self) -> Result<u32, MediaError> {
        let deadline = Instant::now() + self.settings.timeout;
        loop {
            if let Some(index) = self.output_free.pop_front() {
                return Ok(index);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!(
                    "no frame buffer came back in {} ms (the encoder is stuck)",
                    self.settings.timeout.as_millis()
                )));
            }
            if let Err(e) = self.device.poll(left) {
                return Err(self.check("waiting for a frame buffer", e));
            }
            self.collect()?;
        }
    }

    /// Waits up to `timeout` for an access unit; whether one is in the backlog.
    fn wait_h264(&mut self, timeout: Duration) -> Result<bool, MediaError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect()?;
            if !self.backlog.is_empty() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            if let Err(e) = self.device.poll(left) {
                return Err(self.check("waiting for H.264", e));
            }
        }
    }

    /// Dequeues every finished buffer: OUTPUT ones become free, CAPTURE ones are read into the
    /// backlog and queued again.
    fn collect(&mut self) -> Result<(), MediaError> {
        loop {
            match self.device.dequeue(Queue::Output) {
                Ok(Some(d)) => {
                    if d.index < self.output_count && !self.output_free.contains(&d.index) {
                        self.output_free.push_back(d.index);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.check("taking back a frame buffer", e)),
            }
        }
        loop {
            let d = match self.device.dequeue(Queue::Capture) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => return Err(self.check("taking H.264 out", e)),
            };
            let Some(queued) = self.capture_queued.get_mut(d.index as usize) else {
                continue;
            };
            *queued = false;
            if d.flags & BUF_FLAG_ERROR != 0 {
                log::debug!("H.264 encoder {}: a buffer with an error", self.name());
            } else if d.bytesused > d.offset {
                let data = match self.device.capture_data(d.index) {
                    Ok(data) => data,
                    Err(e) => return Err(self.check("reading H.264", e)),
                };
                let end = (d.bytesused as usize).min(data.len());
                let start = (d.offset as usize).min(end);
                let chunk = &data[start..end];
                let has_slice = nal_types(chunk).iter().any(|t| matches!(t, 1 | 5));
                self.headers.extend_from_slice(chunk);
                if has_slice {
                    self.backlog.push_back(std::mem::take(&mut self.headers));
                    self.last_h264 = Instant::now();
                    self.frames_since_h264 = 0;
                }
            }
            if let Err(e) = self.device.queue_capture(d.index) {
                return Err(self.check("queueing an H.264 buffer", e));
            }
            self.capture_queued[d.index as usize] = true;
        }
        Ok(())
    }
}

impl<D: M2mDevice> Drop for M2mEncoder<D> {
    fn drop(&mut self) {
        if !self.streaming {
            return;
        }
        // Stopping a queue gives every buffer back to userspace.
        for queue in [Queue::Output, Queue::Capture] {
            if let Err(e) = self.device.stream(queue, false) {
                if !is_gone(&e) {
                    log::warn!(
                        "H.264 encoder {}: stopping the {queue:?} queue: {e}",
                        self.device.name()
                    );
                }
            }
        }
        self.output_free = (0..self.output_count).collect();
        self.capture_queued.fill(false);
        self.streaming = false;
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(ENODEV | EIO))
}

fn clamp_i32(v: u32) -> i32 {
    v.min(i32::MAX as u32) as i32
}

#[cfg(test)]
mod tests;
