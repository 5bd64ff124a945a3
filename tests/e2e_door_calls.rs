//! The vertical slice: the door daemon, with its synthetic camera and microphone, calls
//! matrix-js-sdk (Element's engine) in headless Chromium through real Synapse, and is called by
//! it — plain and encrypted rooms, auto-answer, ring mode, strangers.

mod harness;

use std::time::Duration;

use harness::browser::Browser;
use harness::door::DoorSettings;
use harness::netns::isolated;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

type World = harness::world::BrowserWorld;

fn world(encrypted: bool, incoming: &'static str, max_length: &'static str) -> World {
    world_with(encrypted, incoming, max_length, None, false)
}

/// The same, with TURN wired into Synapse, and alice's browser allowed only relayed media.
fn world_with(
    encrypted: bool,
    incoming: &'static str,
    max_length: &'static str,
    turn: Option<&harness::synapse::Turn>,
    relay_only: bool,
) -> World {
    let settings = DoorSettings {
        incoming,
        max_length,
        ..DoorSettings::default()
    };
    harness::world::with_browser(encrypted, turn, relay_only, settings)
}

fn stats_flowing(s: &Value) -> bool {
    s["video_frames_decoded"].as_u64().unwrap_or(0) > 10
        && s["audio_packets_received"].as_u64().unwrap_or(0) > 10
}

/// The browser's camera is on in the call, and not one frame of it goes to the door, which has
/// no screen: the door's offer and answer take no video.
fn camera_stays_in_the_browser(stats: &Value) {
    assert_eq!(
        stats["camera"], true,
        "the browser has its camera on: {stats}"
    );
    assert_eq!(
        stats["video_frames_sent"].as_u64(),
        Some(0),
        "the browser sends no video to the door: {stats}"
    );
}

fn door_calls_browser(encrypted: bool) {
    let mut w = world(encrypted, "auto-answer", "5m");
    let mut door = w.start_door();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));

    for round in 0..2 {
        door.ring();
        let incoming = w
            .alice
            .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
        assert_eq!(incoming["sender"], w.home.user.user_id.as_str());
        let call_id = incoming["call_id"].as_str().unwrap().to_owned();
        w.alice.wait_event("the door's first frame", WAIT, |e| {
            e["event"] == "first_frame"
        });
        let stats = w
            .alice
            .wait_stats(&call_id, "the door's video and audio", WAIT, stats_flowing);
        assert!(
            stats["video_codec"].as_str().unwrap_or("").contains("H264"),
            "{stats}"
        );
        assert!(
            stats["audio_level"].as_f64().unwrap_or(0.0) > 0.0,
            "the door's tone is heard: {stats}"
        );
        camera_stays_in_the_browser(&stats);
        door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
        door.clear_notes();

        w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
        // The browser's audio reached the door's sink (logged as the call's media closes).
        let audio = door.wait_log("remote audio", WAIT);
        let rms: f64 = audio
            .rsplit("rms=")
            .next()
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(rms > 0.0, "round {round}: the door heard nothing: {audio}");
        assert!(
            audio.contains(", 0 video packets received"),
            "round {round}: {audio}"
        );
        let ended = door.wait_log("call ended", WAIT);
        assert!(ended.contains("remote: true"), "round {round}: {ended}");
        door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
        door.clear_notes();
        w.alice
            .wait_event("alice's end of the call", WAIT, |e| e["event"] == "hangup");
    }
    assert!(door.stop());
}

#[test]
fn door_calls_browser_in_a_plain_room() {
    if isolated!() {
        return;
    }
    door_calls_browser(false);
}

#[test]
fn door_calls_browser_in_an_encrypted_room() {
    if isolated!() {
        return;
    }
    door_calls_browser(true);
}

fn browser_calls_door(encrypted: bool) {
    // The shortest maximum call length the configuration allows, so the door hangs up itself.
    let mut w = world(encrypted, "auto-answer", "5s");
    let mut door = w.start_door();
    let call_id = w
        .alice
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    let stats = w
        .alice
        .wait_stats(&call_id, "the door's media", WAIT, stats_flowing);
    camera_stays_in_the_browser(&stats);
    let media = door.wait_log("call media:", WAIT);
    assert!(media.contains(", 0 video packets received"), "{media}");
    let ended = w
        .alice
        .wait_event("the door hanging up", WAIT, |e| e["event"] == "hangup");
    assert_eq!(ended["party"], "remote", "{ended}");
    assert_eq!(ended["reason"], "user_hangup", "{ended}");
    door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
    assert!(door.stop());
}

#[test]
fn browser_calls_door_which_answers_and_hangs_up_after_the_maximum_length() {
    if isolated!() {
        return;
    }
    browser_calls_door(false);
}

#[test]
fn browser_calls_door_in_an_encrypted_room() {
    if isolated!() {
        return;
    }
    browser_calls_door(true);
}

