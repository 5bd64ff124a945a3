//! One call: its task, its peer connection, its media loops.
//!
//! Everything a call does happens in its task, one thing at a time: commands from the core,
//! signals from the peer connection's handler (candidates, state changes, remote tracks), encoded
//! frames from the encoder thread, and the two media clocks. Routing the handler's callbacks
//! through the task (rather than reporting from the callbacks) keeps the reports in order: a
//! local description is always reported before the candidates gathered for it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{PayloadType, RTCRtpTransceiverDirection, RTCRtpTransceiverId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use super::feedback::{self, Feedback, FeedbackLog};
use super::{dtmf, keyframe, Counters, IceServer, RtcSettings};
use crate::call::bitrate::BitrateController;
use crate::call::{
    CallId, Candidate, ConnectionState, RtcCommand, RtcEvent, SdpKind, SessionDescription,
    StreamPurpose,
};
use crate::media::h264;
use crate::media::opus_codec::{OpusDecoder, OpusEncoder};
use crate::media::source::{H264Source, Pacing};
use crate::media::{
    open_audio_sink, open_call_source, open_h264, AudioSink, AudioSource, DeviceReport, MediaError,
    Part, Silence, Tee, VideoSettings, FRAME_SAMPLES,
};

/// How long the first offer waits for gathering to finish (host candidates take a few
/// milliseconds; a TURN allocation may take longer, and then trickles after the invite).
const OFFER_GATHERING: Duration = Duration::from_millis(150);
/// One Opus frame.
const AUDIO_FRAME: Duration = Duration::from_millis(20);
/// How long a call waits for its microphone to open (ALSA's own open is bounded by
/// [`crate::media::alsa::OPEN_TIMEOUT`]; the echo canceller is set up after it).
const MICROPHONE_OPEN_LIMIT: Duration = Duration::from_secs(5);
/// How long a call waits for its camera to open (a V4L2 camera's formats, a hardware
/// encoder, a command started).
const CAMERA_OPEN_LIMIT: Duration = Duration::from_secs(10);
/// Keyframes answer requests at most this often: a viewer that keeps asking (a PLI every few
/// hundred milliseconds while it cannot decode) would otherwise get nothing but keyframes.
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Lost audio frames filled in (from FEC or by concealment) before a gap is simply skipped.
const MAX_CONCEALED_FRAMES: u16 = 5;
/// The payload types the door offers. A peer's offer brings its own, which the answer keeps.
const PT_H264: PayloadType = 102;
const PT_OPUS: PayloadType = 111;

/// The H.264 the door sends: constrained baseline, level 3.1, non-interleaved.
fn h264_codec() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        // NACK and PLI are added by the default interceptors; FIR is one more way to ask. REMB:
        // the viewer's estimate of what it can take, the ceiling of the video's bitrate.
        rtcp_feedback: vec![feedback("ccm", "fir"), feedback("goog-remb", "")],
    }
}

/// Opus as browsers expect it: two channels declared, in-band FEC.
fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A random number, without a dependency: std's hasher keys are random per process and
/// per `RandomState`, and the counter and clock make each call's input differ anyway.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// What reaches a call's task besides the core's commands.
enum Signal {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
    KeyframeRequest,
    Feedback(Feedback),
    Encoded(Result<EncodedFrame, MediaError>),
}

/// Runs `open` on a thread of its own and waits for it, at most `limit`: opening a device can
/// block (a sound card another program holds, a driver that waits), and the runtime it would
/// block also answers the control socket, signals and the watchdog. What opens after the limit
/// is closed on that thread. A panic while opening is an error like any other.
async fn open_off_runtime<T: Send + 'static>(
    what: String,
    limit: Duration,
    open: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, MediaError> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("device-open".to_owned())
        .spawn(move || {
            let _ = tx.send(open());
        })
        .map_err(|e| MediaError(format!("{what}: no thread to open it: {e}")))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(_)) => Err(MediaError(format!("{what}: opening it panicked"))),
        Err(_) => Err(MediaError(format!(
            "{what}: not open after {}s",
            limit.as_secs()
        ))),
    }
}

/// One access unit from the encoder thread.
struct EncodedFrame {
    /// Empty when the encoder's rate control skipped the frame.
    data: Vec<u8>,
    /// A keyframe was asked for.
    requested_keyframe: bool,
    keyframe: bool,
    captured: Instant,
    took: Duration,
}

/// The peer connection's callbacks, turned into signals for the call's task. They run on the
/// connection's driver and must not block: each is one unbounded send.
struct Handler {
    signals: mpsc::UnboundedSender<Signal>,
    call: String,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.signals.send(Signal::Candidate(init));
            }
            Err(e) => log::warn!(call_id = self.call.as_str(); "unusable local candidate: {e}"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.signals.send(Signal::GatheringComplete);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        log::debug!(call_id = self.call.as_str(); "ICE: {state}");
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        log::debug!(call_id = self.call.as_str(); "peer connection: {state}");
        let _ = self.signals.send(Signal::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.signals.send(Signal::Track(track));
    }
}

/// Where the door's UDP sockets go: every interface (webrtc expands the wildcard into one socket
/// per address, loopback excluded). A machine with nothing but loopback — a test's network
/// namespace, a door that lost its network — binds loopback, so that its candidates are usable
/// rather than `0.0.0.0`.
fn udp_addrs() -> Vec<String> {
    let routable = rtc::shared::ifaces::ifaces()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.addr)
        .any(|a| {
            let ip = a.ip();
            a.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified() && !is_link_local(&ip)
        });
    vec![if routable { "0.0.0.0:0" } else { "127.0.0.1:0" }.to_owned()]
}

