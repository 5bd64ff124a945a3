//! The WebRTC adapter (the `webrtc` crate, pinned): one peer connection per call.
//!
//! It carries out [`crate::call::RtcCommand`]s (offer, answer, remote description, remote
//! candidates, close) and reports [`crate::call::RtcEvent`]s (local description, local candidates,
//! connection state). It decides nothing: when to offer, which candidates to buffer and when a
//! failed connection ends a call are the core's rules. Media tracks come from [`crate::media`].
//!
//! Each call is one tokio task (it works on the daemon's current-thread runtime) that owns the
//! peer connection and carries out that call's commands in order; video is encoded on a thread
//! of the call's own, so that encoding never stalls the runtime. What the door sends: one media
//! stream (one msid) with an Opus track (`opus/48000/2`, mono in practice, in-band FEC) and, for
//! video calls, an H.264 track (constrained baseline `42e01f`, `packetization-mode=1`). VP8 is not
//! offered: the door cannot encode it, and every browser Element runs on decodes that H.264.
//! What it receives: the peer's Opus, decoded (with FEC and concealment for lost packets) into
//! the configured speaker; the peer's video is read and dropped; the peer's keypad
//! (telephone-event beside the Opus, see [`dtmf`]) reported to the core key by key.
//!
//! Media flows from the moment the connection is up: the first video frame after that is a
//! keyframe, encoded and sent at once, and the viewer's keyframe requests (PLI, FIR; see
//! [`keyframe`]) are answered with another. The video encoder and the camera are started (one
//! frame encoded) as soon as the call's peer connection exists, so that nothing is initialised
//! on the connection's critical path.

mod audio;
mod call;
mod dtmf;
mod error;
mod feedback;
mod keyframe;
mod negotiation;
mod peer;
mod video;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::call::{CallId, RtcCommand, RtcEvent};
pub use crate::media::{AudioLevel, MediaSettings, VideoSettings};
use crate::media::{DeviceReport, SharedRecording};

/// A STUN or TURN server for the calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// What the calls are made with.
#[derive(Debug, Clone)]
pub struct RtcSettings {
    pub ice_servers: Vec<IceServer>,
    /// The size and rate of the door's video; `None`: the door never sends video.
    pub video: Option<VideoSettings>,
    /// The devices: camera, microphone, speaker.
    pub media: MediaSettings,
    /// Whether calls take the peer's video. The door has no screen, so it does not: its offers
    /// and answers send video only, and the peer's camera is not sent to it at all (a browser
    /// sends 1-2.5 Mbit/s of it, which a Pi would receive, decrypt and drop). `true` plays a
    /// viewer, as the loopback tests' other end does.
    pub receive_video: bool,
}

/// What a call has sent and received so far (see [`Rtc::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CallStats {
    /// The connection is up (it was connected and has not failed or closed since).
    pub connected: bool,
    /// Time from the call's first command (offer or answer) to the first `Connected`.
    pub time_to_connect: Option<Duration>,
    pub video_frames_sent: u64,
    pub keyframes_sent: u64,
    /// PLI and FIR received from the peer.
    pub keyframe_requests: u64,
    /// Frames not encoded because the encoder was still busy with the previous one.
    pub video_frames_dropped: u64,
    /// Frames encoded (sent or not: the warm-up frame, frames before the first keyframe).
    pub video_frames_encoded: u64,
    /// Total time spent encoding them.
    pub video_encode_time: Duration,
    pub audio_packets_sent: u64,
    pub video_packets_received: u64,
    pub video_bytes_received: u64,
    /// Whether the first video packet received began a keyframe (`None`: no video yet).
    pub first_video_keyframe: Option<bool>,
    pub audio_packets_received: u64,
    /// Remote audio frames lost in transit (recovered from FEC or concealed).
    pub audio_frames_lost: u64,
    /// The remote audio as it was written to the speaker.
    pub remote_audio: AudioLevel,
}

/// The live counters behind [`CallStats`], shared by a call's task and [`Rtc`].
#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    time_to_connect_us: AtomicU64,
    video_frames_sent: AtomicU64,
    keyframes_sent: AtomicU64,
    keyframe_requests: AtomicU64,
    video_frames_dropped: AtomicU64,
    video_frames_encoded: AtomicU64,
    video_encode_us: AtomicU64,
    audio_packets_sent: AtomicU64,
    video_packets_received: AtomicU64,
    video_bytes_received: AtomicU64,
    first_video: AtomicU8,
    audio_packets_received: AtomicU64,
    audio_frames_lost: AtomicU64,
    remote_audio: SharedRecording,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CallStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let connect = get(&self.time_to_connect_us);
        CallStats {
            connected: self.connected.load(Ordering::Relaxed),
            time_to_connect: (connect > 0).then(|| Duration::from_micros(connect)),
            video_frames_sent: get(&self.video_frames_sent),
            keyframes_sent: get(&self.keyframes_sent),
            keyframe_requests: get(&self.keyframe_requests),
            video_frames_dropped: get(&self.video_frames_dropped),
            video_frames_encoded: get(&self.video_frames_encoded),
            video_encode_time: Duration::from_micros(get(&self.video_encode_us)),
            audio_packets_sent: get(&self.audio_packets_sent),
            video_packets_received: get(&self.video_packets_received),
            video_bytes_received: get(&self.video_bytes_received),
            first_video_keyframe: match self.first_video.load(Ordering::Relaxed) {
                video::FIRST_VIDEO_NONE => None,
                state => Some(state == video::FIRST_VIDEO_KEYFRAME),
            },
            audio_packets_received: get(&self.audio_packets_received),
            audio_frames_lost: get(&self.audio_frames_lost),
            remote_audio: self.remote_audio.level(),
        }
    }
}

