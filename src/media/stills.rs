//! Stills from a camera that a call holds.
//!
//! A V4L2 camera streams to one user at a time: a second open that sets a format or asks for
//! buffers while the first streams gets `EBUSY`. The door takes its snapshot just after its
//! call has opened the camera (the picture follows the invite, and the invite needs the call's
//! offer), so the snapshot cannot open the camera again. Instead, the call's camera is
//! registered here for as long as the call holds it, and a snapshot takes its picture from
//! the call's stream:
//! - raw frames (what the software or hardware encoder takes): the frames are shared under a
//!   lock ([`SharedFrames`]) and the snapshot reads the next one itself, between the call's —
//!   also while the call is still ringing and no frame is being encoded;
//! - H.264 streams (a camera's own H.264, a camera command): the stream is tapped
//!   ([`TappedStream`]); the snapshot asks for the next keyframe, which is decoded.
//!
//! The synthetic camera is held the same way: a snapshot while a call holds the test pattern
//! gets the call's frames, as it would on a real camera.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use super::camera::FourCc;
use super::h264;
use super::m2m::RawFrames;
use super::source::{H264Source, Pacing};
use super::VideoDevice;
use super::{MediaError, VideoFrame, VideoSource};

/// How long a snapshot waits for a held camera's keyframe.
pub const KEYFRAME_WAIT: Duration = Duration::from_secs(5);

/// A held camera's frames, as a snapshot reads them.
trait Still: Send + Sync {
    fn still(&self) -> Result<VideoFrame, MediaError>;
}

impl<T: VideoSource> Still for Mutex<T> {
    fn still(&self) -> Result<VideoFrame, MediaError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).next_frame()
    }
}

/// How a held camera gives a still.
#[derive(Clone)]
enum Held {
    Frames(Weak<dyn Still>),
    Stream(Weak<Tap>),
}

impl Held {
    fn alive(&self) -> bool {
        match self {
            Held::Frames(w) => w.strong_count() > 0,
            Held::Stream(w) => w.strong_count() > 0,
        }
    }
}

/// The cameras calls hold now, each under the id of its holder.
static HELD: Mutex<Vec<(u64, VideoDevice, Held)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn register(device: &VideoDevice, held: Held) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut all = HELD.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(_, _, h)| h.alive());
    all.push((id, device.clone(), held));
    id
}

fn unregister(id: u64) {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(i, _, _)| *i != id);
}

/// Whether a call holds `device` now.
pub fn is_held(device: &VideoDevice) -> bool {
    find(device).is_some()
}

fn find(device: &VideoDevice) -> Option<Held> {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .find(|(_, d, h)| d == device && h.alive())
        .map(|(_, _, h)| h.clone())
}

/// A raw frame source a call holds, shared with snapshots: see the module.
pub struct SharedFrames<T: VideoSource + 'static> {
    id: u64,
    frames: Arc<Mutex<T>>,
}

impl<T: VideoSource + 'static> SharedFrames<T> {
    /// Holds `frames` (from `device`) for a call, until this is dropped.
    pub fn hold(device: &VideoDevice, frames: T) -> SharedFrames<T> {
        let frames = Arc::new(Mutex::new(frames));
        let still: Arc<dyn Still> = frames.clone();
        let id = register(device, Held::Frames(Arc::downgrade(&still)));
        SharedFrames { id, frames }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: VideoSource + 'static> VideoSource for SharedFrames<T> {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        self.lock().next_frame()
    }
}

/// The hardware encoder's camera, shared the same way.
impl<T: RawFrames> RawFrames for SharedFrames<T> {
    fn fourcc(&self) -> FourCc {
        self.lock().fourcc()
    }

    fn next_raw(&mut self) -> Result<(Vec<u8>, u32), MediaError> {
        self.lock().next_raw()
    }

    fn to_i420(&mut self, raw: &[u8]) -> Result<VideoFrame, MediaError> {
        self.lock().to_i420(raw)
    }
}

impl<T: VideoSource + 'static> Drop for SharedFrames<T> {
    fn drop(&mut self) {
        unregister(self.id);
    }
}

