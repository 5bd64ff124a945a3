//! A synthetic M2M H.264 encoder: an [`M2mDevice`] that behaves like the stateful hardware
//! (`bcm2835-codec-encode`) as far as a driver of it can tell. It pads the OUTPUT stride to 32
//! bytes and the height to 16 rows, keeps queued buffers until it is done with them (writing to
//! one it holds is an error), encodes a frame only when the next one comes (a frame of latency),
//! really encodes (openh264, reading the frame out of the padded buffer by its own layout, so a
//! wrong copy shows in the picture), optionally puts SPS and PPS in a buffer of their own (as
//! the Pi's firmware does), honours the keyframe and bitrate controls, and can be told to vanish
//! (`ENODEV` from then on). A [`SyntheticHandle`] lets a test watch and steer it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{
    Dequeued, M2mDevice, PlaneFormat, Queue, RawFormat, Ready, CID_BITRATE, CID_BITRATE_MODE,
    CID_FORCE_KEY_FRAME, CID_H264_I_PERIOD, CID_H264_LEVEL, CID_H264_PROFILE,
    CID_REPEAT_SEQ_HEADER,
};
use crate::media::camera::FourCc;
use crate::media::convert;
use crate::media::h264::{nal_types, H264Encoder};
use crate::media::VideoFrame;

const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const EBUSY: i32 = 16;

/// How the synthetic encoder behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticOptions {
    /// Frames it holds before encoding the oldest (the hardware's latency).
    pub latency: usize,
    /// SPS and PPS in a CAPTURE buffer of their own, before the IDR slice's.
    pub split_headers: bool,
    /// Never encodes nor gives a buffer back (a wedged firmware).
    pub stall: bool,
    /// A control it refuses (`EINVAL`), as a driver without it would.
    pub refuse_control: Option<u32>,
}

impl Default for SyntheticOptions {
    fn default() -> SyntheticOptions {
        SyntheticOptions {
            latency: 1,
            split_headers: true,
            stall: false,
            refuse_control: None,
        }
    }
}

#[derive(Default)]
struct State {
    options: SyntheticOptions,
    vanished: bool,
    closed: bool,
    held_at_close: Option<(usize, usize)>,
    /// The frame size asked for (the visible size: the buffers' may be padded).
    size: (u32, u32),
    raw: Option<RawFormat>,
    coded_size: u32,
    fps: u32,
    controls: Vec<(u32, i32)>,
    bitrate: Option<u32>,
    force_key: bool,
    keyframes_forced: u32,
    frames_encoded: u32,
    encoder: Option<H264Encoder>,
    output: Vec<Vec<u8>>,
    output_held: Vec<bool>,
    capture: Vec<Vec<u8>>,
    capture_held: Vec<bool>,
    /// Queued frames not yet encoded, with whether each is to be a keyframe.
    waiting: VecDeque<(u32, bool)>,
    output_done: VecDeque<u32>,
    capture_queued: VecDeque<u32>,
    capture_done: VecDeque<(u32, u32)>,
    /// Encoded chunks waiting for a CAPTURE buffer.
    chunks: VecDeque<Vec<u8>>,
    streaming: [bool; 2],
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The synthetic encoder. See the module.
pub struct SyntheticM2m {
    name: String,
    shared: Arc<Shared>,
    /// Copies of the buffers handed out by `output_planes`/`capture_data` (the state is behind a
    /// lock; the trait hands out plain slices): written back when the buffer is queued.
    output_view: Vec<Vec<u8>>,
    /// The CAPTURE buffer last dequeued, and its index.
    capture_view: Option<(u32, Vec<u8>)>,
}

/// Watches and steers a [`SyntheticM2m`] from a test.
#[derive(Clone)]
pub struct SyntheticHandle(Arc<Shared>);

impl SyntheticM2m {
    /// A device called `name` ("/dev/video11") and a handle on it.
    pub fn new(name: &str, options: SyntheticOptions) -> (SyntheticM2m, SyntheticHandle) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                options,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        (
            SyntheticM2m {
                name: name.to_owned(),
                shared: shared.clone(),
                output_view: Vec::new(),
                capture_view: None,
            },
            SyntheticHandle(shared),
        )
    }
}

/// The state of a device that is still there.
fn live(shared: &Shared) -> io::Result<MutexGuard<'_, State>> {
    let state = shared.lock();
    if state.vanished {
        return Err(io::Error::from_raw_os_error(ENODEV));
    }
    Ok(state)
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(EINVAL)
}

