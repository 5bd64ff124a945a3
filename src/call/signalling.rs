//! The events of a call in progress, as sync batches bring them: answers, rejects, candidates,
//! hangups, renegotiation; and the door's own candidates going out.

use super::*;

impl Core {
    pub(super) fn on_batch(&mut self, now: Instant, events: Vec<ReceivedEvent>) {
        let settled: HashSet<CallId> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.event.body,
                    CallEventBody::Hangup { .. }
                        | CallEventBody::Reject
                        | CallEventBody::Answer { .. }
                        | CallEventBody::SelectAnswer { .. }
                )
            })
            .map(|e| e.event.call_id.clone())
            .collect();
        for ev in events {
            // Our own echo: the same user and the same party (a user may call themself).
            if ev.sender == self.identity.user && ev.event.party_id == self.identity.party {
                continue;
            }
            if matches!(ev.event.body, CallEventBody::Invite { .. }) {
                if settled.contains(&ev.event.call_id) {
                    self.remember(ev.event.call_id.clone());
                    continue;
                }
                self.on_invite(now, ev);
            } else {
                self.on_event(now, ev);
            }
        }
    }

    /// Every event but an invite.
    pub(super) fn on_event(&mut self, now: Instant, ev: ReceivedEvent) {
        let Some(call) = self.call.as_ref() else {
            if matches!(
                ev.event.body,
                CallEventBody::Hangup { .. } | CallEventBody::Reject
            ) {
                // An invite for it may still arrive late: it must not ring.
                self.remember(ev.event.call_id.clone());
            }
            return;
        };
        let from_peer = call.is_from_peer(&ev);
        let leg = call.live_leg(&ev);
        let phase = call.phase;
        // Nobody outside the allow list gets a frame: while the door's call rings, what others
        // in a rung room send (an answer, a reject, candidates; their hangups never count) is
        // not looked at, so the answer chosen is always an allow-listed user's.
        if phase == Phase::RingingOut && leg.is_some() && !self.policy.may_call(&ev.sender) {
            if let CallEventBody::Answer { .. } | CallEventBody::Reject = ev.event.body {
                self.notice(format!(
                    "ignored {} from {} in {}: not on the allow list",
                    ev.event.body.event_type(),
                    ev.sender.0,
                    ev.room.0
                ));
            }
            return;
        }
        match &ev.event.body {
            CallEventBody::Invite { .. } => {}
            CallEventBody::Answer { answer } => match (phase, leg) {
                (Phase::RingingOut, Some(leg)) if answer.kind == SdpKind::Answer => {
                    self.on_first_answer(now, &ev, leg, answer.clone());
                }
                // Someone else answered the call that rings here.
                (Phase::RingingIn, _)
                    if call
                        .peer
                        .as_ref()
                        .is_some_and(|p| p.call_id == ev.event.call_id) =>
                {
                    self.finish(EndReason::AnsweredElsewhere);
                }
                _ => {}
            },
            CallEventBody::Candidates { candidates } => {
                let candidates: Vec<Candidate> =
                    candidates.iter().take(MAX_CANDIDATES).cloned().collect();
                if from_peer {
                    self.on_remote_candidates(candidates);
                } else if phase == Phase::RingingOut && leg.is_some() {
                    let Some(ActiveCall {
                        side: Side::Caller { unchosen, .. },
                        ..
                    }) = self.call.as_mut()
                    else {
                        return;
                    };
                    let key = (
                        ev.event.call_id.clone(),
                        ev.sender.clone(),
                        ev.event.party_id.clone(),
                    );
                    if unchosen.len() < MAX_BUFFERED_PARTIES || unchosen.contains_key(&key) {
                        let buffered = unchosen.entry(key).or_default();
                        let room = MAX_CANDIDATES.saturating_sub(buffered.len());
                        buffered.extend(candidates.into_iter().take(room));
                    }
                }
            }
            CallEventBody::SelectAnswer { selected_party_id } => {
                // Only the caller selects; the door is the callee when it has a peer that
                // invited it (a call it did not place).
                let we_are_callee = !call.is_caller();
                if from_peer && we_are_callee && *selected_party_id != self.identity.party {
                    self.finish(EndReason::AnsweredElsewhere);
                }
            }
            CallEventBody::Reject => {
                if let (Phase::RingingOut, Some(leg)) = (phase, leg) {
                    // Spec: the caller selects the reject like an answer (js-sdk does not, and
                    // does not need to). Only this room is done; the others still ring.
                    let room = ev.room.clone();
                    let call_id = ev.event.call_id.clone();
                    self.send(
                        &room,
                        call_id,
                        CallEventBody::SelectAnswer {
                            selected_party_id: ev.event.party_id.clone(),
                        },
                    );
                    let Some(ActiveCall {
                        side: Side::Caller { legs, .. },
                        ..
                    }) = self.call.as_mut()
                    else {
                        return;
                    };
                    if let Some(leg) = legs.get_mut(leg) {
                        leg.live = false;
                    }
                    if legs.iter().all(|l| !l.live) {
                        self.finish(EndReason::Rejected);
                    }
                } else if phase == Phase::RingingIn
                    && call
                        .peer
                        .as_ref()
                        .is_some_and(|p| p.call_id == ev.event.call_id)
                {
                    // Another callee declined the call that rings here: it is over for all.
                    self.finish(EndReason::AnsweredElsewhere);
                }
                // A reject after an answer was chosen is disregarded (spec).
            }
            CallEventBody::Hangup { reason } => {
                // Before an answer is chosen, a would-be callee's hangup is ignored: other
                // devices may still answer (js-sdk does the same).
                if from_peer {
                    let reason = reason.clone();
                    self.finish(EndReason::Hangup {
                        reason,
                        remote: true,
                    });
                }
            }
            CallEventBody::Negotiate {
                description,
                lifetime,
            } => {
                let fresh = ev.age.unwrap_or_default() < *lifetime;
                let up = matches!(phase, Phase::Connecting | Phase::Connected);
                if from_peer && fresh && up && description.sdp.len() <= MAX_SDP {
                    self.on_negotiate(description.clone());
                }
            }
            CallEventBody::SdpStreamMetadataChanged { .. } => {
                // The door shows nothing of the peer's streams; nothing changes for it.
            }
        }
    }

    pub(super) fn on_remote_candidates(&mut self, candidates: Vec<Candidate>) {
        let candidates = self.admit(candidates);
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if candidates.is_empty() {
            return;
        }
        if call.remote_description_set {
            let id = call.id.clone();
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(candidates),
            });
        } else {
            let room = MAX_CANDIDATES.saturating_sub(call.pending_remote.len());
            call.pending_remote
                .extend(candidates.into_iter().take(room));
        }
    }

    /// The peer's candidates that the call may use (see `candidates.rs`); what is dropped is
    /// logged once a call.
    pub(super) fn admit(&mut self, candidates: Vec<Candidate>) -> Vec<Candidate> {
        let Some(call) = self.call.as_mut() else {
            return Vec::new();
        };
        let admission = call.admitted.admit(candidates);
        if !admission.dropped.is_empty() && !call.told_dropped {
            call.told_dropped = true;
            let who = call
                .peer
                .as_ref()
                .map(|p| p.user.0.clone())
                .unwrap_or_default();
            let why: Vec<String> = admission
                .dropped
                .iter()
                .map(|(why, n)| format!("{n} {}", why.as_str()))
                .collect();
            self.notice(format!(
                "dropped ICE candidates from {who}: {} (further drops in this call are not logged)",
                why.join(", ")
            ));
        }
        admission.used
    }

    /// The peer renegotiates (or answers the door's renegotiation). The callee is polite.
    pub(super) fn on_negotiate(&mut self, description: SessionDescription) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match description.kind {
            SdpKind::Offer => {
                if call.negotiating && !call.polite {
                    return; // the impolite party ignores a colliding offer
                }
                call.negotiating = false;
            }
            SdpKind::Answer => {
                if !call.negotiating {
                    return;
                }
                call.negotiating = false;
            }
        }
        let id = call.id.clone();
        self.emit(Output::Rtc {
            call: id,
            command: RtcCommand::SetRemoteDescription(description),
        });
    }

    /// Sends what is queued of the local candidates, and the end of candidates once gathering
    /// is done (spec: clients must send it; js-sdk sometimes does not, so the door never waits
    /// for the peer's).
    pub(super) fn flush_candidates(&mut self) {
        self.timers.cancel(Timer::CandidateFlush);
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if !call.may_send_candidates {
            return;
        }
        let mut batch = std::mem::take(&mut call.local_queue);
        if call.gathering_done && !call.end_of_candidates_sent {
            call.end_of_candidates_sent = true;
            batch.push(Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_m_line_index: None,
            });
        }
        if batch.is_empty() {
            return;
        }
        if let Some(peer) = call.peer.clone() {
            self.send(
                &peer.room,
                peer.call_id,
                CallEventBody::Candidates { candidates: batch },
            );
        } else {
            self.send_to_live_legs(|| CallEventBody::Candidates {
                candidates: batch.clone(),
            });
        }
    }
}
