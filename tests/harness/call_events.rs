//! One of each `m.call.*` event body the door sends, with the optional parts both present and
//! absent: what the wire translation and the Matrix adapter are checked against. Loaded on its
//! own (`#[path]`) by tests that need none of the network harness.
#![allow(dead_code)]

use std::time::Duration;

use intercom::call::{
    CallEventBody, Candidate, HangupReason, PartyId, SdpKind, SessionDescription, StreamPurpose,
    UserId,
};

/// A description with two streams, one of each purpose.
pub fn sdp(kind: SdpKind) -> SessionDescription {
    SessionDescription {
        kind,
        sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".into(),
        streams: vec![
            ("cam".into(), StreamPurpose::UserMedia),
            ("screen".into(), StreamPurpose::ScreenShare),
        ],
    }
}

/// Every body, in this order: an invite to anyone (90 s), an invite to bob (60 s), an answer,
/// candidates (one, then the end of candidates), select_answer, reject, a negotiate offer
/// (60 s) and answer (30 s), a hangup with a reason of the spec and one of nobody's, and
/// sdp_stream_metadata_changed.
pub fn every_body() -> Vec<CallEventBody> {
    vec![
        CallEventBody::Invite {
            offer: sdp(SdpKind::Offer),
            lifetime: Duration::from_secs(90),
            invitee: None,
        },
        CallEventBody::Invite {
            offer: sdp(SdpKind::Offer),
            lifetime: Duration::from_millis(60000),
            invitee: Some(UserId("@bob:localhost".into())),
        },
        CallEventBody::Answer {
            answer: sdp(SdpKind::Answer),
        },
        CallEventBody::Candidates {
            candidates: vec![
                Candidate {
                    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                },
                Candidate {
                    candidate: String::new(),
                    sdp_mid: None,
                    sdp_m_line_index: None,
                },
            ],
        },
        CallEventBody::SelectAnswer {
            selected_party_id: PartyId("PEERDEVICE".into()),
        },
        CallEventBody::Reject,
        CallEventBody::Negotiate {
            description: sdp(SdpKind::Offer),
            lifetime: Duration::from_secs(60),
        },
        CallEventBody::Negotiate {
            description: sdp(SdpKind::Answer),
            lifetime: Duration::from_secs(30),
        },
        CallEventBody::Hangup {
            reason: HangupReason::InviteTimeout,
        },
        CallEventBody::Hangup {
            reason: HangupReason::Other("io.example.custom".into()),
        },
        CallEventBody::SdpStreamMetadataChanged {
            streams: vec![("cam".into(), StreamPurpose::UserMedia)],
        },
    ]
}
