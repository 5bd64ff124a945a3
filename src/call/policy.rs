//! The door's policy: which rooms it rings, who may call it and what it does then.

use std::time::Duration;

use super::{RoomId, UserId};

/// What the door does with an incoming call from an allow-listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    AutoAnswer,
    Ring,
    Reject,
}

/// What the door does with a call offered to it, whatever signals it (an `m.call.invite`
/// today; a MatrixRTC ring next): the door's policy, asked by each kind of call. Glare (the
/// door's own call crossing the offer in the same room) is the signalling's to resolve first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The caller is not on the allow list: refused (told so only when the call is addressed
    /// to the door; a call to a whole room is left to its other members).
    Stranger,
    /// The door is in a call: busy.
    Busy,
    /// `[call] incoming = "reject"`.
    Reject,
    /// Ring on the door's speaker until a press answers (or the ring times out).
    Ring,
    /// Answer at once.
    Answer,
}

/// What a press does while a call is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressDuringCall {
    Ignore,
    Hangup,
}

/// Everything the core decides by. Built by the daemon from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The rooms a press rings, all in parallel.
    pub rooms: Vec<RoomId>,
    /// Who may call the door. Everybody else is rejected before any media is touched.
    pub allow: Vec<UserId>,
    pub incoming: Incoming,
    pub ring_timeout: Duration,
    pub max_length: Duration,
    pub video: bool,
    pub press_during_call: PressDuringCall,
}

/// The shortest invite lifetime the door sends: the spec's minimal recommended lifetime.
const MIN_LIFETIME: Duration = Duration::from_secs(90);

impl Policy {
    /// The `lifetime` of the door's invites: the ring timeout, but never below the minimum.
    pub fn invite_lifetime(&self) -> Duration {
        self.ring_timeout.max(MIN_LIFETIME)
    }

    /// Whether `user` may call the door.
    pub fn may_call(&self, user: &UserId) -> bool {
        self.allow.contains(user)
    }

    /// What the door does with a call `caller` offers it; `busy`: the door is in a call.
    pub fn offered(&self, caller: &UserId, busy: bool) -> Offered {
        if !self.may_call(caller) {
            Offered::Stranger
        } else if busy {
            Offered::Busy
        } else {
            match self.incoming {
                Incoming::Reject => Offered::Reject,
                Incoming::Ring => Offered::Ring,
                Incoming::AutoAnswer => Offered::Answer,
            }
        }
    }
}
