//! What a call does when a part of its media fails: the WebRTC adapter asks
//! [`on_media_failure`] and carries out the answer, so that a change of this policy (say,
//! hanging up when the camera fails) is made here and not in the adapter.
//!
//! Today every part is one the call can go on without: a visitor who is seen but not heard (or
//! heard but not seen) can still be answered, told to use the keypad, or let in. The station
//! shows the failed device in the status either way (`DeviceReport`).

/// A part of a call's media that failed, as the WebRTC adapter meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPart {
    /// The camera (or its encoder): it did not open, or it stopped mid-call.
    Camera,
    /// The microphone: it did not open, or it stopped mid-call.
    Microphone,
    /// The peer takes none of the door's video codecs (H.264).
    PeerVideo,
}

/// What the call does then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Goes on without it: audio only (the camera, the peer's video), silence sent (the
    /// microphone).
    GoOnWithout,
    /// Ends: the adapter reports the call failed (`RtcEvent::Failed`) and the core hangs up.
    EndCall,
}

/// See the module.
pub fn on_media_failure(part: MediaPart) -> OnFailure {
    match part {
        MediaPart::Camera | MediaPart::Microphone | MediaPart::PeerVideo => OnFailure::GoOnWithout,
    }
}