/// The still requests waiting on a tapped stream.
struct Tap {
    /// Someone waits for a keyframe.
    wanted: AtomicBool,
    waiters: Mutex<Vec<mpsc::Sender<Vec<u8>>>>,
}

/// An H.264 stream a call holds, tapped for stills: see the module.
pub struct TappedStream {
    id: u64,
    inner: Box<dyn H264Source>,
    tap: Arc<Tap>,
    /// A keyframe was asked of the source for the waiting stills.
    asked: bool,
}

impl TappedStream {
    /// Holds `inner` (from `device`) for a call, until this is dropped.
    pub fn hold(device: &VideoDevice, inner: Box<dyn H264Source>) -> TappedStream {
        let tap = Arc::new(Tap {
            wanted: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        });
        let id = register(device, Held::Stream(Arc::downgrade(&tap)));
        TappedStream {
            id,
            inner,
            tap,
            asked: false,
        }
    }
}

impl H264Source for TappedStream {
    fn pacing(&self) -> Pacing {
        self.inner.pacing()
    }

    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        let wanted = self.tap.wanted.load(Ordering::Acquire);
        let ask = wanted && !self.asked;
        self.asked |= ask;
        let unit = self.inner.next_access_unit(keyframe || ask)?;
        if let Some(au) = &unit {
            if wanted && h264::is_keyframe(au) {
                let mut waiters = self.tap.waiters.lock().unwrap_or_else(|e| e.into_inner());
                self.tap.wanted.store(false, Ordering::Release);
                self.asked = false;
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(au.clone());
                }
            }
        }
        Ok(unit)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, MediaError> {
        self.inner.set_bitrate(bitrate)
    }
}

impl Drop for TappedStream {
    fn drop(&mut self) {
        unregister(self.id);
        // Waiters see their channel close: the call ended before a keyframe came.
        self.tap
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// A frame of `device` when a call holds it: `None` when none does (then the caller opens the
/// camera itself). `name`: the camera as the errors name it.
pub fn take(
    device: &VideoDevice,
    name: &str,
    wait: Duration,
) -> Option<Result<VideoFrame, MediaError>> {
    match find(device)? {
        // The call may end between the lookup and here: then the camera is free.
        Held::Frames(frames) => Some(frames.upgrade()?.still()),
        Held::Stream(tap) => {
            let tap = tap.upgrade()?;
            let (tx, rx) = mpsc::channel();
            tap.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tx);
            tap.wanted.store(true, Ordering::Release);
            drop(tap);
            Some(match rx.recv_timeout(wait) {
                Ok(au) => decode_keyframe(&au, name),
                Err(mpsc::RecvTimeoutError::Timeout) => Err(MediaError::Failed(format!(
                    "camera {name}: no keyframe in its call's stream within {} s",
                    wait.as_secs()
                ))),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(MediaError::Failed(format!(
                    "camera {name}: its call ended before a keyframe came"
                ))),
            })
        }
    }
}

/// The picture of an H.264 keyframe (with its SPS and PPS), as an I420 frame.
pub fn decode_keyframe(au: &[u8], name: &str) -> Result<VideoFrame, MediaError> {
    use openh264::formats::YUVSource;
    let fail = |e: &dyn std::fmt::Display| {
        MediaError::Codec(format!("camera {name}: its keyframe does not decode: {e}"))
    };
    let mut decoder = openh264::decoder::Decoder::new().map_err(|e| fail(&e))?;
    let yuv = match decoder.decode(au).map_err(|e| fail(&e))? {
        Some(yuv) => yuv,
        None => return Err(fail(&"no picture came out")),
    };
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let mut data = Vec::with_capacity(w * h * 3 / 2);
    for row in 0..h {
        data.extend_from_slice(&yuv.y()[row * sy..][..w]);
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for (plane, stride) in [(yuv.u(), su), (yuv.v(), sv)] {
        for row in 0..ch {
            data.extend_from_slice(&plane[row * stride..][..cw]);
        }
    }
    Ok(VideoFrame {
        width: w as u32,
        height: h as u32,
        pts: Duration::ZERO,
        captured: std::time::SystemTime::now(),
        data,
    })
}
