//! The demo behind `tests/demo` (ignored in ordinary test runs): a call through a local Synapse,
//! answered by matrix-js-sdk in headless Chromium, with the timeline printed and a screenshot of
//! the received video saved.

mod harness;

use std::time::Duration;

use harness::browser::Browser;
use harness::netns::isolated;
use harness::synapse::Synapse;
use serde_json::{json, Value};

#[test]
#[ignore = "the demo; run it with tests/demo"]
fn demo() {
    if isolated("demo") {
        return;
    }
    let out = std::path::PathBuf::from(
        std::env::var("INTERCOM_DEMO_OUT").unwrap_or_else(|_| "target/demo".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let synapse = Synapse::start(None);
    println!("homeserver: Synapse at {}", synapse.url());
    let caller = synapse.register("door");
    let callee = synapse.register("alice");
    let mut door = Browser::start("door", false);
    let mut alice = Browser::start("alice", false);
    for (b, u) in [(&mut door, &caller), (&mut alice, &callee)] {
        b.call(
            json!({"cmd": "login", "homeserver": synapse.url(), "user": u.localpart,
                      "password": u.password, "encryption": false}),
        );
    }
    let room = door
        .call(json!({"cmd": "create_room", "invite": [callee.user_id], "encrypted": false}))
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.call(json!({"cmd": "join", "room_id": room}));
    door.call(json!({"cmd": "wait_member", "room_id": room, "user_id": callee.user_id}));
    alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    println!(
        "{} rings room {room}; {} answers",
        caller.user_id, callee.user_id
    );

    let call_id = door.call(json!({"cmd": "place_call", "room_id": room, "video": true}))
        ["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait = Duration::from_secs(30);
    alice.wait_event("the first frame", wait, |e| e["event"] == "first_frame");
    alice.wait_stats(&call_id, "some seconds of video", wait, |s| {
        s["video_frames_decoded"].as_u64().unwrap_or(0) > 30
    });
    let shot = out.join("call.png");
    alice.call(json!({"cmd": "screenshot", "path": shot}));
    let stats = alice.call(json!({"cmd": "stats", "call_id": call_id}));
    door.call(json!({"cmd": "hangup", "call_id": call_id}));
    alice.wait_event("the hangup", wait, |e| e["event"] == "hangup");

    let caller_t = door.call(json!({"cmd": "timings", "call_id": call_id}))["timings"].clone();
    let callee_t = alice.call(json!({"cmd": "timings", "call_id": call_id}))["timings"].clone();
    let t0 = caller_t["placed"]["wall_ms"].as_f64().unwrap();
    let at = |t: &Value, k: &str| {
        t[k]["wall_ms"]
            .as_f64()
            .map(|v| format!("{:>6.0} ms", v - t0))
    };
    println!("\ntimeline (from the press of 'call'):");
    for (label, t, k) in [
        ("call placed", &caller_t, "placed"),
        ("invite seen by the callee", &callee_t, "invite_received"),
        ("callee connected", &callee_t, "connected"),
        ("first video frame decoded", &callee_t, "first_frame"),
        ("hung up", &callee_t, "ended"),
    ] {
        println!(
            "  {label:<28} {}",
            at(t, k).unwrap_or_else(|| "     —".into())
        );
    }
    println!(
        "\nvideo received: {} frames decoded, {}x{} {}; audio: {} packets",
        stats["video_frames_decoded"],
        stats["frame_width"],
        stats["frame_height"],
        stats["video_codec"].as_str().unwrap_or("?"),
        stats["audio_packets_received"]
    );
    println!("screenshot of the video received: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
}
