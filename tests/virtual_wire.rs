//! The wire translation (`matrix::wire`) of every event body the door sends, in one process and
//! without I/O: each survives `to_wire` then `from_wire` unchanged, and what goes out is what the
//! spec says. The same bodies go through real Synapse in `adapter_matrix.rs`.

use std::time::Duration;

use intercom::call::{CallEvent, CallEventBody, CallId, HangupReason, PartyId, RoomId};
use intercom::matrix::wire::{from_wire, to_wire};
use serde_json::json;

#[path = "harness/call_events.rs"]
mod call_events;

use call_events::every_body;

fn room() -> RoomId {
    RoomId("!room:localhost".into())
}

fn event(body: CallEventBody) -> CallEvent {
    CallEvent {
        call_id: CallId("c1".into()),
        party_id: PartyId("DOORDEVICE".into()),
        body,
    }
}

#[test]
fn every_body_survives_a_round_trip() {
    for body in every_body() {
        let sent = event(body);
        let (event_type, content) = to_wire(&sent);
        assert_eq!(event_type, sent.body.event_type());
        assert_eq!(content["version"], "1", "{content}");
        assert_eq!(content["party_id"], "DOORDEVICE");
        assert_eq!(content["call_id"], "c1");
        let raw = json!({
            "type": event_type, "sender": "@door:localhost", "content": content,
            "unsigned": {"age": 1234},
        });
        let got = from_wire(&room(), &raw, false).unwrap().unwrap();
        assert_eq!(got.event, sent);
        assert_eq!(got.age, Some(Duration::from_millis(1234)));
    }
}

#[test]
fn sent_content_is_what_the_spec_says() {
    let (_, invite) = to_wire(&event(every_body().remove(0)));
    assert_eq!(invite["lifetime"], 90000);
    assert_eq!(invite["offer"]["type"], "offer");
    assert!(invite.get("invitee").is_none(), "{invite}");
    assert_eq!(
        invite["sdp_stream_metadata"],
        json!({"cam": {"purpose": "m.usermedia"}, "screen": {"purpose": "m.screenshare"}})
    );
    let (_, invite) = to_wire(&event(every_body().remove(1)));
    assert_eq!(invite["invitee"], "@bob:localhost");
    let (_, candidates) = to_wire(&event(every_body().remove(3)));
    assert_eq!(
        candidates["candidates"],
        json!([
            {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0},
            {"candidate": ""}
        ])
    );
    let (_, hangup) = to_wire(&event(CallEventBody::Hangup {
        reason: HangupReason::UserHangup,
    }));
    assert_eq!(hangup["reason"], "user_hangup");
}
