//! The door calls out: a press rings every configured room, each with a call id of its own, and
//! the first answer from someone on the allow list wins (the ring group's other rooms are hung
//! up). Glare with an incoming call replaces the door's call.

use super::*;

impl Core {
    pub(super) fn on_press(&mut self, now: Instant) {
        // Presses close together are one (a mashed button). The window is kept across a call
        // that a press ends, and forgotten when a call ends otherwise: a visitor pressing again
        // after a quick "no" calls again.
        let merged = self
            .last_press
            .is_some_and(|t| now.saturating_duration_since(t) < PRESS_MERGE);
        if !merged {
            match self.call.as_ref().map(|c| c.phase) {
                None => self.start_outgoing(now),
                Some(Phase::RingingIn) => self.answer(now),
                // Presses while ringing out are ignored: the visitor is already calling.
                Some(Phase::Preparing | Phase::RingingOut | Phase::Answering) => {}
                Some(Phase::Connecting | Phase::Connected) => match self.policy.press_during_call {
                    PressDuringCall::Ignore => {}
                    PressDuringCall::Hangup => self.hang_up(HangupReason::UserHangup),
                },
            }
        }
        self.last_press = Some(now);
    }

    pub(super) fn start_outgoing(&mut self, now: Instant) {
        if self.policy.rooms.is_empty() {
            self.status("No room to ring".to_owned());
            return;
        }
        self.next_call += 1;
        let id = CallId(format!("{}{}", self.call_seed, self.next_call));
        let legs = self
            .policy
            .rooms
            .iter()
            .enumerate()
            .map(|(i, room)| Leg {
                room: room.clone(),
                call_id: CallId(format!("{}r{i}", id.0)),
                live: true,
            })
            .collect();
        let side = Side::Caller {
            legs,
            unchosen: HashMap::new(),
        };
        self.call = Some(ActiveCall::new(id.clone(), Phase::Preparing, side));
        self.emit(Output::Rtc {
            call: id,
            command: RtcCommand::CreateOffer {
                video: self.policy.video,
            },
        });
        self.emit(Output::Device(DeviceCommand::Ringback(true)));
        self.status(format!("Calling {} room(s)", self.policy.rooms.len()));
        self.timers
            .set(Timer::RingOut, now + self.policy.ring_timeout);
    }

    /// Ends the door's outgoing call in favour of an incoming one (glare). `announce`: hang up
    /// the rooms that already have the door's invite.
    pub(super) fn replace_outgoing(&mut self, announce: bool) {
        if announce {
            self.send_to_live_legs(|| CallEventBody::Hangup {
                reason: HangupReason::UserHangup,
            });
        }
        let Some(call) = self.call.take() else { return };
        self.emit(Output::Rtc {
            call: call.id.clone(),
            command: RtcCommand::Close,
        });
        self.emit(Output::Device(DeviceCommand::Ringback(false)));
        self.emit(Output::CallEnded {
            call: call.id.clone(),
            reason: EndReason::Replaced,
        });
        self.remember_call(&call);
        self.timers.clear();
    }

    pub(super) fn on_first_answer(
        &mut self,
        now: Instant,
        ev: &ReceivedEvent,
        leg: usize,
        answer: SessionDescription,
    ) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Side::Caller { legs, unchosen } = &mut call.side else {
            return;
        };
        let Some(chosen) = legs.get(leg) else {
            return;
        };
        let peer = Peer {
            user: ev.sender.clone(),
            party: ev.event.party_id.clone(),
            room: chosen.room.clone(),
            call_id: chosen.call_id.clone(),
        };
        let key = (peer.call_id.clone(), peer.user.clone(), peer.party.clone());
        let buffered = unchosen.remove(&key).unwrap_or_default();
        unchosen.clear();
        for (i, l) in legs.iter_mut().enumerate() {
            if i != leg {
                l.live = false;
            }
        }
        let others: Vec<(RoomId, CallId)> = legs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leg)
            .map(|(_, l)| (l.room.clone(), l.call_id.clone()))
            .collect();
        call.peer = Some(peer.clone());
        call.phase = Phase::Connecting;
        call.remote_description_set = true;
        let id = call.id.clone();
        self.emit(Output::Rtc {
            call: id.clone(),
            command: RtcCommand::SetRemoteDescription(answer),
        });
        let buffered = self.admit(buffered);
        if !buffered.is_empty() {
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(buffered),
            });
        }
        self.send(
            &peer.room,
            peer.call_id.clone(),
            CallEventBody::SelectAnswer {
                selected_party_id: peer.party.clone(),
            },
        );
        // The ring group: the other rooms stop ringing.
        for (room, call_id) in others {
            self.send(
                &room,
                call_id,
                CallEventBody::Hangup {
                    reason: HangupReason::UserHangup,
                },
            );
        }
        self.emit(Output::Device(DeviceCommand::Ringback(false)));
        self.status(format!("Connecting to {}", peer.user.0));
        self.timers.cancel(Timer::RingOut);
        self.timers.set(Timer::Connect, now + CONNECT_TIMEOUT);
        self.timers
            .set(Timer::MaxLength, now + self.policy.max_length);
    }

    /// Sends one event to each room the door still rings (outgoing calls whose invite went out).
    pub(super) fn send_to_live_legs(&mut self, body: impl Fn() -> CallEventBody) {
        let Some(call) = &self.call else { return };
        if call.phase == Phase::Preparing {
            return; // no invite went out: nobody to tell
        }
        let legs: Vec<(RoomId, CallId)> = call
            .legs()
            .iter()
            .filter(|l| l.live)
            .map(|l| (l.room.clone(), l.call_id.clone()))
            .collect();
        for (room, call_id) in legs {
            self.send(&room, call_id, body());
        }
    }
}
