//! The WebRTC adapter (the `webrtc` crate, pinned): one peer connection per call.
//!
//! It carries out [`crate::call::RtcCommand`]s (offer, answer, remote description, remote
//! candidates, close) and reports [`crate::call::RtcEvent`]s (local description, local candidates,
//! connection state). It decides nothing: when to offer, which candidates to buffer and when a
//! failed connection ends a call are the core's rules. Media tracks come from [`crate::media`].