#[test]
fn ring_mode_answers_after_a_press() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "ring", "5m");
    let mut door = w.start_door();
    let call_id = w
        .alice
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    door.wait_notify("ringing", WAIT, |l| l.starts_with("STATUS=Ringing"));
    let before = w.alice.call(json!({"cmd": "stats", "call_id": call_id}));
    assert_eq!(
        before["video_frames_decoded"].as_u64().unwrap_or(0),
        0,
        "nothing before the press"
    );
    door.ring();
    w.alice
        .wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", WAIT);
    assert!(door.stop());
}

#[test]
fn a_stranger_is_rejected_and_gets_no_media() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "auto-answer", "5m");
    let mut door = w.start_door();
    // Mallory shares a room with the door, but is not on the allow list. (The door does not
    // join rooms strangers invite it to: mallory comes into alice's room, invited by alice.)
    let mallory_user = w.synapse.register("mallory");
    let mut mallory = Browser::start("mallory", false);
    mallory.call(
        json!({"cmd": "login", "homeserver": w.synapse.url(), "user": mallory_user.localpart,
                        "password": mallory_user.password, "encryption": false}),
    );
    w.alice
        .call(json!({"cmd": "invite", "room_id": w.room, "user_id": mallory_user.user_id}));
    mallory.call(json!({"cmd": "join", "room_id": w.room}));
    mallory.call(json!({"cmd": "wait_member", "room_id": w.room, "user_id": w.home.user.user_id}));
    let call_id = mallory
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": true, "invitee": w.home.user.user_id}))
        ["call_id"].as_str().unwrap().to_owned();
    let ended = mallory.wait_event("the door's reject", WAIT, |e| e["event"] == "hangup");
    assert_eq!(ended["party"], "remote", "{ended}");
    let stats = mallory.call(json!({"cmd": "stats", "call_id": call_id}));
    assert_eq!(
        stats["audio_packets_received"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    assert_eq!(
        stats["video_frames_decoded"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    door.wait_log("refused", WAIT);
    assert!(door.stop());
}

/// Mallory, a member of the room but not on the allow list, in her browser.
fn mallory_in_the_room(w: &mut World) -> Browser {
    let mallory_user = w.synapse.register("mallory");
    let mut mallory = Browser::start("mallory", false);
    mallory.call(
        json!({"cmd": "login", "homeserver": w.synapse.url(), "user": mallory_user.localpart,
                        "password": mallory_user.password, "encryption": false}),
    );
    w.alice
        .call(json!({"cmd": "invite", "room_id": w.room, "user_id": mallory_user.user_id}));
    mallory.call(json!({"cmd": "join", "room_id": w.room}));
    mallory.call(json!({"cmd": "wait_member", "room_id": w.room, "user_id": w.home.user.user_id}));
    mallory
}

#[test]
fn a_stranger_in_the_rung_room_cannot_answer_and_an_allowed_resident_still_does() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "ring", "5m");
    let mut door = w.start_door();
    let mut mallory = mallory_in_the_room(&mut w);
    // Mallory answers the moment the door rings, before alice.
    mallory.call(json!({"cmd": "auto_answer", "enabled": true}));
    door.ring();
    let call_id = mallory.wait_event("the door's invite", WAIT, |e| e["event"] == "incoming")
        ["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Alice answers once the door has had mallory's answer: it ignores it (or, as it once did,
    // takes it and connects to her).
    door.wait_log_any(
        &["ignored m.call.answer from @mallory", "status: Connecting"],
        WAIT,
    );
    w.alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    w.alice.call(json!({"cmd": "answer", "call_id": call_id}));
    w.alice
        .wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    w.alice
        .wait_stats(&call_id, "the door's media", WAIT, stats_flowing);
    // The door chose alice: mallory's call ends, and not one packet reached her.
    let ended = mallory.wait_event("mallory's call ending", WAIT, |e| e["event"] == "hangup");
    assert_eq!(ended["party"], "remote", "{ended}");
    let stats = mallory.call(json!({"cmd": "stats", "call_id": call_id}));
    for counter in [
        "audio_packets_received",
        "video_frames_decoded",
        "video_packets_received",
    ] {
        assert_eq!(
            stats[counter].as_u64().unwrap_or(0),
            0,
            "{counter}: {stats}"
        );
    }
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", WAIT);
    assert!(
        door.lines
            .iter()
            .any(|l| l.contains("ignored m.call.answer from @mallory")),
        "the door logs whose answer it did not take"
    );
    assert!(door.stop());
}

#[test]
fn a_strangers_call_into_a_room_of_two_is_rejected() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "auto-answer", "5m");
    let mut door = w.start_door();
    let mut mallory = mallory_in_the_room(&mut w);
    // Alice leaves: the room is mallory's and the door's alone, and mallory calls the way
    // Element places a 1:1 call, naming no invitee.
    w.alice.call(json!({"cmd": "leave", "room_id": w.room}));
    mallory.call(json!({"cmd": "wait_member", "room_id": w.room,
                        "user_id": w.alice_user.user_id, "membership": "leave"}));
    let call_id = mallory.call(json!({"cmd": "place_call", "room_id": w.room, "video": true}))
        ["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = mallory.wait_event("the door's reject", WAIT, |e| e["event"] == "hangup");
    assert_eq!(ended["party"], "remote", "{ended}");
    let stats = mallory.call(json!({"cmd": "stats", "call_id": call_id}));
    assert_eq!(
        stats["audio_packets_received"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    assert_eq!(
        stats["video_frames_decoded"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    door.wait_log("refused a call from @mallory", WAIT);
    assert!(door.stop());
}

#[test]
fn turn_only_call_connects_over_relay() {
    if isolated!() {
        return;
    }
    let coturn = harness::coturn::Coturn::start();
    let mut w = world_with(
        false,
        "auto-answer",
        "5m",
        Some(&coturn.synapse_settings()),
        true,
    );
    let mut door = w.start_door();
    door.wait_log("TURN from the homeserver", WAIT);
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    door.ring();
    let incoming = w
        .alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    w.alice.wait_event("the door's first frame", WAIT, |e| {
        e["event"] == "first_frame"
    });
    let stats = w
        .alice
        .wait_stats(&call_id, "media over the relay", WAIT, stats_flowing);
    assert_eq!(stats["selected_pair"]["local_type"], "relay", "{stats}");
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", WAIT);
    assert!(door.stop());
}

#[test]
fn a_voice_call_upgraded_to_video_gets_the_door_video() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "auto-answer", "5m");
    let mut door = w.start_door();
    let call_id = w
        .alice
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": false}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice.wait_stats(&call_id, "the door's audio", WAIT, |s| {
        s["audio_packets_received"].as_u64().unwrap_or(0) > 10
    });
    let before = w.alice.call(json!({"cmd": "stats", "call_id": call_id}));
    assert_eq!(
        before["video_frames_decoded"].as_u64().unwrap_or(0),
        0,
        "a voice call: {before}"
    );
    // Alice turns her camera on: js-sdk renegotiates with m.call.negotiate, the door answers.
    w.alice
        .call(json!({"cmd": "set_video_muted", "call_id": call_id, "muted": false}));
    let stats = w
        .alice
        .wait_stats(&call_id, "the door's video after the upgrade", WAIT, |s| {
            s["video_frames_decoded"].as_u64().unwrap_or(0) > 10
        });
    camera_stays_in_the_browser(&stats);
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", WAIT);
    assert!(door.stop());
}

#[test]
fn a_lost_peer_ends_the_call_with_ice_failed_and_the_next_call_works() {
    if isolated!() {
        return;
    }
    let mut w = world(false, "auto-answer", "5m");
    let mut door = w.start_door();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    door.ring();
    let incoming = w
        .alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    w.alice.wait_stats(&call_id, "media", WAIT, stats_flowing);
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
    // The browser dies: no hangup is ever sent; only the media path tells.
    let lost = std::time::Instant::now();
    drop(w.alice);
    let ended = door.wait_log("call ended", Duration::from_secs(20));
    let took = lost.elapsed();
    assert!(ended.contains("IceFailed"), "{ended}");
    assert!(
        took <= Duration::from_secs(10),
        "the door took {took:?} to give up"
    );
    println!("the door hung up with ice_failed {took:?} after the peer vanished");

    // The next call works: alice is back in a new browser.
    let mut alice = Browser::start("alice-again", false);
    alice.call(
        json!({"cmd": "login", "homeserver": w.synapse.url(), "user": w.alice_user.localpart,
                      "password": w.alice_user.password, "encryption": false}),
    );
    alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    door.ring();
    alice.wait_event("the door's video again", WAIT, |e| {
        e["event"] == "first_frame"
    });
    assert!(door.stop());
}

/// A microphone that does not exist costs the call its sound, not the call: the door rings
/// (the invite reaches the browser), sends silence and its video once answered, and says in a
/// WARN which device failed.
#[test]
fn a_missing_microphone_still_rings_and_sends_video() {
    if isolated!() {
        return;
    }
    let settings = DoorSettings {
        capture: "no_such_microphone",
        ..DoorSettings::default()
    };
    let mut w = harness::world::with_browser(false, None, false, settings);
    let mut door = w.start_door();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    door.ring();
    let incoming = w
        .alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    w.alice.wait_event("the door's first frame", WAIT, |e| {
        e["event"] == "first_frame"
    });
    let stats = w.alice.wait_stats(
        &call_id,
        "the door's video and its silence",
        WAIT,
        stats_flowing,
    );
    assert!(
        stats["video_codec"].as_str().unwrap_or("").contains("H264"),
        "{stats}"
    );
    door.drain_log();
    let warned = door
        .lines
        .iter()
        .find(|l| {
            l.contains("WARN")
                && l.contains("\"no_such_microphone\"")
                && l.contains("the call goes on without the microphone")
        })
        .cloned();
    assert!(
        warned.is_some_and(|l| l.contains("silence")),
        "no WARN naming the microphone:\n{}",
        door.log_text()
    );
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", WAIT);
    assert!(door.stop());
}
