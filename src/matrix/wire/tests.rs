//! The wire translation's tests: fixtures of what matrix-js-sdk sends, old and future peers,
//! malformed and hostile events.

use serde_json::json;

use super::*;

fn room() -> RoomId {
    RoomId("!room:localhost".into())
}

fn read(fixture: &str, encrypted: bool) -> ReceivedEvent {
    let raw: Value = serde_json::from_str(fixture).unwrap();
    from_wire(&room(), &raw, encrypted)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a call event")
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/js-sdk-43/", $name))
    };
}

/// (file, plain, decrypted) pairs: every fixture, each read both ways it was captured.
const PLAIN: &[(&str, &str)] = &[
    ("m.call.invite", fixture!("m.call.invite.json")),
    ("m.call.answer", fixture!("m.call.answer.json")),
    ("m.call.candidates", fixture!("m.call.candidates.json")),
    (
        "m.call.candidates",
        fixture!("m.call.candidates.end-of-candidates.json"),
    ),
    (
        "m.call.candidates",
        fixture!("m.call.candidates.turn-relay.json"),
    ),
    (
        "m.call.select_answer",
        fixture!("m.call.select_answer.json"),
    ),
    ("m.call.reject", fixture!("m.call.reject.json")),
    ("m.call.negotiate", fixture!("m.call.negotiate.json")),
    ("m.call.hangup", fixture!("m.call.hangup.json")),
    (
        "m.call.sdp_stream_metadata_changed",
        fixture!("m.call.sdp_stream_metadata_changed.json"),
    ),
];
const DECRYPTED: &[(&str, &str)] = &[
    (
        "m.call.invite",
        fixture!("e2e/decrypted/m.call.invite.json"),
    ),
    (
        "m.call.answer",
        fixture!("e2e/decrypted/m.call.answer.json"),
    ),
    (
        "m.call.candidates",
        fixture!("e2e/decrypted/m.call.candidates.json"),
    ),
    (
        "m.call.select_answer",
        fixture!("e2e/decrypted/m.call.select_answer.json"),
    ),
    (
        "m.call.reject",
        fixture!("e2e/decrypted/m.call.reject.json"),
    ),
    (
        "m.call.negotiate",
        fixture!("e2e/decrypted/m.call.negotiate.json"),
    ),
    (
        "m.call.hangup",
        fixture!("e2e/decrypted/m.call.hangup.json"),
    ),
    (
        "m.call.sdp_stream_metadata_changed",
        fixture!("e2e/decrypted/m.call.sdp_stream_metadata_changed.json"),
    ),
];

#[test]
fn every_fixture_parses_with_its_ids_and_sender() {
    for (encrypted, set) in [(false, PLAIN), (true, DECRYPTED)] {
        for (event_type, text) in set {
            let raw: Value = serde_json::from_str(text).unwrap();
            let e = read(text, encrypted);
            assert_eq!(e.event.body.event_type(), *event_type);
            assert_eq!(e.room, room());
            assert_eq!(e.encrypted, encrypted);
            assert_eq!(e.sender.0, raw["sender"].as_str().unwrap());
            assert_eq!(
                e.event.call_id.0,
                raw["content"]["call_id"].as_str().unwrap()
            );
            assert_eq!(
                e.event.party_id.0,
                raw["content"]["party_id"].as_str().unwrap()
            );
            assert!(e.event.party_id.0.starts_with("PAGE"), "{e:?}");
            assert_eq!(
                e.age,
                raw["unsigned"]["age"].as_u64().map(Duration::from_millis),
                "{event_type}"
            );
        }
    }
}

#[test]
fn invites_carry_offer_lifetime_invitee_and_streams() {
    for (text, invitee, stream) in [
        (
            fixture!("m.call.invite.json"),
            "@bobmwr79hnx:localhost",
            "827d28af-ccd5-4c4d-9b4a-305eb759cd99",
        ),
        (
            fixture!("e2e/decrypted/m.call.invite.json"),
            "@bobmwr79yft:localhost",
            "cfd70eb7-7b61-4007-b083-beb051e8a354",
        ),
    ] {
        let CallEventBody::Invite {
            offer,
            lifetime,
            invitee: got,
        } = read(text, false).event.body
        else {
            panic!("not an invite");
        };
        assert_eq!(lifetime, Duration::from_millis(60000));
        assert_eq!(got, Some(UserId(invitee.into())));
        assert_eq!(offer.kind, SdpKind::Offer);
        assert!(offer.sdp.starts_with("v=0\r\n"), "{}", &offer.sdp[..20]);
        assert_eq!(
            offer.streams,
            vec![(stream.into(), StreamPurpose::UserMedia)]
        );
    }
}