/// How many call tasks are running. Each task holds one [`LiveGuard`].
#[derive(Clone)]
struct Live(Arc<watch::Sender<usize>>);

struct LiveGuard(Live);

impl Live {
    fn enter(&self) -> LiveGuard {
        self.0.send_modify(|n| *n += 1);
        LiveGuard(self.clone())
    }
}

impl Drop for LiveGuard {
    /// The last call's task has freed everything: what the allocator kept goes back.
    fn drop(&mut self) {
        let mut left = 0;
        self.0 .0.send_modify(|n| {
            *n -= 1;
            left = *n;
        });
        if left == 0 {
            crate::memory::give_back_free_pages();
            log::info!("media released: no call left");
        }
    }
}

struct CallHandle {
    commands: mpsc::UnboundedSender<RtcCommand>,
    counters: Arc<Counters>,
}

/// The WebRTC side of every call: one peer connection per [`CallId`]. See the module.
pub struct Rtc {
    settings: RtcSettings,
    events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
    devices: Option<mpsc::UnboundedSender<DeviceReport>>,
    calls: HashMap<CallId, CallHandle>,
    live: Live,
}

impl Rtc {
    /// An adapter that makes calls with `settings` and reports what happens to them on `events`.
    /// Must be used from inside a tokio runtime (a current-thread one is enough).
    pub fn new(settings: RtcSettings, events: mpsc::UnboundedSender<(CallId, RtcEvent)>) -> Rtc {
        Rtc {
            settings,
            events,
            devices: None,
            calls: HashMap::new(),
            live: Live(Arc::new(watch::channel(0).0)),
        }
    }

    /// Where calls report whether their devices opened (and devices that fail mid-call).
    pub fn report_devices(&mut self, devices: mpsc::UnboundedSender<DeviceReport>) {
        self.devices = Some(devices);
    }

    /// The ICE servers for calls created from now on.
    pub fn set_ice_servers(&mut self, servers: Vec<IceServer>) {
        self.settings.ice_servers = servers;
    }

    /// Hands `command` to `call`'s task, which carries out that call's commands in order. Never
    /// blocks. `CreateOffer` and `CreateAnswer` start the task; `Close` ends it (the call is
    /// forgotten here at once, its task frees everything on its own). A command for a call that
    /// has no peer connection is answered with `RtcEvent::Failed`.
    pub fn command(&mut self, call: &CallId, command: RtcCommand) {
        if let RtcCommand::Close = command {
            if let Some(handle) = self.calls.remove(call) {
                let _ = handle.commands.send(RtcCommand::Close);
            }
            return;
        }
        if !self.calls.contains_key(call)
            && matches!(
                command,
                RtcCommand::CreateOffer { .. } | RtcCommand::CreateAnswer { .. }
            )
        {
            let (tx, rx) = mpsc::unbounded_channel();
            let counters = Arc::new(Counters::default());
            let task = call::CallTask::new(
                call.clone(),
                self.settings.clone(),
                self.events.clone(),
                self.devices.clone(),
                Arc::clone(&counters),
            );
            let guard = self.live.enter();
            tokio::spawn(async move {
                let _guard = guard;
                task.run(rx).await;
            });
            self.calls.insert(
                call.clone(),
                CallHandle {
                    commands: tx,
                    counters,
                },
            );
        }
        let delivered = match self.calls.get(call) {
            Some(handle) => handle.commands.send(command).is_ok(),
            None => false,
        };
        if !delivered {
            log::debug!(call_id = call.0.as_str(); "WebRTC command for a call without a peer connection");
            let _ = self.events.send((
                call.clone(),
                RtcEvent::Failed {
                    reason: "no peer connection for this call".to_owned(),
                },
            ));
        }
    }

    /// What `call` has sent and received so far; `None` once it is closed (or never was).
    pub fn stats(&self, call: &CallId) -> Option<CallStats> {
        self.calls.get(call).map(|h| h.counters.snapshot())
    }

    /// The peer's audio of `call` as it reached the speaker: samples and RMS level.
    pub fn remote_audio(&self, call: &CallId) -> Option<AudioLevel> {
        self.calls
            .get(call)
            .map(|h| h.counters.remote_audio.level())
    }

    /// The number of call tasks still running (a closed call's task counts until it has closed
    /// its peer connection and stopped its encoder thread). Wait on it with
    /// `wait_for(|n| *n == 0)`.
    pub fn live_calls(&self) -> watch::Receiver<usize> {
        self.live.0.subscribe()
    }
}

impl Drop for Rtc {
    fn drop(&mut self) {
        // The tasks see their command channel close and tear their calls down.
        for (_, handle) in self.calls.drain() {
            let _ = handle.commands.send(RtcCommand::Close);
        }
    }
}