fn is_link_local(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

async fn build_peer_connection(
    ice_servers: &[IceServer],
    handler: Handler,
    video_feedback: feedback::Sink,
) -> Result<Arc<dyn PeerConnection>, String> {
    let mut media_engine = MediaEngine::default();
    for (codec, pt, kind) in [
        (h264_codec(), PT_H264, RtpCodecKind::Video),
        (opus_codec(), PT_OPUS, RtpCodecKind::Audio),
        // The peer's keypad (RFC 4733): see `dtmf.rs`.
        (dtmf::events_codec(), dtmf::PT_EVENTS, RtpCodecKind::Audio),
    ] {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: pt,
                },
                kind,
            )
            .map_err(|e| error("codec", e))?;
    }
    // NACK both ways, sender and receiver reports, TWCC feedback for the peer's estimator; then
    // the keyframe requests up to the application.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .map_err(|e| error("interceptors", e))?
        .with(keyframe::slot(), keyframe::KeyframeRequests::default())
        .with(
            feedback::slot(),
            feedback::VideoFeedback::new(video_feedback),
        );
    let setting_engine = SettingEngineBuilder::new()
        // mDNS needs a multicast route, which a door (or a test namespace) may not have: with
        // it on, building the connection fails. The door's candidates are plain addresses.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        // When the door offers, the browser's checks arrive before its candidates (a
        // peer-reflexive pair): take that pair at once instead of waiting a second.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .build();
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(
            ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
        )
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(udp_addrs())
        .build()
        .await
        .map_err(|e| error("peer connection", e))?;
    Ok(Arc::new(pc))
}

/// A local track and what sending on it needs.
struct Outgoing {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mime: &'static str,
    /// The payload type the peer accepted, once negotiated; `None`: not (or not yet) negotiated.
    payload_type: Option<PayloadType>,
}

impl Outgoing {
    async fn add(
        pc: &Arc<dyn PeerConnection>,
        stream_id: &str,
        codec: RTCRtpCodec,
        kind: RtpCodecKind,
        mime: &'static str,
    ) -> Result<Outgoing, String> {
        let ssrc = random_u64() as u32;
        let track = MediaStreamTrack::new(
            stream_id.to_owned(),
            format!("{kind}-{:016x}", random_u64()),
            format!("door {kind}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let track = Arc::new(
            TrackLocalStaticSample::new(Instant::now(), track)
                .map_err(|e| error("local track", e))?,
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| error("add track", e))?;
        Ok(Outgoing {
            track,
            sender,
            ssrc,
            mime,
            payload_type: None,
        })
    }

    /// Reads the payload type the last negotiation settled on (it is the peer's when the peer
    /// offered, not the one registered).
    async fn refresh(&mut self) {
        self.payload_type = match self.sender.get_parameters().await {
            Ok(p) => p
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(self.mime))
                .map(|c| c.payload_type),
            Err(_) => None,
        };
    }

    async fn write(&self, data: Vec<u8>, captured: Instant, duration: Duration) -> bool {
        let Some(pt) = self.payload_type else {
            return false;
        };
        let sample = Sample {
            data: data.into(),
            duration,
            ..Sample::new(captured)
        };
        self.track
            .write_sample(self.ssrc, pt, &sample, &[])
            .await
            .is_ok()
    }
}

/// The video half of a call: the track, the encoder thread, and what asks it for frames.
struct Video {
    out: Outgoing,
    settings: VideoSettings,
    jobs: std::sync::mpsc::Sender<bool>,
    thread_done: oneshot::Receiver<()>,
    /// The source keeps its own pace (a camera's H.264): jobs only carry keyframe requests.
    push: bool,
    /// The source failed (a camera unplugged): the call goes on without video.
    stopped: bool,
    /// When a push source was last asked for a keyframe.
    last_request: Option<Instant>,
    /// A frame is being encoded: the encoder takes one job at a time, and a tick that finds it
    /// busy drops that frame rather than queueing behind it.
    busy: bool,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    last_capture: Option<Instant>,
    /// Since the connection came up, no keyframe went out yet: nothing else may go first.
    awaiting_keyframe: bool,
    /// The bitrate the viewer's feedback allows, and where the encoder thread reads it.
    rate: BitrateController,
    rate_to_encoder: Arc<AtomicU32>,
    feedback: FeedbackLog,
}

/// Starts the encoder thread. A pull source (software encoding) takes jobs ("encode the next
/// frame, a keyframe or not") and sends back access units; a push source sends every access
/// unit as it comes, and its jobs are keyframe requests. The thread ends when the job channel
/// closes, or on the first error.
fn spawn_encoder(
    source: Box<dyn H264Source>,
    signals: mpsc::UnboundedSender<Signal>,
    bitrate: Arc<AtomicU32>,
) -> Result<(std::sync::mpsc::Sender<bool>, oneshot::Receiver<()>), String> {
    let (jobs_tx, jobs) = std::sync::mpsc::channel::<bool>();
    let (done_tx, done) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("video-encoder".to_owned())
        .spawn(move || {
            // Dropped when this thread ends, however it ends: that is what the task waits for.
            let _done = done_tx;
            encode_loop(source, &jobs, &signals, &bitrate);
        })
        .map_err(|e| error("video encoder thread", e))?;
    Ok((jobs_tx, done))
}

