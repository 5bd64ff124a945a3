//! The WebRTC side of the call: the local descriptions the adapter made (the invite, the answer,
//! renegotiation), local candidates, the connection's state, keys the peer pressed.

use super::*;

impl Core {
    pub(super) fn on_rtc(&mut self, now: Instant, id: CallId, event: RtcEvent) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.id != id {
            return;
        }
        match event {
            RtcEvent::LocalDescription(sdp) => self.on_local_description(now, sdp),
            RtcEvent::LocalCandidates(candidates) => {
                let first = call.local_queue.is_empty();
                call.local_queue
                    .extend(candidates.into_iter().filter(|c| !c.candidate.is_empty()));
                if call.may_send_candidates && first {
                    self.timers
                        .set(Timer::CandidateFlush, now + CANDIDATE_BATCH);
                }
            }
            RtcEvent::GatheringComplete => {
                call.gathering_done = true;
                if call.may_send_candidates {
                    self.flush_candidates();
                }
            }
            RtcEvent::Connection(state) => self.on_connection(now, state),
            RtcEvent::Failed { .. } => self.hang_up(HangupReason::UnknownError),
            RtcEvent::Dtmf(key) => self.on_key(now, key),
        }
    }

    pub(super) fn on_local_description(&mut self, now: Instant, sdp: SessionDescription) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match (call.phase, sdp.kind) {
            (Phase::Preparing, SdpKind::Offer) => {
                call.phase = Phase::RingingOut;
                call.may_send_candidates = true;
                let lifetime = self.policy.invite_lifetime();
                self.send_to_live_legs(|| CallEventBody::Invite {
                    offer: sdp.clone(),
                    lifetime,
                    invitee: None,
                });
                self.flush_candidates();
            }
            (Phase::Answering, SdpKind::Answer) => {
                call.phase = Phase::Connecting;
                call.may_send_candidates = true;
                let Some(peer) = call.peer.clone() else {
                    return;
                };
                self.send(
                    &peer.room,
                    peer.call_id,
                    CallEventBody::Answer { answer: sdp },
                );
                self.flush_candidates();
                self.status(format!("Connecting to {}", peer.user.0));
                self.timers
                    .set(Timer::MaxLength, now + self.policy.max_length);
            }
            (Phase::Connecting | Phase::Connected, kind) => {
                // Renegotiation: the door's own offer (an ICE restart), or its answer to the
                // peer's offer.
                if kind == SdpKind::Offer {
                    call.negotiating = true;
                }
                let Some(peer) = call.peer.clone() else {
                    return;
                };
                self.send(
                    &peer.room,
                    peer.call_id,
                    CallEventBody::Negotiate {
                        description: sdp,
                        lifetime: NEGOTIATE_LIFETIME,
                    },
                );
            }
            _ => {}
        }
    }

    pub(super) fn on_connection(&mut self, now: Instant, state: ConnectionState) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match state {
            ConnectionState::Connected => {
                if matches!(call.phase, Phase::Connecting | Phase::Connected) {
                    call.phase = Phase::Connected;
                    let who = call
                        .peer
                        .as_ref()
                        .map(|p| p.user.0.clone())
                        .unwrap_or_default();
                    self.timers.cancel(Timer::Connect);
                    self.status(format!("In call with {who}"));
                }
            }
            ConnectionState::Disconnected => {
                if call.phase == Phase::Connected && self.timers.at(Timer::Connect).is_none() {
                    self.timers.set(Timer::Connect, now + RECONNECT_GRACE);
                }
            }
            ConnectionState::Failed => {
                if matches!(
                    call.phase,
                    Phase::Connecting | Phase::Connected | Phase::Answering
                ) {
                    self.hang_up(HangupReason::IceFailed);
                }
            }
            ConnectionState::Connecting => {}
        }
    }
}
