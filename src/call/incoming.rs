//! The door is called: who may call (allow list, the invite's age and lifetime, whether it is
//! addressed to the door), busy, glare, and the incoming policy (reject, ring, auto-answer).

use super::*;

impl Core {
    pub(super) fn on_invite(&mut self, now: Instant, ev: ReceivedEvent) {
        let CallEventBody::Invite {
            offer,
            lifetime,
            invitee,
        } = &ev.event.body
        else {
            return;
        };
        if self.is_ended(&ev.event.call_id)
            || self
                .call
                .as_ref()
                .is_some_and(|c| c.knows(&ev.event.call_id))
        {
            return;
        }
        // Addressed to the door: by name, or to a room where the door is the only other member
        // (how Element places a 1:1 call); an invite to a larger room is for anyone in it.
        let for_us = match invitee {
            Some(u) if *u != self.identity.user => return,
            Some(_) => true,
            None => ev.members.is_some_and(|n| n <= 2),
        };
        // Liveness: age at receipt plus time since (zero: the batch is handled as it arrives).
        // Without an age (some homeservers omit it) nothing shows the invite is fresh: one held
        // up by an outage must not ring, so it is refused.
        let left = ev.age.map(|age| lifetime.saturating_sub(age));
        let unusable = match left {
            None => Some("the homeserver gave no age, so it cannot be shown to be fresh"),
            Some(left) if left <= RING_GRACE => Some("it is stale"),
            Some(_) if offer.sdp.len() > MAX_SDP || offer.kind != SdpKind::Offer => {
                Some("its offer is not usable")
            }
            Some(_) => None,
        };
        let (Some(left), None) = (left, unusable) else {
            self.notice(format!(
                "ignored an invite from {} in {}: {}",
                ev.sender.0,
                ev.room.0,
                unusable.unwrap_or_default()
            ));
            self.remember(ev.event.call_id.clone());
            return;
        };
        // The door's policy decides (the same for every kind of call); glare, the door's own
        // call crossing this one in the same room, is this signalling's to resolve.
        match self.policy.offered(&ev.sender, self.call.is_some()) {
            Offered::Stranger => {
                // Nobody outside the allow-list gets a frame: reject a call addressed to the
                // door; an invite to the whole room is left to the others in it (a reject
                // would end it for everyone).
                if for_us {
                    self.send(&ev.room, ev.event.call_id.clone(), CallEventBody::Reject);
                }
                self.notice(format!(
                    "refused a call from {} in {}: not on the allow list{}",
                    ev.sender.0,
                    ev.room.0,
                    if for_us {
                        ""
                    } else {
                        " (the invite is for the whole room: left to its other members)"
                    }
                ));
                self.remember(ev.event.call_id.clone());
            }
            Offered::Busy => self.on_invite_while_busy(now, &ev, left, for_us),
            Offered::Reject => {
                if for_us {
                    self.send(&ev.room, ev.event.call_id.clone(), CallEventBody::Reject);
                }
                self.notice(format!(
                    "refused a call from {} in {}: the configuration rejects incoming calls",
                    ev.sender.0, ev.room.0
                ));
                self.remember(ev.event.call_id.clone());
            }
            Offered::Answer => self.take_incoming(now, &ev, left, true),
            Offered::Ring => self.take_incoming(now, &ev, left, false),
        }
    }

    /// An allowed caller's invite while the door is in a call: glare with the door's own call
    /// in the same room (spec, "Glare"), or busy.
    fn on_invite_while_busy(
        &mut self,
        now: Instant,
        ev: &ReceivedEvent,
        left: Duration,
        for_us: bool,
    ) {
        let Some(call) = &self.call else {
            return;
        };
        let glare_leg = call
            .legs()
            .iter()
            .find(|l| l.live && l.room == ev.room)
            .map(|l| l.call_id.clone());
        match (call.phase, glare_leg) {
            // Glare while preparing: drop ours, take theirs.
            (Phase::Preparing, Some(_)) => {
                self.replace_outgoing(false);
                self.take_incoming(now, ev, left, true);
            }
            // Glare after our invite went out: the lesser call id survives.
            (Phase::RingingOut, Some(ours)) => {
                if ev.event.call_id < ours {
                    self.replace_outgoing(true);
                    self.take_incoming(now, ev, left, true);
                } else {
                    self.send(
                        &ev.room,
                        ev.event.call_id.clone(),
                        CallEventBody::Hangup {
                            reason: HangupReason::UserHangup,
                        },
                    );
                    self.remember(ev.event.call_id.clone());
                }
            }
            // Busy.
            _ => {
                self.notice(format!(
                    "busy: a call from {} in {} was not taken",
                    ev.sender.0, ev.room.0
                ));
                if for_us {
                    self.send(
                        &ev.room,
                        ev.event.call_id.clone(),
                        CallEventBody::Hangup {
                            reason: HangupReason::UserBusy,
                        },
                    );
                }
                self.remember(ev.event.call_id.clone());
            }
        }
    }

    /// Takes an incoming call: answers it now, or rings until a press.
    pub(super) fn take_incoming(
        &mut self,
        now: Instant,
        ev: &ReceivedEvent,
        left: Duration,
        answer: bool,
    ) {
        let CallEventBody::Invite { offer, .. } = &ev.event.body else {
            return;
        };
        let side = Side::Callee {
            offer: Some(offer.clone()),
        };
        let mut call = ActiveCall::new(ev.event.call_id.clone(), Phase::RingingIn, side);
        call.peer = Some(Peer {
            user: ev.sender.clone(),
            party: ev.event.party_id.clone(),
            room: ev.room.clone(),
            call_id: ev.event.call_id.clone(),
        });
        call.polite = true;
        self.call = Some(call);
        if answer {
            self.answer(now);
        } else {
            self.emit(Output::Device(DeviceCommand::Ringtone(true)));
            self.status(format!("Ringing: {} is calling", ev.sender.0));
            // Ring until the ring timeout, but never past the invite's lifetime.
            let until = left.min(self.policy.ring_timeout);
            self.timers.set(Timer::RingIn, now + until);
        }
    }

    /// Answers the incoming call that is ringing.
    pub(super) fn answer(&mut self, now: Instant) {
        let video = self.policy.video;
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Side::Callee { offer } = &mut call.side else {
            return;
        };
        let Some(offer) = offer.take() else {
            return;
        };
        call.phase = Phase::Answering;
        call.remote_description_set = true;
        let id = call.id.clone();
        let pending = std::mem::take(&mut call.pending_remote);
        let who = call
            .peer
            .as_ref()
            .map(|p| p.user.0.clone())
            .unwrap_or_default();
        self.timers.cancel(Timer::RingIn);
        self.emit(Output::Device(DeviceCommand::Ringtone(false)));
        self.emit(Output::Rtc {
            call: id.clone(),
            command: RtcCommand::CreateAnswer { offer, video },
        });
        if !pending.is_empty() {
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(pending),
            });
        }
        self.status(format!("Answering {who}"));
        self.timers.set(Timer::Connect, now + CONNECT_TIMEOUT);
    }
}