/// The encoder thread's work: see [`spawn_encoder`].
fn encode_loop(
    mut source: Box<dyn H264Source>,
    jobs: &std::sync::mpsc::Receiver<bool>,
    signals: &mpsc::UnboundedSender<Signal>,
    bitrate: &AtomicU32,
) {
    match source.pacing() {
        Pacing::Pull => {
            // `None`: the source said its encoder is out of reach; asked once.
            let mut encoder_rate = Some(0);
            while let Ok(keyframe) = jobs.recv() {
                let wanted = bitrate.load(Ordering::Relaxed);
                if encoder_rate.is_some_and(|r| r != wanted) {
                    encoder_rate = match source.set_bitrate(wanted) {
                        Ok(true) => Some(wanted),
                        Ok(false) => {
                            log::debug!("video: {}'s encoder keeps its own bitrate", source.name());
                            None
                        }
                        Err(e) => {
                            // Not asked again for this rate; the next one is tried.
                            log::warn!("video: {e}");
                            Some(wanted)
                        }
                    };
                }
                let captured = Instant::now();
                let start = Instant::now();
                let result = source.next_access_unit(keyframe).map(|data| {
                    let data = data.unwrap_or_default();
                    EncodedFrame {
                        requested_keyframe: keyframe,
                        keyframe: h264::is_keyframe(&data),
                        data,
                        captured,
                        took: start.elapsed(),
                    }
                });
                let failed = result.is_err();
                if signals.send(Signal::Encoded(result)).is_err() || failed {
                    break;
                }
            }
        }
        Pacing::Push => loop {
            let mut keyframe = false;
            loop {
                match jobs.try_recv() {
                    Ok(k) => keyframe |= k,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let result = match source.next_access_unit(keyframe) {
                Ok(None) => continue,
                Ok(Some(data)) => Ok(EncodedFrame {
                    requested_keyframe: keyframe,
                    keyframe: h264::is_keyframe(&data),
                    data,
                    captured: Instant::now(),
                    took: Duration::ZERO,
                }),
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            if signals.send(Signal::Encoded(result)).is_err() || failed {
                break;
            }
        },
    }
}

/// A call as its task sees it. See the module.
pub(super) struct CallTask {
    id: CallId,
    settings: RtcSettings,
    events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
    devices: Option<mpsc::UnboundedSender<DeviceReport>>,
    counters: Arc<Counters>,
}

impl CallTask {
    pub(super) fn new(
        id: CallId,
        settings: RtcSettings,
        events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
        devices: Option<mpsc::UnboundedSender<DeviceReport>>,
        counters: Arc<Counters>,
    ) -> CallTask {
        CallTask {
            id,
            settings,
            events,
            devices,
            counters,
        }
    }

    fn report(&self, event: RtcEvent) {
        let _ = self.events.send((self.id.clone(), event));
    }

    /// Whether `part` works, for the daemon's status (and, when it failed, the core).
    fn device(&self, part: Part, problem: Option<&MediaError>) {
        if let Some(devices) = &self.devices {
            let name = self.settings.media.name_of(part);
            let _ = devices.send(match problem {
                None => DeviceReport::ok(part, name),
                Some(_) => DeviceReport::failed(part, name),
            });
        }
    }

    /// Carries out the call's commands until `Close` (or until [`super::Rtc`] is dropped).
    pub(super) async fn run(self, mut commands: mpsc::UnboundedReceiver<RtcCommand>) {
        let started = Instant::now();
        crate::panics::test_panic("call");
        let (offer, video) = match commands.recv().await {
            Some(RtcCommand::CreateOffer { video }) => (None, video),
            Some(RtcCommand::CreateAnswer { offer, video }) => (Some(offer), video),
            _ => return,
        };
        let (signals_tx, mut signals) = mpsc::unbounded_channel();
        let mut call = match Call::open(&self, video, signals_tx).await {
            Ok(call) => call,
            Err(reason) => {
                log::warn!(call_id = self.id.0.as_str(); "cannot start the call's media: {reason}");
                self.report(RtcEvent::Failed { reason });
                return;
            }
        };
        call.started = started;
        if let Err(reason) = call.negotiate_first(offer, &mut signals).await {
            log::warn!(call_id = self.id.0.as_str(); "cannot negotiate: {reason}");
            call.task.report(RtcEvent::Failed { reason });
            call.close().await;
            return;
        }

        let fps = call.video.as_ref().map_or(15, |v| v.settings.fps.max(1));
        let mut video_tick = tokio::time::interval(Duration::from_secs(1) / fps);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut audio_tick = tokio::time::interval(AUDIO_FRAME);
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let sending_video =
                call.sending && call.video.as_ref().is_some_and(|v| !v.stopped && !v.push);
            tokio::select! {
                command = commands.recv() => match command {
                    None | Some(RtcCommand::Close) => break,
                    Some(command) => call.command(command).await,
                },
                Some(signal) = signals.recv() => call.signal(signal).await,
                _ = video_tick.tick(), if sending_video => call.next_frame(true),
                _ = audio_tick.tick(), if call.sending => call.send_audio().await,
            }
        }
        call.close().await;
        log::debug!(call_id = self.id.0.as_str(); "call closed");
    }
}

/// The live parts of a call.
struct Call<'a> {
    task: &'a CallTask,
    started: Instant,
    pc: Arc<dyn PeerConnection>,
    signals: mpsc::UnboundedSender<Signal>,
    /// The remote track readers and the keyframe-request watcher.
    helpers: JoinSet<()>,
    stream_id: String,
    /// The first m-line's mid, which the door's candidates name (everything is bundled).
    first_mid: Option<String>,
    audio: Outgoing,
    audio_source: Box<dyn AudioSource>,
    audio_encoder: OpusEncoder,
    audio_frame: Vec<i16>,
    /// The speaker, until the first remote audio track takes it.
    sink: Option<Box<dyn AudioSink>>,
    video: Option<Video>,
    /// Media goes out: the connection is up (or only disconnected, which may come back).
    sending: bool,
    reported: Option<ConnectionState>,
}

impl<'a> Call<'a> {
    /// Opens the devices, builds the peer connection with the door's tracks and starts the
    /// encoder. Nothing to clean up when this fails (the connection is closed here).
    async fn open(
        task: &'a CallTask,
        video: bool,
        signals: mpsc::UnboundedSender<Signal>,
    ) -> Result<Call<'a>, String> {
        let media = &task.settings.media;
        // Both open off the runtime, side by side (see `open_off_runtime`).
        let microphone = {
            let media = media.clone();
            open_off_runtime(
                format!("microphone {}", media.name_of(Part::Microphone)),
                MICROPHONE_OPEN_LIMIT,
                move || open_call_source(&media),
            )
        };
        let camera = async {
            let settings = task.settings.video.filter(|_| video)?;
            let camera = media.camera.clone();
            let opened = open_off_runtime(
                format!("camera {}", media.name_of(Part::Camera)),
                CAMERA_OPEN_LIMIT,
                move || open_h264(&camera, &settings),
            )
            .await;
            Some((opened, settings))
        };
        let (microphone, camera) = tokio::join!(microphone, camera);
        // A microphone that cannot be opened makes a silent call, not a failed one: the
        // visitor is still seen, and the core decides what a failed device costs the call.
        let audio_source: Box<dyn AudioSource> = match microphone {
            Ok(source) => {
                task.device(Part::Microphone, None);
                source
            }
            Err(e) => {
                log::warn!(call_id = task.id.0.as_str(); "audio: {e}; the call goes on without the microphone, sending silence");
                task.device(Part::Microphone, Some(&e));
                Box::new(Silence)
            }
        };
        let sink: Box<dyn AudioSink> = Box::new(Tee(
            open_audio_sink(&media.playback).map_err(|e| e.0)?,
            task.counters.remote_audio.clone(),
        ));
        // A camera that cannot be opened makes an audio call, not a failed one.
        let video_source = match camera {
            Some((Ok(source), settings)) => {
                task.device(Part::Camera, None);
                Some((source, settings))
            }
            Some((Err(e), _)) => {
                log::warn!(call_id = task.id.0.as_str(); "video: {e}; the call goes on without video");
                task.device(Part::Camera, Some(&e));
                None
            }
            None => None,
        };
        let audio_encoder = OpusEncoder::new().map_err(|e| e.0)?;

        let handler = Handler {
            signals: signals.clone(),
            call: task.id.0.clone(),
        };
        let feedback_signals = signals.clone();
        let video_feedback: feedback::Sink = Box::new(move |fb| {
            let _ = feedback_signals.send(Signal::Feedback(fb));
        });
        let pc = build_peer_connection(&task.settings.ice_servers, handler, video_feedback).await?;
        let stream_id = format!("door-{:016x}", random_u64());
        let want_video = video_source.is_some();
        let tracks = async {
            let audio = Outgoing::add(
                &pc,
                &stream_id,
                opus_codec(),
                RtpCodecKind::Audio,
                MIME_TYPE_OPUS,
            )
            .await?;
            let opus = RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: PT_OPUS,
            };
            dtmf::keep_events(&pc, &audio.sender, opus, &task.id.0).await;
            let video = if want_video {
                Some(
                    Outgoing::add(
                        &pc,
                        &stream_id,
                        h264_codec(),
                        RtpCodecKind::Video,
                        MIME_TYPE_H264,
                    )
                    .await?,
                )
            } else {
                None
            };
            Ok::<_, String>((audio, video))
        };
        let (audio, video_out) = match tracks.await {
            Ok(t) => t,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let mut helpers = JoinSet::new();
        let video = match (video_source, video_out) {
            (Some((source, settings)), Some(out)) => {
                let push = source.pacing() == Pacing::Push;
                let rate = BitrateController::new(
                    BitrateController::start(
                        h264::H264Encoder::default_bitrate(
                            settings.width,
                            settings.height,
                            settings.fps,
                        ),
                        settings.max_bitrate,
                    ),
                    settings.max_bitrate,
                );
                let rate_to_encoder = Arc::new(AtomicU32::new(rate.applied()));
                if push {
                    log::debug!(call_id = task.id.0.as_str(); "video: {}'s encoder keeps its own bitrate; the viewer's feedback cannot reach it", source.name());
                }
                let (jobs, thread_done) =
                    match spawn_encoder(source, signals.clone(), Arc::clone(&rate_to_encoder)) {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = pc.close().await;
                            return Err(e);
                        }
                    };
                // Warm up: the camera's first frame and the encoder's initialisation happen
                // now, off the connection's critical path. This frame is not sent.
                let _ = jobs.send(true);
                helpers.spawn(watch_keyframe_requests(
                    Arc::clone(&out.track),
                    signals.clone(),
                ));
                Some(Video {
                    out,
                    settings,
                    jobs,
                    thread_done,
                    push,
                    stopped: false,
                    last_request: None,
                    busy: !push,
                    keyframe_wanted: false,
                    last_keyframe: None,
                    last_capture: None,
                    awaiting_keyframe: true,
                    rate,
                    rate_to_encoder,
                    feedback: FeedbackLog::default(),
                })
            }
            _ => None,
        };
        Ok(Call {
            task,
            started: Instant::now(),
            pc,
            signals,
            helpers,
            stream_id,
            first_mid: None,
            audio,
            audio_source,
            audio_encoder,
            audio_frame: vec![0; FRAME_SAMPLES],
            sink: Some(sink),
            video,
            sending: false,
            reported: None,
        })
    }

    fn local_description(&mut self, kind: SdpKind, sdp: String) {
        if self.first_mid.is_none() {
            self.first_mid = sdp
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .map(|m| m.trim().to_owned());
        }
        self.task
            .report(RtcEvent::LocalDescription(SessionDescription {
                kind,
                sdp,
                streams: vec![(self.stream_id.clone(), StreamPurpose::UserMedia)],
            }));
    }

    /// The first offer, or the answer to the peer's offer.
    ///
    /// The offer waits (briefly) for gathering and carries the candidates gathered by then, as
    /// browsers' offers do: the callee can check them the moment it has the invite, instead of
    /// waiting for the candidates event that follows it through the homeserver. Signals that
    /// arrive meanwhile are handled afterwards, in order (the candidates among them are sent
    /// again in the usual batches: harmless, and the door never depends on the SDP's copy).
    async fn negotiate_first(
        &mut self,
        offer: Option<SessionDescription>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
    ) -> Result<(), String> {
        match offer {
            None => {
                self.one_way_video().await?;
                let offer = self
                    .pc
                    .create_offer(None)
                    .await
                    .map_err(|e| error("create offer", e))?;
                self.pc
                    .set_local_description(offer.clone())
                    .await
                    .map_err(|e| error("set local offer", e))?;
                let until = tokio::time::Instant::now() + OFFER_GATHERING;
                let mut held = Vec::new();
                while let Ok(Some(signal)) = tokio::time::timeout_at(until, signals.recv()).await {
                    let done = matches!(signal, Signal::GatheringComplete);
                    held.push(signal);
                    if done {
                        break;
                    }
                }
                let sdp = match self.pc.local_description().await {
                    Some(described) if described.sdp.contains("a=candidate:") => described.sdp,
                    _ => offer.sdp,
                };
                self.local_description(SdpKind::Offer, sdp);
                for signal in held {
                    self.signal(signal).await;
                }
                Ok(())
            }
            Some(offer) if offer.kind == SdpKind::Offer => self.answer(offer).await,
            Some(_) => Err("CreateAnswer needs an offer, got an answer".to_owned()),
        }
    }

    /// Applies the peer's offer, answers it and reports the answer.
    async fn answer(&mut self, offer: SessionDescription) -> Result<(), String> {
        let offer =
            RTCSessionDescription::offer(offer.sdp).map_err(|e| error("remote offer", e))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| error("remote offer", e))?;
        self.one_way_video().await?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| error("create answer", e))?;
        self.pc
            .set_local_description(answer.clone())
            .await
            .map_err(|e| error("set local answer", e))?;
        self.local_description(SdpKind::Answer, answer.sdp);
        self.negotiated().await
    }

    /// The door has no screen (see [`RtcSettings::receive_video`]): before its offer, and
    /// after each offer of the peer is applied, its video transceiver is set to send only and
    /// every other one in the negotiation but its audio (the peer's camera or screen share
    /// that matched nothing of the door's, a second audio track) to inactive. A transceiver not
    /// in this negotiation (the door's video in a voice call) is left as it was added, to send
    /// and receive, so that the peer's video in a later offer is matched with it and answered.
    async fn one_way_video(&mut self) -> Result<(), String> {
        if self.task.settings.receive_video {
            return Ok(());
        }
        let offering = self.pc.remote_description().await.is_none();
        let audio = RTCRtpTransceiverId::from(self.audio.sender.id());
        let video = self
            .video
            .as_ref()
            .map(|v| RTCRtpTransceiverId::from(v.out.sender.id()));
        for transceiver in self.pc.get_transceivers().await {
            let id = transceiver.id();
            let negotiated = offering
                || transceiver
                    .mid()
                    .await
                    .map_err(|e| error("transceiver", e))?
                    .is_some();
            if id == audio || !negotiated {
                continue;
            }
            let direction = if Some(id) == video {
                RTCRtpTransceiverDirection::Sendonly
            } else {
                RTCRtpTransceiverDirection::Inactive
            };
            transceiver
                .set_direction(direction)
                .await
                .map_err(|e| error("transceiver direction", e))?;
        }
        Ok(())
    }

    /// After each completed negotiation: what the senders send with. No audio codec in common
    /// is a failed call; no video codec in common is an audio call.
    async fn negotiated(&mut self) -> Result<(), String> {
        self.audio.refresh().await;
        if let Some(video) = &mut self.video {
            video.out.refresh().await;
            if video.out.payload_type.is_none() {
                log::info!(call_id = self.task.id.0.as_str(); "the peer takes no H.264 video: audio only");
            }
        }
        if self.audio.payload_type.is_none() {
            return Err("no audio codec in common with the peer (the door sends Opus)".to_owned());
        }
        Ok(())
    }

    async fn command(&mut self, command: RtcCommand) {
        let result = match command {
            RtcCommand::CreateOffer { .. } | RtcCommand::CreateAnswer { .. } => {
                Err("the call already has a peer connection".to_owned())
            }
            RtcCommand::SetRemoteDescription(desc) => match desc.kind {
                SdpKind::Offer => self.answer(desc).await,
                SdpKind::Answer => self.apply_answer(desc).await,
            },
            RtcCommand::AddRemoteCandidates(candidates) => {
                self.add_candidates(candidates).await;
                Ok(())
            }
            RtcCommand::Close => Ok(()),
        };
        if let Err(reason) = result {
            log::warn!(call_id = self.task.id.0.as_str(); "WebRTC: {reason}");
            self.task.report(RtcEvent::Failed { reason });
        }
    }

    async fn apply_answer(&mut self, answer: SessionDescription) -> Result<(), String> {
        let answer =
            RTCSessionDescription::answer(answer.sdp).map_err(|e| error("remote answer", e))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| error("remote answer", e))?;
        self.negotiated().await
    }

    /// A candidate the connection cannot use (an mDNS name, a TCP or IPv6 one it does not
    /// handle) is the peer's business, not a failure: it is logged and skipped.
    async fn add_candidates(&mut self, candidates: Vec<Candidate>) {
        for c in candidates {
            if c.candidate.is_empty() {
                // The end of the peer's candidates: nothing to do, ICE goes on with what it has.
                continue;
            }
            let init = RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_m_line_index,
                ..Default::default()
            };
            if let Err(e) = self.pc.add_ice_candidate(init.clone()).await {
                log::debug!(call_id = self.task.id.0.as_str(); "remote candidate {:?} skipped: {e}", init.candidate);
            }
        }
    }

    async fn signal(&mut self, signal: Signal) {
        match signal {
            Signal::Candidate(init) => {
                let candidate = Candidate {
                    candidate: init.candidate,
                    sdp_mid: self.first_mid.clone().or(init.sdp_mid),
                    sdp_m_line_index: Some(0),
                };
                self.task.report(RtcEvent::LocalCandidates(vec![candidate]));
            }
            Signal::GatheringComplete => self.task.report(RtcEvent::GatheringComplete),
            Signal::State(state) => self.state(state),
            Signal::Track(track) => self.remote_track(track).await,
            Signal::KeyframeRequest => {
                Counters::add(&self.task.counters.keyframe_requests, 1);
                if let Some(video) = &mut self.video {
                    video.keyframe_wanted = true;
                }
                self.next_frame(false);
            }
            Signal::Feedback(fb) => self.video_feedback(fb),
            Signal::Encoded(result) => self.encoded(result).await,
        }
    }

    /// The viewer's feedback about the door's video into the bitrate controller, and its
    /// decision to the encoder.
    fn video_feedback(&mut self, fb: Feedback) {
        let call = self.task.id.0.as_str();
        let Some(video) = &mut self.video else {
            return;
        };
        let now = Instant::now();
        video.feedback.note(call, &fb);
        match fb {
            Feedback::Report { fraction_lost, .. } => video.rate.on_loss_report(now, fraction_lost),
            Feedback::Remb { bitrate } => video.rate.on_remb(now, bitrate),
            Feedback::TransportCc => {}
        }
        let before = video.rate.applied();
        // A push source's encoder is out of reach (said once, when the call opened): the
        // controller still runs, for the summary, but nothing is announced as a change.
        if let Some(bitrate) = video.rate.poll_bitrate(now).filter(|_| !video.push) {
            log::debug!(call_id = call; "video bitrate: {} -> {} kbit/s ({})", before / 1000, bitrate / 1000, video.feedback.latest());
            video.rate_to_encoder.store(bitrate, Ordering::Relaxed);
        }
    }

    fn state(&mut self, state: RTCPeerConnectionState) {
        let mapped = match state {
            RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => {
                ConnectionState::Connecting
            }
            RTCPeerConnectionState::Connected => ConnectionState::Connected,
            RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
            RTCPeerConnectionState::Failed => ConnectionState::Failed,
            _ => return,
        };
        let counters = &self.task.counters;
        match mapped {
            ConnectionState::Connected => {
                if !self.sending {
                    self.sending = true;
                    if counters.time_to_connect_us.load(Ordering::Relaxed) == 0 {
                        let took = self.started.elapsed().as_micros().max(1) as u64;
                        counters.time_to_connect_us.store(took, Ordering::Relaxed);
                        log::info!(call_id = self.task.id.0.as_str(); "media connected in {} ms", took / 1000);
                    }
                    // The first frame the peer gets is a keyframe, encoded now, not at the
                    // next tick.
                    if let Some(video) = &mut self.video {
                        video.keyframe_wanted = true;
                        video.awaiting_keyframe = true;
                    }
                    self.next_frame(false);
                }
            }
            ConnectionState::Failed => self.sending = false,
            ConnectionState::Connecting | ConnectionState::Disconnected => {}
        }
        counters.connected.store(self.sending, Ordering::Relaxed);
        if self.reported != Some(mapped) {
            self.reported = Some(mapped);
            self.task.report(RtcEvent::Connection(mapped));
        }
    }

    /// Asks the encoder for the next frame, if it is free. `tick`: the frame clock asked (a
    /// frame the busy encoder cannot take is dropped); otherwise a keyframe was asked for.
    fn next_frame(&mut self, tick: bool) {
        let sending = self.sending;
        let Some(video) = &mut self.video else {
            return;
        };
        if !sending || video.stopped || (!tick && !video.keyframe_wanted) {
            return;
        }
        if video.push {
            // The source keeps its own pace: only keyframe requests go to it.
            let now = Instant::now();
            let recent = |t: Option<Instant>| {
                t.is_some_and(|t| now.duration_since(t) < KEYFRAME_MIN_INTERVAL)
            };
            if video.keyframe_wanted
                && !recent(video.last_keyframe)
                && !recent(video.last_request)
                && video.jobs.send(true).is_ok()
            {
                video.keyframe_wanted = false;
                video.last_request = Some(now);
            }
            return;
        }
        if video.busy {
            if tick {
                Counters::add(&self.task.counters.video_frames_dropped, 1);
            }
            return;
        }
        let now = Instant::now();
        let keyframe = video.keyframe_wanted
            && video
                .last_keyframe
                .is_none_or(|t| now.duration_since(t) >= KEYFRAME_MIN_INTERVAL);
        if !tick && !keyframe {
            // A request too soon after the last keyframe: the next tick carries it out.
            return;
        }
        if keyframe {
            video.keyframe_wanted = false;
        }
        if video.jobs.send(keyframe).is_ok() {
            video.busy = true;
        }
    }

    async fn encoded(&mut self, result: Result<EncodedFrame, MediaError>) {
        let Some(video) = &mut self.video else {
            return;
        };
        video.busy = false;
        let frame = match result {
            Ok(frame) => frame,
            Err(e) => {
                // The camera went away (or the encoder failed): the call goes on without
                // video; the next call opens the camera again.
                log::warn!(call_id = self.task.id.0.as_str(); "video stopped: {e}; the call goes on with audio only");
                video.stopped = true;
                self.task.device(Part::Camera, Some(&e));
                return;
            }
        };
        let counters = &self.task.counters;
        Counters::add(&counters.video_frames_encoded, 1);
        Counters::add(&counters.video_encode_us, frame.took.as_micros() as u64);
        if !self.sending || frame.data.is_empty() || (video.awaiting_keyframe && !frame.keyframe) {
            // Not connected yet (the warm-up frame), a frame rate control skipped, or a delta
            // frame that would reach the peer before any keyframe: not sent. If a keyframe was
            // due and did not come, ask again.
            if self.sending
                && (video.awaiting_keyframe || (frame.requested_keyframe && !frame.keyframe))
            {
                video.keyframe_wanted = true;
            }
            self.next_frame(false);
            return;
        }
        let duration = video
            .last_capture
            .map_or(Duration::from_secs(1) / video.settings.fps.max(1), |last| {
                frame.captured.saturating_duration_since(last)
            });
        video.last_capture = Some(frame.captured);
        if video.out.write(frame.data, frame.captured, duration).await {
            Counters::add(&counters.video_frames_sent, 1);
            if frame.keyframe {
                Counters::add(&counters.keyframes_sent, 1);
                video.last_keyframe = Some(frame.captured);
                video.awaiting_keyframe = false;
            }
        }
        // A keyframe asked for while this frame was being encoded goes out now.
        self.next_frame(false);
    }

    async fn send_audio(&mut self) {
        if self.audio.payload_type.is_none() {
            return;
        }
        let captured = Instant::now();
        if let Err(e) = self.audio_source.read(&mut self.audio_frame) {
            // The microphone failed (unplugged): the call goes on without it, silent; the next
            // call opens the device again.
            log::warn!(call_id = self.task.id.0.as_str(); "audio: {e}; the call goes on without the microphone");
            self.task.device(Part::Microphone, Some(&e));
            self.audio_source = Box::new(Silence);
            self.audio_frame.fill(0);
        }
        match self.audio_encoder.encode(&self.audio_frame) {
            Ok(packet) => {
                if self.audio.write(packet, captured, AUDIO_FRAME).await {
                    Counters::add(&self.task.counters.audio_packets_sent, 1);
                }
            }
            Err(e) => {
                log::warn!(call_id = self.task.id.0.as_str(); "audio: {e}");
                self.task.report(RtcEvent::Failed {
                    reason: format!("audio: {e}"),
                });
                // Once is enough: the core hangs up.
                self.audio.payload_type = None;
            }
        }
    }

    async fn remote_track(&mut self, track: Arc<dyn TrackRemote>) {
        let counters = Arc::clone(&self.task.counters);
        let call = self.task.id.0.clone();
        match track.kind().await {
            RtpCodecKind::Audio => {
                let sink = self.sink.take().unwrap_or_else(|| {
                    log::info!(call_id = call.as_str(); "a second remote audio track: not played");
                    Box::new(crate::media::Discard)
                });
                let negotiated = match self.audio.sender.get_parameters().await {
                    Ok(p) => dtmf::event_payload_types(&p.rtp_parameters.codecs),
                    Err(_) => Vec::new(),
                };
                let keys =
                    dtmf::Keys::new(negotiated, self.task.id.clone(), self.task.events.clone());
                self.helpers
                    .spawn(read_audio(track, sink, keys, counters, call));
            }
            _ => {
                self.helpers.spawn(read_video(track, counters));
            }
        }
    }

    /// Closes the connection, stops every helper task and the encoder thread, and waits until
    /// they are gone.
    async fn close(mut self) {
        self.sending = false;
        if let Err(e) = self.pc.close().await {
            log::debug!(call_id = self.task.id.0.as_str(); "closing the peer connection: {e}");
        }
        self.helpers.shutdown().await;
        if let Some(video) = &self.video {
            let (floor, cap) = video.rate.bounds();
            let summary = video.rate.summary();
            let rates = (!video.push).then_some((&summary, floor, cap));
            log::info!(call_id = self.task.id.0.as_str(); "{}", video.feedback.summary(rates));
        }
        if let Some(video) = self.video.take() {
            drop(video.jobs);
            // The thread finishes the frame it is encoding, if any, and ends.
            let _ = video.thread_done.await;
        }
        drop(self.signals);
    }
}

