//! What the door's log tells a reader of the journal, through the real binary against real
//! Synapse and matrix-js-sdk: a normal start and normal calls log no ERROR and no WARN; a room
//! member's flood of malformed call events yields a bounded number of warnings, and the audit
//! line of an opening that follows is still there.

mod harness;

use std::time::{Duration, SystemTime};

use harness::browser::Browser;
use harness::client::Client;
use harness::door::{Door, DoorHome, DoorSettings};
use harness::netns::isolated;
use harness::synapse::Synapse;
use intercom::logging::{rfc3339_utc, BURST};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The level of a log line (`[<time> WARN  target] message`), if it is one.
fn level(line: &str) -> Option<&str> {
    line.strip_prefix('[')?.split_whitespace().nth(1)
}

/// Alice (in her browser) calls the door in `room`; it answers, its video reaches her, and she
/// hangs up.
fn alice_calls(alice: &mut Browser, door: &mut Door, room: &str) {
    door.clear_notes();
    let call = alice.call(json!({"cmd": "place_call", "room_id": room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
    alice.call(json!({"cmd": "hangup", "call_id": call}));
    door.wait_log("call ended", WAIT);
    door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
    alice.wait_event("alice's end of the call", WAIT, |e| e["event"] == "hangup");
    alice.clear_events();
}

#[test]
fn a_normal_start_and_normal_calls_log_no_error_and_no_warning() {
    if isolated!() {
        return;
    }
    let started = rfc3339_utc(SystemTime::now());
    // Alice with E2EE in her browser, in an encrypted and a plain room with the door; the
    // homeserver offers no TURN (it answers `{}`), as most do.
    let synapse = Synapse::start(None);
    let door_user = synapse.register("door");
    let alice_user = synapse.register("alice");
    let mut alice = Browser::start("alice", false);
    alice.call(
        json!({"cmd": "login", "homeserver": synapse.url(), "user": alice_user.localpart,
               "password": alice_user.password, "encryption": true}),
    );
    let mut room = |encrypted: bool| {
        alice.call(json!({"cmd": "create_room", "invite": [door_user.user_id],
                          "encrypted": encrypted}))["room_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (plain, encrypted) = (room(false), room(true));
    let home = DoorHome::new(
        &synapse,
        door_user,
        &DoorSettings {
            rooms: vec![plain.clone(), encrypted.clone()],
            allow: vec![alice_user.user_id.clone()],
            ..DoorSettings::default()
        },
    );
    let me = home.user.user_id.clone();
    let mut door = home.start();
    door.wait_notify("READY=1", WAIT, |l| l == "READY=1");
    for room in [&plain, &encrypted] {
        alice.call(json!({"cmd": "wait_member", "room_id": room, "user_id": me,
                          "timeout_ms": 30000}));
    }

    // Alice calls the door in each room, then the door rings both and she answers one.
    alice_calls(&mut alice, &mut door, &plain);
    alice_calls(&mut alice, &mut door, &encrypted);
    door.clear_notes();
    door.ring();
    let incoming = alice.wait_event("the door's invite", WAIT, |e| e["event"] == "incoming");
    let call = incoming["call_id"].as_str().unwrap().to_owned();
    alice.call(json!({"cmd": "answer", "call_id": call}));
    alice.wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
    alice.call(json!({"cmd": "hangup", "call_id": call}));
    door.wait_log("call ended", WAIT);
    door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
    let (stopped, lines) = door.stop_with_log();
    assert!(stopped, "SIGTERM ends the daemon with exit 0");
    let loud: Vec<&String> = lines
        .iter()
        .filter(|l| matches!(level(l), Some("ERROR" | "WARN")))
        .collect();
    assert!(
        loud.is_empty(),
        "a normal start and normal calls logged these:\n{}",
        loud.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The door's own events coming back in the sync are not news.
    let echoes: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("from {me}")))
        .collect();
    assert!(
        echoes.is_empty(),
        "the door's own events were logged as received:\n{}",
        echoes
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every line can be matched with the homeserver's and the phone's: it starts with the
    // wall-clock time, in UTC, between the start of the test and now.
    let now = rfc3339_utc(SystemTime::now());
    for line in &lines {
        let time = line.strip_prefix('[').and_then(|l| l.split(' ').next());
        assert!(
            time.is_some_and(|t| t.len() == 24
                && t.ends_with('Z')
                && t >= started.as_str()
                && t <= now.as_str()),
            "not stamped between {started} and {now}: {line}"
        );
    }
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

#[test]
fn a_flood_of_malformed_call_events_is_bounded_and_the_opening_is_logged() {
    if isolated!() {
        return;
    }
    let (synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        call_extra: "snapshot = false".into(),
        extra: "[door]\nchip = \"synthetic\"\nline = 27\npulse = \"300ms\"\nroom_command = true\n"
            .into(),
        ..DoorSettings::default()
    });
    // Mallory is a member of the room, not on the allow list.
    let mallory = Client::login(&synapse, &synapse.register("mallory"));
    alice.invite(&room, &mallory.user_id);
    mallory.join(&room);
    let mut door = home.start();
    door.wait_notify("READY=1", WAIT, |l| l == "READY=1");
    harness::poll("the door to join its room", WAIT, || {
        alice
            .joined_members(&room)
            .contains(&home.user.user_id)
            .then_some(())
    });

    // Three events nobody can decrypt (a megolm session the door was never given): each is
    // logged once, by the adapter, with its sender.
    for i in 0..3 {
        let content = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": format!("AwgA{i}"),
                             "sender_key": "c2VuZGVyIGtleQ", "device_id": "MALLORY",
                             "session_id": "bm8gc3VjaCBzZXNzaW9u"});
        mallory.send(&room, "m.room.encrypted", &content);
    }
    // 500 call events that cannot be read, of two kinds.
    const FLOOD: usize = 500;
    let flood = std::time::Instant::now();
    for i in 0..FLOOD {
        if i % 2 == 0 {
            let mut c = harness::garbage::invite(&harness::garbage::js_call_id(), None, 60_000);
            c.as_object_mut().unwrap().remove("call_id");
            mallory.send(&room, "m.call.invite", &c);
        } else {
            let c = json!({"call_id": format!("c{i}"), "party_id": "A", "version": "1",
                           "candidates": "not a list"});
            mallory.send(&room, "m.call.candidates", &c);
        }
    }
    alice.send(&room, "m.room.message", &text("!open"));
    door.wait_log(&format!("door opened by {}", alice.user_id), WAIT);
    door.wait_log("synthetic relay: off", WAIT);
    let (stopped, lines) = door.stop_with_log();
    assert!(stopped);
    // Every warning of the run but the three undecryptable events: the flood's, whoever says
    // them (the door or a dependency).
    let flood_warnings: Vec<&String> = lines
        .iter()
        .filter(|l| {
            matches!(level(l), Some("ERROR" | "WARN")) && !l.contains("cannot decrypt an event")
        })
        .collect();
    // For each kind, a minute of the flood gives the first few lines, one saying the rest are
    // held back, and one telling how many were: however many events there were.
    let minutes = flood.elapsed().as_secs() / 60 + 1;
    let bound = 2 * minutes as usize * (BURST as usize + 2);
    let text = flood_warnings
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    println!(
        "{} warnings for mallory's {FLOOD} events in {:?} (at most {bound}):\n{text}",
        flood_warnings.len(),
        flood.elapsed()
    );
    assert!(
        flood_warnings.len() <= bound,
        "{} warnings for mallory's {FLOOD} events (at most {bound}):\n{text}",
        flood_warnings.len()
    );
    // They name mallory, and a line for each kind says the rest are held back.
    assert!(
        !flood_warnings.is_empty()
            && flood_warnings
                .iter()
                .all(|l| l.contains(mallory.user_id.as_str())),
        "{text}"
    );
    assert!(
        flood_warnings
            .iter()
            .filter(|l| l.contains("held back"))
            .count()
            >= 2,
        "a line for each kind says the rest are held back:\n{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("door opened by"))
            .count(),
        1,
        "{lines:?}"
    );
    let undecryptable: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("decrypt") && matches!(level(l), Some("ERROR" | "WARN")))
        .collect();
    assert_eq!(
        undecryptable.len(),
        3,
        "each undecryptable event once: {undecryptable:#?}"
    );
    assert!(
        undecryptable
            .iter()
            .all(|l| l.contains(&format!("cannot decrypt an event from {}", mallory.user_id))),
        "{undecryptable:#?}"
    );
}
