//! The VoIP events (spec v1, MSC2746) as the core sees them: already parsed, typed, and free of
//! any Matrix library. The Matrix adapter translates between these and ruma's `m.call.*` types.

use std::time::Duration;

use super::{CallId, PartyId, RoomId, UserId};

/// The version the door speaks, and sends as a string.
pub const VERSION: &str = "1";

/// One call event, to send or as received.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: CallId,
    pub party_id: PartyId,
    pub body: CallEventBody,
}

/// The type-specific part of a call event.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEventBody {
    Invite {
        offer: SessionDescription,
        lifetime: Duration,
        /// Present only when the caller names one callee.
        invitee: Option<UserId>,
    },
    Answer {
        answer: SessionDescription,
    },
    Candidates {
        candidates: Vec<Candidate>,
    },
    SelectAnswer {
        selected_party_id: PartyId,
    },
    Reject,
    Negotiate {
        description: SessionDescription,
        lifetime: Duration,
    },
    Hangup {
        reason: HangupReason,
    },
    /// `m.call.sdp_stream_metadata_changed`: the peer's streams changed purpose or mute state.
    SdpStreamMetadataChanged {
        streams: Vec<(String, StreamPurpose)>,
    },
}

impl CallEventBody {
    /// The event type on the wire.
    pub fn event_type(&self) -> &'static str {
        match self {
            CallEventBody::Invite { .. } => "m.call.invite",
            CallEventBody::Answer { .. } => "m.call.answer",
            CallEventBody::Candidates { .. } => "m.call.candidates",
            CallEventBody::SelectAnswer { .. } => "m.call.select_answer",
            CallEventBody::Reject => "m.call.reject",
            CallEventBody::Negotiate { .. } => "m.call.negotiate",
            CallEventBody::Hangup { .. } => "m.call.hangup",
            CallEventBody::SdpStreamMetadataChanged { .. } => "m.call.sdp_stream_metadata_changed",
        }
    }
}

/// An event as it arrived from a sync, with what the core needs to judge it. Events whose
/// content could not be parsed never get here: the Matrix adapter logs and drops them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub room: RoomId,
    pub sender: UserId,
    /// The event's `age` as the homeserver reported it, when it did.
    pub age: Option<Duration>,
    /// Whether it arrived encrypted.
    pub encrypted: bool,
    /// How many users were joined to the room when the event arrived (the door included), when
    /// the Matrix adapter knew it: an invite to a room of two is addressed to the door.
    pub members: Option<u64>,
    pub event: CallEvent,
}

/// An SDP offer or answer, with the stream metadata that travels beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    pub kind: SdpKind,
    pub sdp: String,
    /// `sdp_stream_metadata`: the purpose of each stream id.
    pub streams: Vec<(String, StreamPurpose)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    Offer,
    Answer,
}

/// `m.usermedia` or `m.screenshare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPurpose {
    UserMedia,
    ScreenShare,
}

/// One ICE candidate. An empty `candidate` is the peer's end of candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_m_line_index: Option<u16>,
}

/// The hangup reasons of the spec. A missing reason means `user_hangup`; an unknown one is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    IceFailed,
    IceTimeout,
    InviteTimeout,
    UserHangup,
    UserBusy,
    UserMediaFailed,
    UnknownError,
    Other(String),
}

impl HangupReason {
    /// The reason as it is written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            HangupReason::IceFailed => "ice_failed",
            HangupReason::IceTimeout => "ice_timeout",
            HangupReason::InviteTimeout => "invite_timeout",
            HangupReason::UserHangup => "user_hangup",
            HangupReason::UserBusy => "user_busy",
            HangupReason::UserMediaFailed => "user_media_failed",
            HangupReason::UnknownError => "unknown_error",
            HangupReason::Other(s) => s,
        }
    }

    /// The reason as read from the wire; `None` (absent) means `user_hangup`.
    pub fn from_wire(s: Option<&str>) -> HangupReason {
        match s {
            None | Some("user_hangup") => HangupReason::UserHangup,
            Some("ice_failed") => HangupReason::IceFailed,
            Some("ice_timeout") => HangupReason::IceTimeout,
            Some("invite_timeout") => HangupReason::InviteTimeout,
            Some("user_busy") => HangupReason::UserBusy,
            Some("user_media_failed") => HangupReason::UserMediaFailed,
            Some("unknown_error") => HangupReason::UnknownError,
            Some(other) => HangupReason::Other(other.to_owned()),
        }
    }
}
