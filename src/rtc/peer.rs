//! The peer connection: the codecs the door offers, where its sockets go, the builder, the
//! handler that turns the connection's callbacks into signals for the call's task, and the
//! door's send tracks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rtc::interceptor::Registry;
use ::rtc::media::Sample;
use ::rtc::media_stream::MediaStreamTrack;
use ::rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use ::rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use ::rtc::rtp_transceiver::PayloadType;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceConnectionState,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use super::call::Signal;
use super::error::RtcError;
use super::{dtmf, feedback, keyframe, IceServer};

/// The payload types the door offers. A peer's offer brings its own, which the answer keeps.
pub(super) const PT_H264: PayloadType = 102;
pub(super) const PT_OPUS: PayloadType = 111;

/// The H.264 the door sends: constrained baseline, level 3.1, non-interleaved.
pub(super) fn h264_codec() -> RTCRtpCodec {
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
pub(super) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A random number from the OS (ids of the door's stream and tracks, its SSRCs). Fails only
/// where the OS has no generator to give.
pub(super) fn random_u64() -> Result<u64, RtcError> {
    getrandom::u64().map_err(|e| RtcError::step("random id", e))
}

/// The peer connection's callbacks, turned into signals for the call's task. They run on the
/// connection's driver and must not block: each is one unbounded send.
pub(super) struct Handler {
    pub(super) signals: mpsc::UnboundedSender<Signal>,
    pub(super) call: String,
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
    let routable = ::rtc::shared::ifaces::ifaces()
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

pub(super) async fn build_peer_connection(
    ice_servers: &[IceServer],
    handler: Handler,
    video_feedback: feedback::Sink,
) -> Result<Arc<dyn PeerConnection>, RtcError> {
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
            .map_err(|e| RtcError::step("codec", e))?;
    }
    // NACK both ways, sender and receiver reports, TWCC feedback for the peer's estimator; then
    // the keyframe requests up to the application.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .map_err(|e| RtcError::step("interceptors", e))?
        .with(keyframe::slot(), keyframe::KeyframeRequests::default())
        .with(
            feedback::slot(),
            feedback::VideoFeedback::new(video_feedback),
        );
    let setting_engine = SettingEngineBuilder::new()
        // mDNS needs a multicast route, which a door (or a test namespace) may not have: with
        // it on, building the connection fails. The door's candidates are plain addresses.
        .with_multicast_dns_mode(::rtc::ice::mdns::MulticastDnsMode::Disabled)
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
        .map_err(|e| RtcError::step("peer connection", e))?;
    Ok(Arc::new(pc))
}

/// A local track and what sending on it needs.
pub(super) struct SendTrack {
    pub(super) track: Arc<TrackLocalStaticSample>,
    pub(super) sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mime: &'static str,
    /// The payload type the peer accepted, once negotiated; `None`: not (or not yet) negotiated.
    pub(super) payload_type: Option<PayloadType>,
}

impl SendTrack {
    pub(super) async fn add(
        pc: &Arc<dyn PeerConnection>,
        stream_id: &str,
        codec: RTCRtpCodec,
        kind: RtpCodecKind,
        mime: &'static str,
    ) -> Result<SendTrack, RtcError> {
        let ssrc = random_u64()? as u32;
        let track = MediaStreamTrack::new(
            stream_id.to_owned(),
            format!("{kind}-{:016x}", random_u64()?),
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
                .map_err(|e| RtcError::step("local track", e))?,
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| RtcError::step("add track", e))?;
        Ok(SendTrack {
            track,
            sender,
            ssrc,
            mime,
            payload_type: None,
        })
    }

    /// Reads the payload type the last negotiation settled on (it is the peer's when the peer
    /// offered, not the one registered).
    pub(super) async fn refresh(&mut self) {
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

    pub(super) async fn write(&self, data: Vec<u8>, captured: Instant, duration: Duration) -> bool {
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
