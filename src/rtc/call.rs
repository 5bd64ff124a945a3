//! One call: its task, its peer connection, its media loops.
//!
//! Everything a call does happens in its task, one thing at a time: commands from the core,
//! signals from the peer connection's handler (candidates, state changes, remote tracks), encoded
//! frames from the encoder thread, and the two media clocks. Routing the handler's callbacks
//! through the task (rather than reporting from the callbacks) keeps the reports in order: a
//! local description is always reported before the candidates gathered for it.
//!
//! This file holds the task (its command loop), the call's parts ([`PeerCall`]: opening the
//! devices, building the connection with its tracks, closing it all) and what the connection
//! reports. The rest of a call's work is beside it: [`super::peer`] (the connection and its
//! tracks), [`super::negotiation`], [`super::video`], [`super::audio`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use ::rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState};

use super::audio::AUDIO_FRAME;
use super::error::RtcError;
use super::feedback::{self, Feedback, FeedbackLog};
use super::peer::{
    build_peer_connection, h264_codec, opus_codec, random_u64, Handler, SendTrack, PT_OPUS,
};
use super::video::{spawn_encoder, watch_keyframe_requests, EncodedFrame, Video};
use super::{dtmf, Counters, RtcSettings};
use crate::call::bitrate::BitrateController;
use crate::call::media::{on_media_failure, MediaPart, OnFailure};
use crate::call::video::{Next, VideoPacer};
use crate::call::{CallId, Candidate, ConnectionState, RtcCommand, RtcEvent, SdpKind};
use crate::media::h264;
use crate::media::opus_codec::OpusEncoder;
use crate::media::source::Pacing;
use crate::media::{
    open_audio_sink, open_call_source, open_h264, AudioSink, AudioSource, DeviceReport, MediaError,
    Part, Silence, Tee, FRAME_SAMPLES,
};

/// How long a call waits for its microphone to open (ALSA's own open is bounded by
/// [`crate::media::alsa::OPEN_TIMEOUT`]; the echo canceller is set up after it).
const MICROPHONE_OPEN_LIMIT: Duration = Duration::from_secs(5);
/// How long a call waits for its camera to open (a V4L2 camera's formats, a hardware
/// encoder, a command started).
const CAMERA_OPEN_LIMIT: Duration = Duration::from_secs(10);

/// What reaches a call's task besides the core's commands.
pub(super) enum Signal {
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
        .map_err(|e| MediaError::Failed(format!("{what}: no thread to open it: {e}")))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(_)) => Err(MediaError::Failed(format!("{what}: opening it panicked"))),
        Err(_) => Err(MediaError::Open(format!(
            "{what}: not open after {}s",
            limit.as_secs()
        ))),
    }
}

/// A call as its task sees it. See the module.
pub(super) struct CallTask {
    pub(super) id: CallId,
    pub(super) settings: RtcSettings,
    pub(super) events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
    pub(super) devices: Option<mpsc::UnboundedSender<DeviceReport>>,
    pub(super) counters: Arc<Counters>,
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

    pub(super) fn report(&self, event: RtcEvent) {
        let _ = self.events.send((self.id.clone(), event));
    }

    /// The call cannot go on without what failed (see [`crate::call::media`]): the core
    /// hangs up.
    pub(super) fn fail(&self, error: RtcError) {
        log::warn!(call_id = self.id.0.as_str(); "{error}; the call cannot go on without it");
        self.report(RtcEvent::Failed {
            reason: error.to_string(),
        });
    }

