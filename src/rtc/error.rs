//! Why a call's WebRTC side fails. The message is what the log says and what
//! `RtcEvent::Failed` carries to the core, which hangs up.

use std::fmt;

use crate::media::MediaError;

#[derive(Debug)]
pub(super) enum RtcError {
    /// A step of the webrtc stack or of the call's own machinery failed: building the
    /// connection or a track, a description, a thread, a random id.
    Step { step: &'static str, why: String },
    /// The speaker's sink or the Opus encoder could not be made.
    Setup(MediaError),
    /// A part of the media the call does not go on without (`call::media`'s decision, or the
    /// Opus encoder failing mid-call): `part` is what the log calls it (`audio`, `video`).
    Media {
        part: &'static str,
        error: MediaError,
    },
    /// The peer takes no codec the call needs.
    NoCommonCodec(&'static str),
    /// A command that does not fit the call: a second offer or answer, an answer where an
    /// offer was due.
    Unexpected(&'static str),
}

impl RtcError {
    pub(super) fn step(step: &'static str, why: impl fmt::Display) -> RtcError {
        RtcError::Step {
            step,
            why: why.to_string(),
        }
    }
}

impl fmt::Display for RtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcError::Step { step, why } => write!(f, "{step}: {why}"),
            RtcError::Setup(e) => write!(f, "{e}"),
            RtcError::Media { part, error } => write!(f, "{part}: {error}"),
            RtcError::NoCommonCodec(m) | RtcError::Unexpected(m) => f.write_str(m),
        }
    }
}