/// Forwards the peer's keyframe requests about the door's video to the call's task.
async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    signals: mpsc::UnboundedSender<Signal>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event {
            if packets
                .iter()
                .any(|p| keyframe::is_keyframe_request(p.as_ref()))
                && signals.send(Signal::KeyframeRequest).is_err()
            {
                return;
            }
        }
    }
}

/// Decodes the peer's Opus into the speaker. A gap in the sequence numbers is filled: the last
/// lost frame from the FEC data of the packet that ends the gap, the ones before it concealed.
async fn read_audio(
    track: Arc<dyn TrackRemote>,
    mut sink: Box<dyn AudioSink>,
    mut keys: dtmf::Keys,
    counters: Arc<Counters>,
    call: String,
) {
    let mut decoder = match OpusDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            log::warn!(call_id = call.as_str(); "remote audio: {e}");
            return;
        }
    };
    let mut last_seq: Option<u16> = None;
    let mut sink_failed = false;
    let mut play = |sink: &mut Box<dyn AudioSink>, samples: &[i16]| {
        if let Err(e) = sink.write(samples) {
            if !sink_failed {
                sink_failed = true;
                log::warn!(call_id = call.as_str(); "speaker: {e}");
            }
        }
    };
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let seq = packet.header.sequence_number;
        if keys.take(&packet) {
            // The keypad's events share the audio's sequence numbers: they are no lost audio.
            if last_seq.is_none_or(|last| (1..0x8000).contains(&seq.wrapping_sub(last))) {
                last_seq = Some(seq);
            }
            continue;
        }
        Counters::add(&counters.audio_packets_received, 1);
        if let Some(last) = last_seq {
            let gap = seq.wrapping_sub(last);
            if gap == 0 || gap > 0x8000 {
                // A duplicate, or late: its moment has passed.
                continue;
            }
            let lost = gap - 1;
            Counters::add(&counters.audio_frames_lost, u64::from(lost));
            if lost <= MAX_CONCEALED_FRAMES {
                for i in 0..lost {
                    let next = (i + 1 == lost).then_some(&packet.payload[..]);
                    if let Ok(samples) = decoder.recover(next) {
                        play(&mut sink, samples);
                    }
                }
            }
        }
        last_seq = Some(seq);
        if packet.payload.is_empty() {
            continue;
        }
        if let Ok(samples) = decoder.decode(&packet.payload) {
            play(&mut sink, samples);
        }
    }
}