    /// Whether `part` works, for the daemon's status (and, when it failed, the core).
    pub(super) fn device(&self, part: Part, problem: Option<&MediaError>) {
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
        let mut call = match PeerCall::open(&self, video, signals_tx).await {
            Ok(call) => call,
            Err(e) => {
                log::warn!(call_id = self.id.0.as_str(); "cannot start the call's media: {e}");
                self.report(RtcEvent::Failed {
                    reason: e.to_string(),
                });
                return;
            }
        };
        call.started = started;
        if let Err(e) = call.negotiate_first(offer, &mut signals).await {
            log::warn!(call_id = self.id.0.as_str(); "cannot negotiate: {e}");
            call.task.report(RtcEvent::Failed {
                reason: e.to_string(),
            });
            call.close().await;
            return;
        }

        let frame_interval = call
            .video
            .as_ref()
            .map_or(Duration::from_secs(1) / 15, |v| v.pacer.frame_interval());
        let mut video_tick = tokio::time::interval(frame_interval);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut audio_tick = tokio::time::interval(AUDIO_FRAME);
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let sending_video =
                call.sending && call.video.as_ref().is_some_and(|v| v.pacer.ticks());
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
pub(super) struct PeerCall<'a> {
    pub(super) task: &'a CallTask,
    pub(super) started: Instant,
    pub(super) pc: Arc<dyn PeerConnection>,
    pub(super) signals: mpsc::UnboundedSender<Signal>,
    /// The remote track readers and the keyframe-request watcher.
    pub(super) helpers: JoinSet<()>,
    pub(super) stream_id: String,
    /// The first m-line's mid, which the door's candidates name (everything is bundled).
    pub(super) first_mid: Option<String>,
    pub(super) audio: SendTrack,
    pub(super) audio_source: Box<dyn AudioSource>,
    pub(super) audio_encoder: OpusEncoder,
    pub(super) audio_frame: Vec<i16>,
    /// The speaker, until the first remote audio track takes it.
    pub(super) sink: Option<Box<dyn AudioSink>>,
    pub(super) video: Option<Video>,
    /// Media goes out: the connection is up (or only disconnected, which may come back).
    pub(super) sending: bool,
    pub(super) reported: Option<ConnectionState>,
}

impl<'a> PeerCall<'a> {
    /// Opens the devices, builds the peer connection with the door's tracks and starts the
    /// encoder. Nothing to clean up when this fails (the connection is closed here).
    async fn open(
        task: &'a CallTask,
        video: bool,
        signals: mpsc::UnboundedSender<Signal>,
    ) -> Result<PeerCall<'a>, RtcError> {
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
        // What a device that cannot be opened costs the call is `call::media`'s decision (today:
        // a silent call, an audio call).
        let audio_source: Box<dyn AudioSource> = match microphone {
            Ok(source) => {
                task.device(Part::Microphone, None);
                source
            }
            Err(e) => match on_media_failure(MediaPart::Microphone) {
                OnFailure::GoOnWithout => {
                    log::warn!(call_id = task.id.0.as_str(); "audio: {e}; the call goes on without the microphone, sending silence");
                    task.device(Part::Microphone, Some(&e));
                    Box::new(Silence)
                }
                OnFailure::EndCall => {
                    task.device(Part::Microphone, Some(&e));
                    return Err(RtcError::Media {
                        part: "audio",
                        error: e,
                    });
                }
            },
        };
        let sink: Box<dyn AudioSink> = Box::new(Tee(
            open_audio_sink(&media.playback).map_err(RtcError::Setup)?,
            task.counters.remote_audio.clone(),
        ));
        let video_source = match camera {
            Some((Ok(source), settings)) => {
                task.device(Part::Camera, None);
                Some((source, settings))
            }
            Some((Err(e), _)) => match on_media_failure(MediaPart::Camera) {
                OnFailure::GoOnWithout => {
                    log::warn!(call_id = task.id.0.as_str(); "video: {e}; the call goes on without video");
                    task.device(Part::Camera, Some(&e));
                    None
                }
                OnFailure::EndCall => {
                    task.device(Part::Camera, Some(&e));
                    return Err(RtcError::Media {
                        part: "video",
                        error: e,
                    });
                }
            },
            None => None,
        };
        let audio_encoder = OpusEncoder::new().map_err(RtcError::Setup)?;

        let stream_id = format!("door-{:016x}", random_u64()?);
        let handler = Handler {
            signals: signals.clone(),
            call: task.id.0.clone(),
        };
        let feedback_signals = signals.clone();
        let video_feedback: feedback::Sink = Box::new(move |fb| {
            let _ = feedback_signals.send(Signal::Feedback(fb));
        });
        let pc = build_peer_connection(&task.settings.ice_servers, handler, video_feedback).await?;
        let want_video = video_source.is_some();
        let tracks = async {
            let audio = SendTrack::add(
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
                    SendTrack::add(
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
            Ok::<_, RtcError>((audio, video))
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
                let mut pacer = if push {
                    VideoPacer::push(settings.fps)
                } else {
                    VideoPacer::pull(settings.fps)
                };
                // Warm up: the camera's first frame and the encoder's initialisation happen
                // now, off the connection's critical path. This frame is not sent.
                if let Next::Encode { keyframe } = pacer.warm_up() {
                    let _ = jobs.send(keyframe);
                }
                helpers.spawn(watch_keyframe_requests(
                    Arc::clone(&out.track),
                    signals.clone(),
                ));
                Some(Video {
                    out,
                    jobs,
                    thread_done,
                    pacer,
                    rate,
                    rate_to_encoder,
                    feedback: FeedbackLog::default(),
                })
            }
            _ => None,
        };
        Ok(PeerCall {
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

    async fn command(&mut self, command: RtcCommand) {
        let result = match command {
            RtcCommand::CreateOffer { .. } | RtcCommand::CreateAnswer { .. } => Err(
                RtcError::Unexpected("the call already has a peer connection"),
            ),
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
        if let Err(e) = result {
            log::warn!(call_id = self.task.id.0.as_str(); "WebRTC: {e}");
            self.task.report(RtcEvent::Failed {
                reason: e.to_string(),
            });
        }
    }

    pub(super) async fn signal(&mut self, signal: Signal) {
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
                    video.pacer.keyframe_requested();
                }
                self.next_frame(false);
            }
            Signal::Feedback(fb) => self.video_feedback(fb),
            Signal::Encoded(result) => self.encoded(result).await,
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
                        video.pacer.connected();
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
            let rates = (!video.pacer.is_push()).then_some((&summary, floor, cap));
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
