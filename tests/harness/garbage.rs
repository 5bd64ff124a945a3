//! A burst of 50 `m.call.*` events that must ring nothing: malformed events from an allowed
//! user (missing or mistyped fields, 60 KB strings, unknown call ids) and well-formed invites from
//! a stranger, for the door and for the whole room. The last event is the stranger's invite for
//! the door: once the door has rejected it, it has seen them all.

use serde_json::{json, Value};

use super::client::Client;
use super::{random_string, root};

/// A message of matrix-js-sdk 43 as it travelled (tests/fixtures/js-sdk-43).
pub fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/js-sdk-43").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A js-sdk call id: milliseconds since the epoch, then random letters.
pub fn js_call_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{ms}{}", random_string(16))
}

/// js-sdk's invite (a real browser's offer) for `call_id`, addressed to `invitee` or to the
/// whole room, living `lifetime_ms`.
pub fn invite(call_id: &str, invitee: Option<&str>, lifetime_ms: u64) -> Value {
    let mut c = fixture("m.call.invite.json")["content"].clone();
    c["call_id"] = json!(call_id);
    c["lifetime"] = json!(lifetime_ms);
    match invitee {
        Some(user) => c["invitee"] = json!(user),
        None => {
            c.as_object_mut().unwrap().remove("invitee");
        }
    }
    c
}

/// js-sdk's answer (a real browser's) for `call_id`, from the device `party`.
pub fn answer(call_id: &str, party: &str) -> Value {
    let mut c = fixture("m.call.answer.json")["content"].clone();
    c["call_id"] = json!(call_id);
    c["party_id"] = json!(party);
    c
}

/// js-sdk's hangup for `call_id`, from the device `party`.
pub fn hangup(call_id: &str, party: &str) -> Value {
    let mut c = fixture("m.call.hangup.json")["content"].clone();
    c["call_id"] = json!(call_id);
    c["party_id"] = json!(party);
    c
}

/// The burst, and what the door should do about it.
pub struct Burst<'a> {
    /// (sender, event type, content), in sending order.
    pub events: Vec<(&'a Client, &'static str, Value)>,
    /// The stranger's invites naming the door: each gets one `m.call.reject`.
    pub for_door: Vec<String>,
    /// The stranger's invites for the whole room: left alone.
    pub for_room: Vec<String>,
    /// The call id of the last event (a stranger's invite for the door).
    pub last: String,
}

impl Burst<'_> {
    /// Sends every event into `room`.
    pub fn send(&self, room: &str) {
        for (who, event_type, content) in &self.events {
            who.send(room, event_type, content);
        }
    }
}

/// 50 events: `alice` is on the door's allow list, `mallory` is not; `door` is its user id.
pub fn burst<'a>(alice: &'a Client, mallory: &'a Client, door: &str) -> Burst<'a> {
    let huge = "x".repeat(60_000);
    let mut events: Vec<(&Client, &'static str, Value)> = Vec::new();
    let mut for_door = Vec::new();
    let mut for_room = Vec::new();
    let mut i = 0;
    while events.len() < 49 {
        let id = js_call_id();
        let me = Some(door);
        let event: (&Client, &'static str, Value) = match i % 20 {
            0 => {
                let mut c = invite(&id, me, 60_000);
                c.as_object_mut().unwrap().remove("call_id");
                (alice, "m.call.invite", c)
            }
            1 => {
                let mut c = invite(&id, me, 60_000);
                c["offer"]["sdp"] = json!(12345);
                (alice, "m.call.invite", c)
            }
            2 => {
                let mut c = invite(&id, me, 60_000);
                c.as_object_mut().unwrap().remove("offer");
                (alice, "m.call.invite", c)
            }
            3 => {
                let mut c = invite(&id, me, 60_000);
                c["lifetime"] = json!("forever");
                (alice, "m.call.invite", c)
            }
            4 => {
                let mut c = invite(&id, me, 60_000);
                c["invitee"] = json!(42);
                (alice, "m.call.invite", c)
            }
            5 => (alice, "m.call.invite", invite("", me, 60_000)),
            6 => {
                let mut c = invite(&huge, me, 60_000);
                c.as_object_mut().unwrap().remove("offer");
                (alice, "m.call.invite", c)
            }
            7 => {
                let c = json!({"call_id": id, "party_id": "A", "version": "1",
                               "candidates": "not a list"});
                (alice, "m.call.candidates", c)
            }
            8 => {
                let c = json!({"call_id": id, "party_id": "A", "version": "1",
                               "candidates": [{"candidate": 7, "sdpMid": []}]});
                (alice, "m.call.candidates", c)
            }
            9 => {
                let mut c = answer(&id, "A");
                c["answer"]["sdp"] = json!(huge);
                (alice, "m.call.answer", c)
            }
            10 => {
                let mut c = answer(&id, "A");
                c["answer"]["sdp"] = json!(true);
                (alice, "m.call.answer", c)
            }
            11 => {
                let mut c = hangup(&id, "A");
                c.as_object_mut().unwrap().remove("call_id");
                (alice, "m.call.hangup", c)
            }
            12 => {
                let mut c = hangup(&id, "A");
                c["reason"] = json!(huge);
                (alice, "m.call.hangup", c)
            }
            13 => {
                let c = json!({"call_id": id, "party_id": "A", "version": "1"});
                (alice, "m.call.select_answer", c)
            }
            14 => {
                let c = json!({"call_id": id, "party_id": "A", "version": "1",
                               "lifetime": 10000, "description": "a string"});
                (alice, "m.call.negotiate", c)
            }
            15 => {
                let c = json!({"call_id": id, "party_id": 5, "version": "1"});
                (alice, "m.call.reject", c)
            }
            16 => {
                // Well-formed but worthless: a 60 KB offer that has all but expired.
                let mut c = invite(&id, me, 1_000);
                c["offer"] = json!({"type": "offer", "sdp": huge});
                (alice, "m.call.invite", c)
            }
            17 => {
                let c = json!({"call_id": id, "party_id": "A", "version": "1",
                               "sdp_stream_metadata": "x"});
                (alice, "m.call.sdp_stream_metadata_changed", c)
            }
            18 => {
                for_door.push(id.clone());
                (mallory, "m.call.invite", invite(&id, me, 60_000))
            }
            _ => {
                for_room.push(id.clone());
                (mallory, "m.call.invite", invite(&id, None, 60_000))
            }
        };
        events.push(event);
        i += 1;
    }
    let last = js_call_id();
    for_door.push(last.clone());
    events.push((mallory, "m.call.invite", invite(&last, Some(door), 60_000)));
    Burst {
        events,
        for_door,
        for_room,
        last,
    }
}
