//! The door's relay and its snapshot, end to end against real Synapse: `!open` from an
//! allow-listed user pulses the (synthetic) relay and posts the audit line; a stranger's does
//! nothing; a command sent while the daemon was down is never carried out; in an encrypted room
//! the command is decrypted and the audit line encrypted; a press posts a picture of the camera
//! mentioning the allow-listed members, and none when that is off.

mod harness;

use std::time::Duration;

use harness::client::Client;
use harness::door::DoorSettings;
use harness::netns::isolated;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

#[test]
fn open_command_pulses_the_relay_for_allow_listed_users_only() {
    if isolated!() {
        return;
    }
    let (synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        call_extra: "snapshot = false".into(),
        extra: "[door]\nchip = \"synthetic\"\nline = 27\npulse = \"300ms\"\nroom_command = true\n"
            .into(),
        ..DoorSettings::default()
    });
    let me = home.user.user_id.clone();
    // Mallory is in the room, not on the allow list.
    let mallory = Client::login(&synapse, &synapse.register("mallory"));
    alice.invite(&room, &mallory.user_id);
    mallory.join(&room);

    // A first run gives the store its sync token; the command sent while the door is down is
    // history when it comes back, and must never open the door.
    let door = home.start_joined(&[(&alice, &room)]);
    assert!(door.stop());
    alice.send(&room, "m.room.message", &text("!open"));
    let mut door = home.start_joined(&[(&alice, &room)]);

    mallory.send(&room, "m.room.message", &text("!open"));
    door.wait_log(
        &format!(
            "!open from {} in {room} refused: not on the allow list",
            mallory.user_id
        ),
        WAIT,
    );
    alice.send(&room, "m.room.message", &text("!open"));
    door.wait_log(&format!("door opened by {}", alice.user_id), WAIT);
    door.wait_log("synthetic relay: on", WAIT);
    door.wait_log("synthetic relay: off", WAIT);
    let audit = format!("Door opened by {}", alice.user_id);
    harness::poll("the audit line", WAIT, || {
        alice
            .messages(&room)
            .into_iter()
            .find(|e| e["sender"] == me.as_str() && e["content"]["body"] == audit.as_str())
    });

    // Exactly one opening: neither the old command nor mallory's opened the door, and nothing
    // the door posted answers mallory.
    let log = door.log_text();
    assert_eq!(log.matches("synthetic relay: on").count(), 1, "{log}");
    assert_eq!(log.matches("door opened by").count(), 1, "{log}");
    let posted: Vec<Value> = alice
        .messages(&room)
        .into_iter()
        .filter(|e| e["sender"] == me.as_str() && e["type"] == "m.room.message")
        .collect();
    assert_eq!(posted.len(), 1, "only the audit line: {posted:?}");
    assert_eq!(posted[0]["content"]["msgtype"], "m.notice");
    assert!(door.stop());
}

#[test]
fn open_command_works_in_an_encrypted_room() {
    if isolated!() {
        return;
    }
    // Alice is a browser with E2EE (js-sdk): her `!open` reaches the door encrypted, and the
    // door's audit line goes back encrypted.
    let mut w = harness::world::with_browser(
        true,
        None,
        false,
        DoorSettings {
            call_extra: "snapshot = false".into(),
            extra:
                "[door]\nchip = \"synthetic\"\nline = 27\npulse = \"300ms\"\nroom_command = true\n"
                    .into(),
            ..DoorSettings::default()
        },
    );
    let me = w.home.user.user_id.clone();
    let mut door = w.start_door();
    w.alice
        .call(json!({"cmd": "send_text", "room_id": w.room, "body": "!open"}));
    door.wait_log(&format!("door opened by {}", w.alice_user.user_id), WAIT);
    door.wait_log("synthetic relay: on", WAIT);
    door.wait_log("synthetic relay: off", WAIT);
    let audit = format!("Door opened by {}", w.alice_user.user_id);
    let line = harness::poll("the encrypted audit line, decrypted by alice", WAIT, || {
        w.alice.call(json!({"cmd": "texts", "room_id": w.room}))["texts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["sender"] == me.as_str() && t["body"] == audit.as_str())
            .cloned()
    });
    assert_eq!(line["encrypted"], true, "{line}");
    assert_eq!(line["msgtype"], "m.notice", "{line}");
    let log = door.log_text();
    assert_eq!(log.matches("synthetic relay: on").count(), 1, "{log}");
    assert!(door.stop());
}

/// The door's `m.image` events in `room`.
fn images(client: &Client, room: &str, door: &str) -> Vec<Value> {
    client
        .messages(room)
        .into_iter()
        .filter(|e| e["sender"] == door && e["content"]["msgtype"] == "m.image")
        .collect()
}

#[test]
fn a_press_posts_a_snapshot_mentioning_the_allow_listed_members() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        camera: (320, 240),
        ..DoorSettings::default()
    });
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);
    door.ring();
    let image = harness::poll("the door's snapshot", WAIT, || {
        images(&alice, &room, &me).into_iter().next()
    });
    let c = &image["content"];
    assert!(
        c["body"].as_str().unwrap().contains(&alice.user_id),
        "the body names alice: {c}"
    );
    assert_eq!(c["m.mentions"]["user_ids"], json!([alice.user_id]), "{c}");
    assert_eq!(
        (c["info"]["w"].as_u64(), c["info"]["h"].as_u64()),
        (Some(320), Some(240))
    );
    // The invite went out too, and the picture is a JPEG of the camera's size.
    harness::poll("the door's invite", WAIT, || {
        alice
            .messages(&room)
            .into_iter()
            .find(|e| e["sender"] == me.as_str() && e["type"] == "m.call.invite")
    });
    let jpeg = alice.download(c["url"].as_str().expect("a plain room's image has a url"));
    let mut decoder =
        zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(&jpeg));
    let pixels = decoder.decode().expect("the snapshot decodes as a JPEG");
    let (w, h) = decoder.dimensions().unwrap();
    assert_eq!((w, h), (320, 240));
    assert_eq!(pixels.len(), 320 * 240 * 3);
    door.wait_log("snapshot posted to", WAIT);
    // The call already held the camera: the picture is one of its frames (a real camera
    // refuses a second stream while the call's runs).
    assert!(
        door.log_text()
            .contains("320x240, from the call's camera stream"),
        "{}",
        door.log_text()
    );
    assert!(door.stop());
}

#[test]
fn no_snapshot_when_it_is_off() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        call_extra: "snapshot = false".into(),
        ring_timeout: "2s",
        ..DoorSettings::default()
    });
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);
    door.ring();
    harness::poll("the door's invite", WAIT, || {
        alice
            .messages(&room)
            .into_iter()
            .find(|e| e["sender"] == me.as_str() && e["type"] == "m.call.invite")
    });
    // The call rings out unanswered and ends; the door's hangup follows its invite in order.
    door.wait_log("call ended: NoAnswer", WAIT);
    harness::poll("the door's hangup", WAIT, || {
        alice
            .messages(&room)
            .into_iter()
            .find(|e| e["sender"] == me.as_str() && e["type"] == "m.call.hangup")
    });
    assert!(images(&alice, &room, &me).is_empty());
    assert!(!door.log_text().contains("snapshot"), "{}", door.log_text());
    assert!(door.stop());
}
