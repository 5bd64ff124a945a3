//! The keypad end to end: the door calls alice (matrix-js-sdk in Chromium, through Synapse), she
//! answers and presses keys with js-sdk's `sendDtmfDigit`, which Chromium sends as RFC 4733
//! telephone-events on the call's audio. A wrong code is refused (logged, the relay untouched);
//! the right one pulses the synthetic relay and posts the audit line into the room. The same
//! when alice calls the door: telephone-event is negotiated whichever side offers.

mod harness;

use std::time::Duration;

use harness::client::Client;
use harness::door::{Door, DoorSettings};
use harness::netns::isolated;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Alice in her browser and a running door whose relay only the keypad code "2580#" opens.
fn world() -> (harness::world::BrowserWorld, Door) {
    let settings = DoorSettings {
        call_extra: "snapshot = false".into(),
        // `!open` off: only the keypad can open this door.
        extra: "[door]\nchip = \"synthetic\"\nline = 27\npulse = \"300ms\"\n\
                call_command = false\ndtmf_code = \"2580#\"\n"
            .into(),
        ..DoorSettings::default()
    };
    let mut w = harness::world::with_browser(false, None, false, settings);
    let door = w.start_door();
    (w, door)
}

#[test]
fn the_keypad_code_from_the_browser_opens_the_door_and_a_wrong_one_does_not() {
    if isolated!() {
        return;
    }
    let (mut w, mut door) = world();
    let alice = w.alice_user.user_id.clone();
    let me = w.home.user.user_id.clone();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));

    door.ring();
    let incoming = w
        .alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    w.alice
        .wait_event("the call to connect", WAIT, |e| e["event"] == "connected");
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));

    // The page refuses to send when Chromium cannot (no telephone-event negotiated).
    let sent = w
        .alice
        .call(json!({"cmd": "send_dtmf", "call_id": call_id, "keys": "1111#"}));
    assert_eq!(sent["can_insert_dtmf"], true, "{sent}");
    door.wait_log(&format!("wrong keypad code from {alice}"), WAIT);

    w.alice
        .call(json!({"cmd": "send_dtmf", "call_id": call_id, "keys": "2580#"}));
    door.wait_log(&format!("door opened by {alice} (keypad)"), WAIT);
    door.wait_log("synthetic relay: on", WAIT);
    door.wait_log("synthetic relay: off", WAIT);
    let audit = format!("Door opened by {alice} (keypad)");
    let reader = Client::login(&w.synapse, &w.alice_user);
    harness::poll("the audit line", WAIT, || {
        reader
            .messages(&w.room)
            .into_iter()
            .find(|e| e["sender"] == me.as_str() && e["content"]["body"] == audit.as_str())
    });

    // Each key reached the core exactly once: a key lost or doubled would have shifted the
    // entries (two wrong ones, or no opening). One opening, and the keys are in no log line.
    let log = door.log_text();
    assert_eq!(log.matches("wrong keypad code").count(), 1, "{log}");
    assert_eq!(log.matches("synthetic relay: on").count(), 1, "{log}");
    assert!(!log.contains("2580") && !log.contains("1111"), "{log}");

    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
    assert!(door.stop());
}

#[test]
fn the_keypad_works_when_the_browser_calls_the_door() {
    if isolated!() {
        return;
    }
    let (mut w, mut door) = world();
    let alice = w.alice_user.user_id.clone();
    let call_id = w
        .alice
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": false}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .wait_event("the call to connect", WAIT, |e| e["event"] == "connected");
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
    w.alice
        .call(json!({"cmd": "send_dtmf", "call_id": call_id, "keys": "2580#"}));
    door.wait_log(&format!("door opened by {alice} (keypad)"), WAIT);
    door.wait_log("synthetic relay: on", WAIT);
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
    assert!(door.stop());
}
