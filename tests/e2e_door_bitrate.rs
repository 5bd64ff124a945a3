//! The door's video bitrate against a real viewer: matrix-js-sdk in headless Chromium answers
//! the door's call through Synapse; Chromium's RTCP about the door's video (receiver reports,
//! REMB) reaches the door's bitrate controller, the encoder follows it, and what the browser
//! receives stays under `[camera] max_bitrate`.
//!
//! Loopback loses nothing, so the loss rules are shown on virtual time (`tests/virtual_bitrate.rs`);
//! here: the feedback arrives, the rate moves with it, the REMB and the cap bound it.

mod harness;

use std::time::Duration;

use harness::door::{Door, DoorSettings};
use harness::netns::isolated;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// The window the browser's received bitrate is measured over (on the page's own clock).
const WINDOW_MS: f64 = 5_000.0;

type World = harness::world::BrowserWorld;

fn world(camera: (u32, u32), camera_extra: &str) -> World {
    let settings = DoorSettings {
        camera,
        camera_extra: camera_extra.to_owned(),
        ..DoorSettings::default()
    };
    harness::world::with_browser(false, None, false, settings)
}

/// The number after `key` in a log line (`"max 200"` → 200).
fn number_after(line: &str, key: &str) -> u64 {
    line.split(key)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_end_matches([',', ')', ';']).parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

/// Rings, lets alice's browser answer, and waits for the door's video to be decoded there and
/// for the first receiver report about it to reach the door. Returns the call id.
fn call_until_feedback(w: &mut World, door: &mut Door) -> String {
    door.ring();
    let incoming = w
        .alice
        .wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call_id = incoming["call_id"].as_str().unwrap().to_owned();
    w.alice.wait_event("the door's first frame", WAIT, |e| {
        e["event"] == "first_frame"
    });
    let report = door.wait_log("video feedback: first receiver report", WAIT);
    eprintln!("door: {report}");
    call_id
}

/// The video bitrate alice's browser receives over [`WINDOW_MS`] of its own clock, in bit/s.
fn received_bitrate(w: &mut World, call_id: &str) -> f64 {
    let first = w.alice.call(json!({"cmd": "stats", "call_id": call_id}));
    let at = |s: &Value| s["video_stats_at_ms"].as_f64().unwrap_or(0.0);
    let bytes = |s: &Value| s["video_bytes_received"].as_f64().unwrap_or(0.0);
    let start = at(&first);
    assert!(start > 0.0, "no inbound video stats: {first}");
    let last = w.alice.wait_stats(call_id, "a window of video", WAIT, |s| {
        at(s) >= start + WINDOW_MS
    });
    let rate = (bytes(&last) - bytes(&first)) * 8.0 / ((at(&last) - start) / 1000.0);
    eprintln!(
        "browser received {:.0} kbit/s of video over {:.1} s ({} frames decoded)",
        rate / 1000.0,
        (at(&last) - start) / 1000.0,
        last["video_frames_decoded"]
    );
    rate
}

/// Alice hangs up; returns the door's end-of-call summary line.
fn hang_up(w: &mut World, door: &mut Door, call_id: &str) -> String {
    w.alice.call(json!({"cmd": "hangup", "call_id": call_id}));
    // The core ends the call, then the call's media closes with its summary.
    door.wait_log("call ended", WAIT);
    let summary = door.wait_log("video bitrate: min", WAIT);
    eprintln!("door: {summary}");
    summary
}

#[test]
fn door_video_follows_the_browsers_feedback_under_the_default_cap() {
    if isolated!() {
        return;
    }
    // 640×480 at 15 fps starts at its own rate (460 kbit/s), under the 2 Mbit/s cap.
    let mut w = world((640, 480), "");
    let mut door = w.start_door();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));

    let call_id = call_until_feedback(&mut w, &mut door);
    // The encoder is told of the first change, and it is what the feedback said: loopback
    // loses nothing, so the rate grows, unless a REMB came first and set a ceiling.
    let change = door.wait_log("video bitrate: 460 -> ", WAIT);
    eprintln!("door: {change}");
    let to = number_after(&change, "-> ");
    if change.contains("REMB ") {
        assert!(to <= number_after(&change, "REMB ").max(100), "{change}");
    } else {
        assert!(to > 460, "{change}");
    }
    // Chromium's REMB (it estimates from what arrives, so it follows what the encoder really
    // makes) comes a few seconds in; from then on the encoder is never above it.
    let remb = door.wait_log("video feedback: first REMB", WAIT);
    eprintln!("door: {remb}");
    received_bitrate(&mut w, &call_id);
    let summary = hang_up(&mut w, &mut door, &call_id);
    let (max, last, cap) = (
        number_after(&summary, "max "),
        number_after(&summary, "last "),
        number_after(&summary, "cap "),
    );
    assert_eq!(cap, 2000, "{summary}");
    assert!(max >= to && max <= cap, "{summary}");
    assert!(number_after(&summary, "feedback: ") > 0, "{summary}");
    let last_remb = number_after(&summary, "REMB ");
    assert!(last <= last_remb.max(100), "{summary}");
    assert!(door.stop());
}

#[test]
fn door_video_stays_under_a_low_cap() {
    if isolated!() {
        return;
    }
    let mut w = world((640, 480), "max_bitrate = \"200kbit\"");
    let mut door = w.start_door();
    w.alice.call(json!({"cmd": "auto_answer", "enabled": true}));

    let call_id = call_until_feedback(&mut w, &mut door);
    let rate = received_bitrate(&mut w, &call_id);
    assert!(rate > 0.0);
    // The encoder's rate control holds its target over a second or two, not packet by packet;
    // a keyframe asked for by the browser may fall in the window.
    assert!(
        rate <= 200_000.0 * 1.25,
        "the browser received {:.0} kbit/s under a 200 kbit/s cap",
        rate / 1000.0
    );
    let summary = hang_up(&mut w, &mut door, &call_id);
    assert_eq!(number_after(&summary, "cap "), 200, "{summary}");
    assert!(number_after(&summary, "max ") <= 200, "{summary}");
    assert!(door.stop());
}

#[test]
fn a_call_the_door_answers_gets_the_same_feedback() {
    if isolated!() {
        return;
    }
    // The browser offers (with its own rtcp-fb and extensions), the door answers.
    let mut w = world((640, 480), "max_bitrate = \"300kbit\"");
    let mut door = w.start_door();
    let call_id = w
        .alice
        .call(json!({"cmd": "place_call", "room_id": w.room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    let report = door.wait_log("video feedback: first receiver report", WAIT);
    eprintln!("door: {report}");
    let remb = door.wait_log("video feedback: first REMB", WAIT);
    eprintln!("door: {remb}");
    let rate = received_bitrate(&mut w, &call_id);
    assert!(
        rate <= 300_000.0 * 1.25,
        "the browser received {:.0} kbit/s under a 300 kbit/s cap",
        rate / 1000.0
    );
    let summary = hang_up(&mut w, &mut door, &call_id);
    assert!(number_after(&summary, "max ") <= 300, "{summary}");
    assert!(door.stop());
}