fn align(v: u32, to: u32) -> u32 {
    v.div_ceil(to) * to
}

fn queue_slot(queue: Queue) -> usize {
    match queue {
        Queue::Output => 0,
        Queue::Capture => 1,
    }
}

impl State {
    fn held(&self) -> (usize, usize) {
        (
            self.output_held.iter().filter(|h| **h).count(),
            self.capture_held.iter().filter(|h| **h).count(),
        )
    }

    /// The I420 picture of OUTPUT buffer `index`, read by the layout the device announced.
    fn picture(&self, index: u32) -> Result<Vec<u8>, String> {
        let raw = self.raw.as_ref().ok_or("no format")?;
        let buf = &self.output[index as usize];
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        let (s, rows) = (raw.planes[0].bytesperline as usize, raw.height as usize);
        let rows_of = |base: usize, stride: usize, n: usize, len: usize, step: usize| {
            let mut out = Vec::with_capacity(n * len);
            for r in 0..n {
                let at = base + r * stride;
                out.extend(buf[at..at + len * step].iter().step_by(step));
            }
            out
        };
        match &raw.fourcc.0 {
            b"YU12" => {
                let mut out = rows_of(0, s, h, w, 1);
                let u = s * rows;
                let v = u + (s / 2) * (rows / 2);
                out.extend(rows_of(u, s / 2, h / 2, w / 2, 1));
                out.extend(rows_of(v, s / 2, h / 2, w / 2, 1));
                Ok(out)
            }
            b"NV12" => {
                let mut out = rows_of(0, s, h, w, 1);
                let uv = s * rows;
                out.extend(rows_of(uv, s, h / 2, w / 2, 2));
                out.extend(rows_of(uv + 1, s, h / 2, w / 2, 2));
                Ok(out)
            }
            b"YUYV" => convert::yuyv_to_i420(buf, self.size.0, self.size.1, s as u32)
                .map_err(|e| e.to_string()),
            _ => Err(format!("{} is not taken", raw.fourcc)),
        }
    }

    /// Encodes what the latency allows and fills CAPTURE buffers.
    fn run(&mut self) {
        if self.options.stall || !(self.streaming[0] && self.streaming[1]) {
            return;
        }
        while self.waiting.len() > self.options.latency {
            let Some((index, force)) = self.waiting.pop_front() else {
                break;
            };
            let bytes = self.encode(index, force).unwrap_or_else(|e| {
                log::warn!("synthetic encoder: {e}");
                Vec::new()
            });
            self.output_done.push_back(index);
            let types = nal_types(&bytes);
            let first_slice = types.iter().position(|t| matches!(t, 1 | 5));
            match first_slice {
                Some(n) if n > 0 && self.options.split_headers => {
                    // Split before the start code of the first slice.
                    let at = nal_start(&bytes, n);
                    self.chunks.push_back(bytes[..at].to_vec());
                    self.chunks.push_back(bytes[at..].to_vec());
                }
                _ => self.chunks.push_back(bytes),
            }
        }
        while !self.chunks.is_empty() {
            let Some(index) = self.capture_queued.pop_front() else {
                break;
            };
            let chunk = self.chunks.pop_front().unwrap_or_default();
            let buf = &mut self.capture[index as usize];
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            self.capture_done.push_back((index, n as u32));
        }
    }

    fn encode(&mut self, index: u32, force: bool) -> Result<Vec<u8>, String> {
        let data = self.picture(index)?;
        let (w, h) = self.size;
        let fps = self.fps.max(1);
        let encoder = match &mut self.encoder {
            Some(e) => e,
            None => {
                let bitrate = self.bitrate.unwrap_or(500_000);
                self.encoder
                    .insert(H264Encoder::new(w, h, fps, bitrate).map_err(|e| e.to_string())?)
            }
        };
        let frame = VideoFrame {
            width: w,
            height: h,
            pts: Duration::from_millis(u64::from(self.frames_encoded) * 1000 / u64::from(fps)),
            captured: SystemTime::now(),
            data,
        };
        self.frames_encoded += 1;
        encoder.encode(&frame, force).map_err(|e| e.to_string())
    }
}

