//! How a call ends: the door hangs up (telling whoever needs telling) or the call is finished
//! locally; the ids of ended calls are remembered so that late events never ring again.

use super::*;

impl Core {
    /// The door ends the call, telling whoever needs telling.
    pub(super) fn hang_up(&mut self, reason: HangupReason) {
        let Some(call) = &self.call else { return };
        match call.phase {
            Phase::Preparing | Phase::RingingOut => {
                self.send_to_live_legs(|| CallEventBody::Hangup {
                    reason: reason.clone(),
                });
            }
            // Ringing here: stop; the caller's own timeout ends it there.
            Phase::RingingIn => {}
            // Our answer has not gone out: a reject is what a caller that has seen no answer
            // listens to (js-sdk ignores hangups from callees it has not chosen).
            Phase::Answering => {
                if let Some(peer) = call.peer.clone() {
                    self.send(&peer.room, peer.call_id, CallEventBody::Reject);
                }
            }
            Phase::Connecting | Phase::Connected => {
                if let Some(peer) = call.peer.clone() {
                    self.send(
                        &peer.room,
                        peer.call_id,
                        CallEventBody::Hangup {
                            reason: reason.clone(),
                        },
                    );
                }
            }
        }
        self.finish(EndReason::Hangup {
            reason,
            remote: false,
        });
    }

    /// Tears the call down locally; whatever had to be sent was sent by the caller of this.
    pub(super) fn finish(&mut self, reason: EndReason) {
        let Some(call) = self.call.take() else { return };
        self.timers.clear();
        self.last_press = None;
        self.emit(Output::Rtc {
            call: call.id.clone(),
            command: RtcCommand::Close,
        });
        match call.phase {
            Phase::Preparing | Phase::RingingOut => {
                self.emit(Output::Device(DeviceCommand::Ringback(false)))
            }
            Phase::RingingIn => self.emit(Output::Device(DeviceCommand::Ringtone(false))),
            _ => {}
        }
        self.emit(Output::CallEnded {
            call: call.id.clone(),
            reason,
        });
        self.remember_call(&call);
        self.status("Idle".to_owned());
    }

    pub(super) fn remember_call(&mut self, call: &ActiveCall) {
        self.remember(call.id.clone());
        for leg in call.legs() {
            self.remember(leg.call_id.clone());
        }
        if let Some(p) = &call.peer {
            self.remember(p.call_id.clone());
        }
    }

    pub(super) fn remember(&mut self, call_id: CallId) {
        if self.ended.contains(&call_id) {
            return;
        }
        if self.ended.len() == REMEMBERED_CALLS {
            self.ended.pop_front();
        }
        self.ended.push_back(call_id);
    }

    pub(super) fn is_ended(&self, call_id: &CallId) -> bool {
        self.ended.contains(call_id)
    }
}