#[test]
fn answers_and_negotiations_carry_their_descriptions() {
    for text in [
        fixture!("m.call.answer.json"),
        fixture!("e2e/decrypted/m.call.answer.json"),
    ] {
        let CallEventBody::Answer { answer } = read(text, false).event.body else {
            panic!("not an answer");
        };
        assert_eq!(answer.kind, SdpKind::Answer);
        assert!(answer.sdp.starts_with("v=0\r\n"));
        assert_eq!(answer.streams.len(), 1);
        assert_eq!(read(text, false).event.party_id.0, "PAGEB");
    }
    for text in [
        fixture!("m.call.negotiate.json"),
        fixture!("e2e/decrypted/m.call.negotiate.json"),
    ] {
        let CallEventBody::Negotiate {
            description,
            lifetime,
        } = read(text, false).event.body
        else {
            panic!("not a negotiate");
        };
        assert_eq!(description.kind, SdpKind::Offer);
        assert!(description.sdp.starts_with("v=0\r\n"));
        assert_eq!(lifetime, Duration::from_millis(60000));
        assert_eq!(description.streams[0].1, StreamPurpose::UserMedia);
    }
}

fn candidates(text: &str) -> Vec<Candidate> {
    match read(text, false).event.body {
        CallEventBody::Candidates { candidates } => candidates,
        other => panic!("not candidates: {other:?}"),
    }
}

#[test]
fn candidates_keep_the_empty_end_marker() {
    let one = candidates(fixture!("m.call.candidates.json"));
    assert_eq!(one.len(), 1);
    assert!(one[0].candidate.contains("typ host"));
    assert_eq!(one[0].sdp_mid.as_deref(), Some("0"));
    assert_eq!(one[0].sdp_m_line_index, Some(0));

    let ended = candidates(fixture!("m.call.candidates.end-of-candidates.json"));
    assert_eq!(ended.len(), 2);
    assert_eq!(
        ended[1],
        Candidate {
            candidate: String::new(),
            sdp_mid: None,
            sdp_m_line_index: None
        }
    );

    let relay = candidates(fixture!("m.call.candidates.turn-relay.json"));
    assert_eq!(relay.len(), 2);
    assert!(relay.iter().all(|c| c.candidate.contains("typ relay")));

    let e2e = candidates(fixture!("e2e/decrypted/m.call.candidates.json"));
    assert_eq!(e2e.len(), 3);
    assert!(e2e[2].candidate.is_empty());
}

#[test]
fn hangups_rejects_selections_and_stream_changes() {
    for text in [
        fixture!("m.call.hangup.json"),
        fixture!("e2e/decrypted/m.call.hangup.json"),
    ] {
        assert_eq!(
            read(text, false).event.body,
            CallEventBody::Hangup {
                reason: HangupReason::UserHangup
            }
        );
    }
    for text in [
        fixture!("m.call.reject.json"),
        fixture!("e2e/decrypted/m.call.reject.json"),
    ] {
        let e = read(text, false);
        assert_eq!(e.event.body, CallEventBody::Reject);
        assert_eq!(e.event.party_id.0, "PAGEB");
    }
    for text in [
        fixture!("m.call.select_answer.json"),
        fixture!("e2e/decrypted/m.call.select_answer.json"),
    ] {
        assert_eq!(
            read(text, false).event.body,
            CallEventBody::SelectAnswer {
                selected_party_id: PartyId("PAGEB".into())
            }
        );
    }
    assert_eq!(
        read(fixture!("m.call.sdp_stream_metadata_changed.json"), false)
            .event
            .body,
        CallEventBody::SdpStreamMetadataChanged {
            streams: vec![(
                "d35208bf-1f1a-4b4b-868b-1d7d8e4d3672".into(),
                StreamPurpose::UserMedia
            )]
        }
    );
}

#[test]
fn undecryptable_and_other_events_are_not_call_events() {
    let encrypted: Value =
        serde_json::from_str(fixture!("e2e/m.room.encrypted.call.json")).unwrap();
    assert_eq!(encrypted["type"], "m.room.encrypted");
    assert!(encrypted["content"]["ciphertext"].is_string());
    assert_eq!(from_wire(&room(), &encrypted, true), Ok(None));
    let message = json!({"type": "m.room.message", "sender": "@a:b", "content": {"body": "hi"}});
    assert_eq!(from_wire(&room(), &message, false), Ok(None));
    assert_eq!(from_wire(&room(), &json!({}), false), Ok(None));
    assert_eq!(from_wire(&room(), &json!("not an event"), false), Ok(None));
}

// Every body through the wire and back, and what the spec says each looks like:
// tests/virtual_wire.rs, with the one `every_body()` of tests/harness/call_events.rs.

fn raw(event_type: &str, content: Value) -> Value {
    json!({"type": event_type, "sender": "@mallory:localhost", "content": content})
}

