//! The demo behind `tests/demo` (ignored in ordinary test runs): a local Synapse, the door daemon
//! with its synthetic camera and microphone, a press of its button (`intercom ring`), and
//! matrix-js-sdk in headless Chromium answering — then the call's timeline and a screenshot of
//! the door's video as the browser shows it.

mod harness;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::door::DoorSettings;
use harness::netns::isolated;
use serde_json::{json, Value};

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[test]
#[ignore = "the demo; run it with tests/demo"]
fn demo() {
    if isolated!() {
        return;
    }
    let out = std::path::PathBuf::from(
        std::env::var("INTERCOM_DEMO_OUT").unwrap_or_else(|_| "target/demo".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let wait = Duration::from_secs(30);

    let harness::world::BrowserWorld {
        synapse,
        mut alice,
        alice_user,
        home,
        room,
    } = harness::world::with_browser(true, None, false, DoorSettings::default());
    println!("homeserver: Synapse at {}", synapse.url());
    let mut door = home.start();
    door.wait_notify("the door to be ready", wait, |l| l == "READY=1");
    alice.call(json!({"cmd": "wait_member", "room_id": room, "user_id": home.user.user_id}));
    alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    println!(
        "the door ({}) is in the encrypted room {room} with {}",
        home.user.user_id, alice_user.user_id
    );

    let pressed = wall_ms();
    door.ring();
    println!(
        "the button is pressed (intercom ring); {} answers in her browser",
        alice_user.user_id
    );
    let incoming = alice.wait_event("the door's invite", wait, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    alice.wait_event("the door's first frame", wait, |e| {
        e["event"] == "first_frame"
    });
    let stats = alice.wait_stats(&call_id, "a few seconds of the door's video", wait, |s| {
        s["video_frames_decoded"].as_u64().unwrap_or(0) >= 30
    });
    let shot = out.join("door-video.png");
    alice.call(json!({"cmd": "screenshot", "path": shot}));
    let t = alice.call(json!({"cmd": "timings", "call_id": call_id}))["timings"].clone();
    alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    door.wait_log("call ended", wait);
    if std::env::var_os("INTERCOM_DEMO_DOOR_LOG").is_some() {
        println!("--- the door's log ---\n{}", door.log_text());
    }

    let at = |k: &str| -> String {
        t[k]["wall_ms"]
            .as_f64()
            .map(|v: f64| format!("{:>6.0} ms", v - pressed))
            .unwrap_or_else(|| "     —".into())
    };
    println!("\ntimeline (from the press of the door's button):");
    for (label, key) in [
        ("invite seen by the callee", "invite_received"),
        ("callee answered", "answered"),
        ("media connected", "connected"),
        ("first video frame decoded", "first_frame"),
    ] {
        println!("  {label:<28} {}", at(key));
    }
    let v = |s: &Value, k: &str| s[k].clone();
    println!(
        "\nthe browser received: {} video frames decoded ({}x{}, {}), {} audio packets, audio level {}",
        v(&stats, "video_frames_decoded"),
        v(&stats, "frame_width"),
        v(&stats, "frame_height"),
        stats["video_codec"].as_str().unwrap_or("?"),
        v(&stats, "audio_packets_received"),
        v(&stats, "audio_level"),
    );
    println!(
        "screenshot of the door's video in the browser: {}",
        shot.display()
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    assert!(door.stop());
}