/// `Counters::first_video`: no video yet, the first packet began a keyframe, or it did not.
pub(super) const FIRST_VIDEO_NONE: u8 = 0;
pub(super) const FIRST_VIDEO_KEYFRAME: u8 = 1;
pub(super) const FIRST_VIDEO_DELTA: u8 = 2;

/// Whether an H.264 RTP payload (RFC 6184) begins a keyframe: an SPS, a PPS or an IDR slice,
/// alone, first in a STAP-A, or starting an FU-A.
fn starts_keyframe(payload: &[u8]) -> bool {
    let nal = match payload.first().map(|b| b & 0x1f) {
        Some(24) => payload.get(3).map(|b| b & 0x1f),
        Some(28) => payload
            .get(1)
            .filter(|fu| **fu & 0x80 != 0)
            .map(|fu| fu & 0x1f),
        other => other,
    };
    matches!(nal, Some(5 | 7 | 8))
}

/// Counts the peer's video and drops it: only a viewer ([`RtcSettings::receive_video`]) takes
/// any, the door's offers and answers refuse it. It asks once for a keyframe when the stream
/// starts, as any receiver joining a stream does.
async fn read_video(track: Arc<dyn TrackRemote>, counters: Arc<Counters>) {
    let mut asked = false;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                Counters::add(&counters.video_packets_received, 1);
                Counters::add(&counters.video_bytes_received, packet.payload.len() as u64);
                if !asked {
                    asked = true;
                    let state = if starts_keyframe(&packet.payload) {
                        FIRST_VIDEO_KEYFRAME
                    } else {
                        FIRST_VIDEO_DELTA
                    };
                    counters.first_video.store(state, Ordering::Relaxed);
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: packet.header.ssrc,
                    };
                    let _ = track.write_rtcp(vec![Box::new(pli)]).await;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_starts_are_recognised() {
        // STAP-A holding an SPS (length 2, then NAL header 0x67).
        assert!(starts_keyframe(&[24, 0, 2, 0x67, 0x42]));
        // FU-A starting an IDR slice; the same FU-A continuing is not a start.
        assert!(starts_keyframe(&[28, 0x85, 0]));
        assert!(!starts_keyframe(&[28, 0x05, 0]));
        // A single P slice.
        assert!(!starts_keyframe(&[0x41, 0x9a]));
        assert!(!starts_keyframe(&[]));
    }

    #[test]
    fn codecs_are_what_browsers_take() {
        let h264 = h264_codec();
        assert!(h264.sdp_fmtp_line.contains("packetization-mode=1"));
        assert!(h264.sdp_fmtp_line.contains("profile-level-id=42e01f"));
        let opus = opus_codec();
        assert_eq!((opus.clock_rate, opus.channels), (48_000, 2));
        assert!(opus.sdp_fmtp_line.contains("useinbandfec=1"));
    }
}