#[test]
fn old_and_future_peers_are_understood() {
    // Version 0: no party_id (the sender stands in), no reason (user_hangup), version 0.
    let v0 = raw("m.call.hangup", json!({"call_id": "c", "version": 0}));
    let e = from_wire(&room(), &v0, false).unwrap().unwrap();
    assert_eq!(e.event.party_id.0, "@mallory:localhost");
    assert_eq!(
        e.event.body,
        CallEventBody::Hangup {
            reason: HangupReason::UserHangup
        }
    );
    let v0_invite = raw(
        "m.call.invite",
        json!({"call_id": "c", "version": 0, "lifetime": 30000,
               "offer": {"type": "offer", "sdp": "v=0\r\n"}}),
    );
    assert!(from_wire(&room(), &v0_invite, false).unwrap().is_some());
    // An unknown version, and one written as a number, are read as "1".
    for version in [json!("2"), json!("org.example.v3"), json!(1)] {
        let e = raw(
            "m.call.reject",
            json!({"call_id": "c", "party_id": "P", "version": version}),
        );
        assert_eq!(
            from_wire(&room(), &e, false).unwrap().unwrap().event.body,
            CallEventBody::Reject
        );
    }
    let unknown_reason = raw(
        "m.call.hangup",
        json!({"call_id": "c", "party_id": "P", "version": "1", "reason": "cosmic_rays"}),
    );
    assert_eq!(
        from_wire(&room(), &unknown_reason, false)
            .unwrap()
            .unwrap()
            .event
            .body,
        CallEventBody::Hangup {
            reason: HangupReason::Other("cosmic_rays".into())
        }
    );
}

#[test]
fn malformed_call_events_are_errors_naming_type_sender_and_problem() {
    let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
    let cases = [
        (
            raw(
                "m.call.invite",
                json!({"party_id": "P", "version": "1", "lifetime": 1, "offer": offer}),
            ),
            "call_id",
        ),
        (
            raw(
                "m.call.invite",
                json!({"call_id": "c", "party_id": "P", "version": "1", "lifetime": 1,
                       "offer": {"type": "offer", "sdp": 42}}),
            ),
            "invalid type",
        ),
        (
            raw(
                "m.call.invite",
                json!({"call_id": "c", "party_id": "P", "version": "1", "lifetime": 1,
                       "offer": {"type": "offer"}}),
            ),
            "no sdp",
        ),
        (
            raw(
                "m.call.invite",
                json!({"call_id": "c", "party_id": "P", "version": "1", "lifetime": -5,
                       "offer": offer}),
            ),
            "lifetime",
        ),
        (
            raw(
                "m.call.candidates",
                json!({"call_id": "c", "party_id": "P", "version": "1", "candidates": "x"}),
            ),
            "invalid type",
        ),
        (
            raw(
                "m.call.candidates",
                json!({"call_id": "c", "party_id": "P", "version": "1",
                       "candidates": [{"candidate": "", "sdpMLineIndex": 70000}]}),
            ),
            "out of range",
        ),
        (
            raw(
                "m.call.negotiate",
                json!({"call_id": "c", "party_id": "P", "version": "1", "lifetime": 1,
                       "description": {"type": "pranswer", "sdp": "v=0"}}),
            ),
            "pranswer",
        ),
        (
            raw(
                "m.call.select_answer",
                json!({"call_id": "c", "party_id": "P", "version": "1"}),
            ),
            "selected_party_id",
        ),
        (
            raw(
                "m.call.hangup",
                json!({"call_id": "", "party_id": "P", "version": "1"}),
            ),
            "empty call_id",
        ),
        (raw("m.call.hangup", json!("a string")), "not an object"),
        (
            json!({"type": "m.call.hangup", "sender": "@mallory:localhost"}),
            "no content",
        ),
    ];
    for (event, problem) in cases {
        let e = from_wire(&room(), &event, false).unwrap_err();
        assert!(e.contains(event["type"].as_str().unwrap()), "{e}");
        assert!(e.contains("@mallory:localhost"), "{e}");
        assert!(e.contains(problem), "{problem:?} not in {e:?}");
    }
    let anonymous = json!({"type": "m.call.hangup", "content": {}});
    assert!(from_wire(&room(), &anonymous, false)
        .unwrap_err()
        .contains("without a sender"));
}

#[test]
fn absurd_sizes_are_refused_not_parsed() {
    let huge_sdp = format!("v=0\r\n{}", "a=x\r\n".repeat(2_000_000));
    let invite = raw(
        "m.call.invite",
        json!({"call_id": "c", "party_id": "P", "version": "1", "lifetime": 1,
               "offer": {"type": "offer", "sdp": huge_sdp}}),
    );
    let e = from_wire(&room(), &invite, false).unwrap_err();
    assert!(e.contains("larger than a Matrix event"), "{e}");
    // Just under the size limit, a wrong type quotes the peer's string: cut short.
    let long = raw(
        "m.call.candidates",
        json!({"call_id": "c", "party_id": "P", "version": "1", "candidates": "x".repeat(60_000)}),
    );
    let e = from_wire(&room(), &long, false).unwrap_err();
    assert!(e.len() < 1000, "{} bytes", e.len());
    let many = vec![json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 1 typ host"}); 100_000];
    let candidates = raw(
        "m.call.candidates",
        json!({"call_id": "c", "party_id": "P", "version": "1", "candidates": many}),
    );
    assert!(from_wire(&room(), &candidates, false).is_err());
    let deep_lifetime = raw(
        "m.call.invite",
        json!({"call_id": "c", "party_id": "P", "version": "1",
               "lifetime": 18446744073709551615u64, "offer": {"type": "offer", "sdp": "v=0"}}),
    );
    assert!(from_wire(&room(), &deep_lifetime, false).is_err());
}