/// Where the start code of NAL unit `n` (0-based) of an Annex-B stream begins.
fn nal_start(bytes: &[u8], n: usize) -> usize {
    let mut seen = 0;
    let mut i = 0;
    while i + 3 <= bytes.len() {
        if bytes[i..].starts_with(&[0, 0, 1]) {
            if seen == n {
                return if i > 0 && bytes[i - 1] == 0 { i - 1 } else { i };
            }
            seen += 1;
            i += 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

impl M2mDevice for SyntheticM2m {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_coded_format(&mut self, width: u32, height: u32, sizeimage: u32) -> io::Result<u32> {
        let mut state = live(&self.shared)?;
        if state.streaming[1] {
            return Err(io::Error::from_raw_os_error(EBUSY));
        }
        if width == 0 || height == 0 {
            return Err(einval());
        }
        state.coded_size = sizeimage.max(64 * 1024);
        Ok(state.coded_size)
    }

    fn set_raw_format(&mut self, fourcc: FourCc, width: u32, height: u32) -> io::Result<RawFormat> {
        let mut state = live(&self.shared)?;
        if state.streaming[0] {
            return Err(io::Error::from_raw_os_error(EBUSY));
        }
        let (w, h) = (width & !1, height & !1);
        let rows = align(h, 16);
        let (bytesperline, sizeimage) = match &fourcc.0 {
            b"YU12" | b"NV12" => {
                let s = align(w, 32);
                (s, s * rows * 3 / 2)
            }
            b"YUYV" => {
                let s = align(2 * w, 32);
                (s, s * rows)
            }
            _ => return Err(einval()),
        };
        let format = RawFormat {
            fourcc,
            width: w,
            height: rows,
            planes: vec![PlaneFormat {
                bytesperline,
                sizeimage,
            }],
        };
        state.size = (w, h);
        state.raw = Some(format.clone());
        Ok(format)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()> {
        live(&self.shared)?.fps = fps;
        Ok(())
    }

    fn set_control(&mut self, id: u32, value: i32) -> io::Result<()> {
        let mut state = live(&self.shared)?;
        if state.options.refuse_control == Some(id) {
            return Err(einval());
        }
        match id {
            CID_FORCE_KEY_FRAME => {
                state.force_key = true;
                state.keyframes_forced += 1;
            }
            CID_BITRATE => {
                let bitrate = u32::try_from(value).map_err(|_| einval())?;
                state.bitrate = Some(bitrate);
                if let Some(encoder) = &mut state.encoder {
                    encoder
                        .set_bitrate(bitrate)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                }
            }
            CID_BITRATE_MODE
            | CID_H264_PROFILE
            | CID_H264_LEVEL
            | CID_H264_I_PERIOD
            | CID_REPEAT_SEQ_HEADER => {}
            _ => return Err(einval()),
        }
        state.controls.push((id, value));
        Ok(())
    }

    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32> {
        let mut state = live(&self.shared)?;
        if state.streaming[queue_slot(queue)] {
            return Err(io::Error::from_raw_os_error(EBUSY));
        }
        match queue {
            Queue::Output => {
                let size = state
                    .raw
                    .as_ref()
                    .ok_or_else(einval)?
                    .planes
                    .first()
                    .map_or(0, |p| p.sizeimage) as usize;
                state.output = vec![vec![0; size]; count as usize];
                state.output_held = vec![false; count as usize];
                self.output_view = vec![vec![0; size]; count as usize];
            }
            Queue::Capture => {
                let size = state.coded_size as usize;
                state.capture = vec![vec![0; size]; count as usize];
                state.capture_held = vec![false; count as usize];
            }
        }
        Ok(count)
    }

    fn output_planes(&mut self, index: u32) -> io::Result<Vec<&mut [u8]>> {
        let state = live(&self.shared)?;
        match state.output_held.get(index as usize) {
            None => return Err(einval()),
            Some(true) => return Err(io::Error::from_raw_os_error(EBUSY)),
            Some(false) => {}
        }
        // What the buffer holds now (a previous frame, as mmap'd memory would).
        self.output_view[index as usize].copy_from_slice(&state.output[index as usize]);
        drop(state);
        Ok(vec![&mut self.output_view[index as usize][..]])
    }

    fn capture_data(&self, index: u32) -> io::Result<&[u8]> {
        let state = live(&self.shared)?;
        match state.capture_held.get(index as usize) {
            None => Err(einval()),
            Some(true) => Err(io::Error::from_raw_os_error(EBUSY)),
            Some(false) => match &self.capture_view {
                Some((i, data)) if *i == index => Ok(data),
                _ => Err(einval()),
            },
        }
    }

    fn queue_output(&mut self, index: u32, bytesused: &[u32]) -> io::Result<()> {
        let mut state = live(&self.shared)?;
        let i = index as usize;
        if state.output_held.get(i) != Some(&false) || bytesused.len() != 1 {
            return Err(einval());
        }
        state.output[i].copy_from_slice(&self.output_view[i]);
        state.output_held[i] = true;
        let force = std::mem::take(&mut state.force_key);
        state.waiting.push_back((index, force));
        state.run();
        self.shared.changed.notify_all();
        Ok(())
    }

    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        let mut state = live(&self.shared)?;
        let i = index as usize;
        if state.capture_held.get(i) != Some(&false) {
            return Err(einval());
        }
        state.capture_held[i] = true;
        state.capture_queued.push_back(index);
        state.run();
        self.shared.changed.notify_all();
        Ok(())
    }

    fn dequeue(&mut self, queue: Queue) -> io::Result<Option<Dequeued>> {
        let mut state = live(&self.shared)?;
        match queue {
            Queue::Output => Ok(state.output_done.pop_front().map(|index| {
                state.output_held[index as usize] = false;
                Dequeued {
                    index,
                    offset: 0,
                    bytesused: 0,
                    flags: 0,
                }
            })),
            Queue::Capture => {
                let Some((index, bytesused)) = state.capture_done.pop_front() else {
                    return Ok(None);
                };
                state.capture_held[index as usize] = false;
                // The buffer's memory as userspace sees it once it has it back.
                self.capture_view = Some((index, state.capture[index as usize].clone()));
                Ok(Some(Dequeued {
                    index,
                    offset: 0,
                    bytesused,
                    flags: 0,
                }))
            }
        }
    }

    fn stream(&mut self, queue: Queue, on: bool) -> io::Result<()> {
        let mut state = live(&self.shared)?;
        state.streaming[queue_slot(queue)] = on;
        if !on {
            // Stopping a queue gives its buffers back.
            match queue {
                Queue::Output => {
                    state.waiting.clear();
                    state.output_done.clear();
                    state.output_held.fill(false);
                }
                Queue::Capture => {
                    state.capture_queued.clear();
                    state.capture_done.clear();
                    state.chunks.clear();
                    state.capture_held.fill(false);
                }
            }
        }
        state.run();
        self.shared.changed.notify_all();
        Ok(())
    }

    fn poll(&mut self, timeout: Duration) -> io::Result<Ready> {
        let ready = |s: &State| Ready {
            output: !s.output_done.is_empty(),
            capture: !s.capture_done.is_empty(),
        };
        let state = live(&self.shared)?;
        if ready(&state) != Ready::default() {
            return Ok(ready(&state));
        }
        // Nothing runs on its own here: only `vanish` can change anything while this waits.
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| {
                !s.vanished && ready(s) == Ready::default()
            })
            .unwrap_or_else(|e| e.into_inner());
        if state.vanished {
            return Err(io::Error::from_raw_os_error(ENODEV));
        }
        Ok(ready(&state))
    }
}

impl Drop for SyntheticM2m {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        // Closing frees everything, as the kernel does with a closed file.
        state.held_at_close = Some(state.held());
        state.closed = true;
        state.output_held.fill(false);
        state.capture_held.fill(false);
        state.streaming = [false, false];
        self.shared.changed.notify_all();
    }
}

impl SyntheticHandle {
    /// The device is unplugged (or its firmware died): `ENODEV` from now on.
    pub fn vanish(&self) {
        self.0.lock().vanished = true;
        self.0.changed.notify_all();
    }

    /// Every control set, in order.
    pub fn controls(&self) -> Vec<(u32, i32)> {
        self.0.lock().controls.clone()
    }

    /// The last bitrate set, and the one its openh264 encoder has (once it encoded a frame).
    pub fn bitrate(&self) -> (Option<u32>, Option<u32>) {
        let state = self.0.lock();
        (
            state.bitrate,
            state.encoder.as_ref().map(H264Encoder::bitrate),
        )
    }

    /// Buffers the device holds: (OUTPUT, CAPTURE).
    pub fn held(&self) -> (usize, usize) {
        self.0.lock().held()
    }

    /// Whether each queue (OUTPUT, CAPTURE) streams.
    pub fn streaming(&self) -> (bool, bool) {
        let s = self.0.lock().streaming;
        (s[0], s[1])
    }

    /// Whether the device was closed, and what it held then.
    pub fn closed(&self) -> Option<(usize, usize)> {
        let state = self.0.lock();
        state
            .closed
            .then_some(state.held_at_close.unwrap_or_default())
    }

    /// Keyframe requests received, and frames encoded.
    pub fn counts(&self) -> (u32, u32) {
        let state = self.0.lock();
        (state.keyframes_forced, state.frames_encoded)
    }
}
