//! Negotiation: the first offer (with the candidates gathered by then) or the answer to the
//! peer's offer, the peer's answer, renegotiation by a later offer, the one-way video the door
//! asks for, the payload types settled on, the peer's candidates.

use std::time::Duration;

use ::rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverId};
use tokio::sync::mpsc;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

use super::call::{PeerCall, Signal};
use super::error::RtcError;
use crate::call::media::{on_media_failure, MediaPart, OnFailure};
use crate::call::{Candidate, RtcEvent, SdpKind, SessionDescription, StreamPurpose};

/// How long the first offer waits for gathering to finish (host candidates take a few
/// milliseconds; a TURN allocation may take longer, and then trickles after the invite).
const OFFER_GATHERING: Duration = Duration::from_millis(150);

impl PeerCall<'_> {
    pub(super) fn local_description(&mut self, kind: SdpKind, sdp: String) {
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
    pub(super) async fn negotiate_first(
        &mut self,
        offer: Option<SessionDescription>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
    ) -> Result<(), RtcError> {
        match offer {
            None => {
                self.one_way_video().await?;
                let offer = self
                    .pc
                    .create_offer(None)
                    .await
                    .map_err(|e| RtcError::step("create offer", e))?;
                self.pc
                    .set_local_description(offer.clone())
                    .await
                    .map_err(|e| RtcError::step("set local offer", e))?;
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
            Some(_) => Err(RtcError::Unexpected(
                "CreateAnswer needs an offer, got an answer",
            )),
        }
    }

    /// Applies the peer's offer, answers it and reports the answer.
    pub(super) async fn answer(&mut self, offer: SessionDescription) -> Result<(), RtcError> {
        let offer = RTCSessionDescription::offer(offer.sdp)
            .map_err(|e| RtcError::step("remote offer", e))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| RtcError::step("remote offer", e))?;
        self.one_way_video().await?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| RtcError::step("create answer", e))?;
        self.pc
            .set_local_description(answer.clone())
            .await
            .map_err(|e| RtcError::step("set local answer", e))?;
        self.local_description(SdpKind::Answer, answer.sdp);
        self.negotiated().await
    }

    /// The door has no screen (see [`RtcSettings::receive_video`]): before its offer, and
    /// after each offer of the peer is applied, its video transceiver is set to send only and
    /// every other one in the negotiation but its audio (the peer's camera or screen share
    /// that matched nothing of the door's, a second audio track) to inactive. A transceiver not
    /// in this negotiation (the door's video in a voice call) is left as it was added, to send
    /// and receive, so that the peer's video in a later offer is matched with it and answered.
    pub(super) async fn one_way_video(&mut self) -> Result<(), RtcError> {
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
                    .map_err(|e| RtcError::step("transceiver", e))?
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
                .map_err(|e| RtcError::step("transceiver direction", e))?;
        }
        Ok(())
    }

    /// After each completed negotiation: what the senders send with. No audio codec in common
    /// is a failed call; no video codec in common is an audio call.
    pub(super) async fn negotiated(&mut self) -> Result<(), RtcError> {
        self.audio.refresh().await;
        if let Some(video) = &mut self.video {
            video.out.refresh().await;
            if video.out.payload_type.is_none() {
                match on_media_failure(MediaPart::PeerVideo) {
                    OnFailure::GoOnWithout => {
                        log::info!(call_id = self.task.id.0.as_str(); "the peer takes no H.264 video: audio only");
                    }
                    OnFailure::EndCall => {
                        return Err(RtcError::NoCommonCodec("the peer takes no H.264 video"))
                    }
                }
            }
        }
        if self.audio.payload_type.is_none() {
            return Err(RtcError::NoCommonCodec(
                "no audio codec in common with the peer (the door sends Opus)",
            ));
        }
        Ok(())
    }

    pub(super) async fn apply_answer(
        &mut self,
        answer: SessionDescription,
    ) -> Result<(), RtcError> {
        let answer = RTCSessionDescription::answer(answer.sdp)
            .map_err(|e| RtcError::step("remote answer", e))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| RtcError::step("remote answer", e))?;
        self.negotiated().await
    }

    /// A candidate the connection cannot use (an mDNS name, a TCP or IPv6 one it does not
    /// handle) is the peer's business, not a failure: it is logged and skipped.
    pub(super) async fn add_candidates(&mut self, candidates: Vec<Candidate>) {
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
}
