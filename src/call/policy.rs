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
}
