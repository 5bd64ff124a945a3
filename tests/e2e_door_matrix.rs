//! The door's Matrix rules, end to end against real Synapse: a press rings several rooms and the
//! first answer wins, glare, invite liveness (stale invites, an invite settled within one sync
//! batch), a restart keeps the device and its keys, a homeserver outage, and a burst of garbage
//! and strangers. The door daemon runs for real (`intercom run`, pressed through `intercom ring`,
//! observed through its log and sd_notify); the other party is a plain HTTP client sending the
//! events matrix-js-sdk sends (tests/fixtures/js-sdk-43, real browser SDP, which the door's real
//! WebRTC side answers), except for the encrypted call, which is matrix-js-sdk in Chromium.

mod harness;

use std::time::{Duration, Instant};

use harness::browser::Browser;
use harness::client::Client;
use harness::door::{Door, DoorHome, DoorSettings};
use harness::garbage::{answer, hangup, invite, js_call_id};
use harness::netns::isolated;
use harness::random_string;
use harness::synapse::Synapse;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn call_id(event: &Value) -> String {
    event["content"]["call_id"].as_str().unwrap().to_owned()
}

/// Waits until `room` holds an event for which `matches` holds; returns it.
fn wait_event(client: &Client, room: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    harness::poll(what, WAIT, || {
        client.messages(room).into_iter().find(|e| matches(e))
    })
}

/// The events of `room` sent by `sender`, of type `event_type`, for `call`.
fn events_for(
    client: &Client,
    room: &str,
    sender: &str,
    event_type: &str,
    call: &str,
) -> Vec<Value> {
    client
        .messages(room)
        .into_iter()
        .filter(|e| {
            e["sender"] == sender && e["type"] == event_type && e["content"]["call_id"] == call
        })
        .collect()
}

/// Synapse, the door's home and alice (on the allow list) in a plain room with the door.
fn one_room(incoming: &'static str) -> (Synapse, Client, DoorHome, String) {
    harness::world::with_client(DoorSettings {
        incoming,
        ..DoorSettings::default()
    })
}

/// How many of the log lines seen so far contain `needle`.
fn log_count(door: &Door, needle: &str) -> usize {
    door.lines.iter().filter(|l| l.contains(needle)).count()
}

/// How many of the sd_notify lines read so far start with `prefix`.
fn notes_count(door: &Door, prefix: &str) -> usize {
    door.notes
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[test]
fn parallel_rooms_first_answer_wins() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let door_user = synapse.register("door");
    let alice = Client::login(&synapse, &synapse.register("alice"));
    let bob = Client::login(&synapse, &synapse.register("bob"));
    let room1 = alice.create_room(&[&door_user.user_id], false);
    let room2 = bob.create_room(&[&door_user.user_id], false);
    let settings = DoorSettings {
        rooms: vec![room1.clone(), room2.clone()],
        allow: vec![alice.user_id.clone(), bob.user_id.clone()],
        ..DoorSettings::default()
    };
    let home = DoorHome::new(&synapse, door_user, &settings);
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room1), (&bob, &room2)]);

    door.ring();
    door.wait_notify("calling", WAIT, |l| l == "STATUS=Calling 2 room(s)");
    let is_door_invite = |e: &Value| e["type"] == "m.call.invite" && e["sender"] == me.as_str();
    let invite1 = wait_event(
        &alice,
        &room1,
        "the door's invite in room 1",
        is_door_invite,
    );
    let invite2 = wait_event(&bob, &room2, "the door's invite in room 2", is_door_invite);
    let (id1, id2) = (call_id(&invite1), call_id(&invite2));
    assert_ne!(id1, id2, "each room gets a call id of its own");
    let door_party = invite1["content"]["party_id"].clone();
    assert_eq!(invite2["content"]["party_id"], door_party);
    for i in [&invite1, &invite2] {
        assert!(
            i["content"].get("invitee").is_none(),
            "rings the whole room: {i}"
        );
    }

    // Alice answers first; the door chooses her answer and is connecting to her.
    alice.send(&room1, "m.call.answer", &answer(&id1, "ALICEPHONE"));
    door.wait_log(&format!("status: Connecting to {}", alice.user_id), WAIT);
    // Bob answers a moment later, then calls the door himself: the door is busy and hangs his
    // new call up, so by then it has seen his answer (one room's events come in order).
    bob.send(&room2, "m.call.answer", &answer(&id2, "BOBPHONE"));
    let busy_id = js_call_id();
    bob.send(
        &room2,
        "m.call.invite",
        &invite(&busy_id, Some(&me), 60_000),
    );
    door.wait_log(&format!("busy: a call from {}", bob.user_id), WAIT);
    let busy = wait_event(&bob, &room2, "the door's busy hangup", |e| {
        e["type"] == "m.call.hangup" && e["content"]["call_id"] == busy_id.as_str()
    });
    assert_eq!(busy["content"]["reason"], "user_busy", "{busy}");

    // Room 1: alice's answer is selected, once, and her call goes on.
    let selects = events_for(&alice, &room1, &me, "m.call.select_answer", &id1);
    assert_eq!(selects.len(), 1, "{selects:?}");
    assert_eq!(selects[0]["content"]["selected_party_id"], "ALICEPHONE");
    assert_eq!(selects[0]["content"]["party_id"], door_party);
    assert!(events_for(&alice, &room1, &me, "m.call.hangup", &id1).is_empty());
    // Room 2: the ring group's other leg is hung up, and bob's answer is never selected.
    let hangups = events_for(&bob, &room2, &me, "m.call.hangup", &id2);
    assert_eq!(hangups.len(), 1, "{hangups:?}");
    assert!(
        !bob.messages(&room2)
            .iter()
            .any(|e| e["type"] == "m.call.select_answer"),
        "nothing is selected in room 2"
    );
    assert_eq!(
        log_count(&door, &format!("Connecting to {}", bob.user_id)),
        0
    );

    // Alice hangs up: the call was hers.
    alice.send(&room1, "m.call.hangup", &hangup(&id1, "ALICEPHONE"));
    let ended = door.wait_log("call ended", WAIT);
    assert!(ended.contains("remote: true"), "{ended}");
    assert!(door.stop());
    println!("parallel_rooms_first_answer_wins: {:?}", t0.elapsed());
}

#[test]
fn glare_the_lesser_call_id_survives() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let (_synapse, alice, home, room) = one_room("auto-answer");
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);
    let door_invite = |e: &Value, not: &[String]| {
        e["type"] == "m.call.invite" && e["sender"] == me.as_str() && !not.contains(&call_id(e))
    };

    // 1. Alice's call id is the lesser: her call replaces the door's, which the door answers.
    door.ring();
    let ours = call_id(&wait_event(&alice, &room, "the door's invite", |e| {
        door_invite(e, &[])
    }));
    let theirs = format!("1000{}", random_string(20));
    assert!(theirs < ours, "{theirs} < {ours}");
    alice.send(&room, "m.call.invite", &invite(&theirs, Some(&me), 60_000));
    let answered = wait_event(&alice, &room, "the door's answer to alice's call", |e| {
        e["type"] == "m.call.answer" && e["content"]["call_id"] == theirs.as_str()
    });
    assert_eq!(answered["sender"], me.as_str());
    assert!(answered["content"]["answer"]["sdp"]
        .as_str()
        .is_some_and(|s| s.contains("m=video")));
    let replaced = events_for(&alice, &room, &me, "m.call.hangup", &ours);
    assert_eq!(
        replaced.len(),
        1,
        "the door hangs up its own call: {replaced:?}"
    );
    door.wait_log("call ended: Replaced", WAIT);
    alice.send(&room, "m.call.hangup", &hangup(&theirs, "PAGEA"));
    door.wait_log("call ended: Hangup", WAIT);
    door.wait_log("status: Idle", WAIT);

    // 2. Alice's call id is the greater: the door hangs hers up and keeps ringing.
    door.ring();
    let seen = [ours.clone()];
    let ours2 = call_id(&wait_event(
        &alice,
        &room,
        "the door's second invite",
        |e| door_invite(e, &seen),
    ));
    let theirs2 = format!("zzzz{}", random_string(20));
    assert!(theirs2 > ours2, "{theirs2} > {ours2}");
    alice.send(&room, "m.call.invite", &invite(&theirs2, Some(&me), 60_000));
    let refused = wait_event(&alice, &room, "the door hanging up alice's call", |e| {
        e["type"] == "m.call.hangup" && e["content"]["call_id"] == theirs2.as_str()
    });
    assert_eq!(refused["sender"], me.as_str());
    // The door sends one room's events in order: whatever it decided with the hangup is out.
    assert!(events_for(&alice, &room, &me, "m.call.answer", &theirs2).is_empty());
    assert!(events_for(&alice, &room, &me, "m.call.hangup", &ours2).is_empty());
    // Its own call was still ringing: stopping the door hangs it up.
    assert!(door.stop());
    let bye = events_for(&alice, &room, &me, "m.call.hangup", &ours2);
    assert_eq!(bye.len(), 1, "{bye:?}");
    assert_eq!(bye[0]["content"]["reason"], "user_hangup");
    println!("glare_the_lesser_call_id_survives: {:?}", t0.elapsed());
}

#[test]
fn stale_invite_never_rings() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let (_synapse, alice, home, room) = one_room("ring");
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);
    door.clear_notes();

    // 2 s of lifetime: less than the 3 s the door needs left to ring.
    let stale = js_call_id();
    alice.send(&room, "m.call.invite", &invite(&stale, Some(&me), 2_000));
    let ignored = door.wait_log("ignored an invite", WAIT);
    assert!(ignored.contains("stale"), "{ignored}");
    assert!(ignored.contains(&alice.user_id), "{ignored}");

    let fresh = js_call_id();
    alice.send(&room, "m.call.invite", &invite(&fresh, Some(&me), 60_000));
    door.wait_log("status: Ringing", WAIT);
    door.wait_notify("ringing", WAIT, |l| l.starts_with("STATUS=Ringing"));
    // Every status change is logged as it happens: the stale invite never rang, not even
    // briefly (sd_notify may merge two changes into one message; the log does not).
    assert_eq!(log_count(&door, "] status: "), 1, "{:?}", door.lines);
    assert_eq!(notes_count(&door, "STATUS=Ringing"), 1, "{:?}", door.notes);

    // A press answers the call that rings: the fresh one.
    door.ring();
    wait_event(&alice, &room, "the door's answer", |e| {
        e["type"] == "m.call.answer" && e["content"]["call_id"] == fresh.as_str()
    });
    assert!(events_for(&alice, &room, &me, "m.call.answer", &stale).is_empty());
    assert!(door.stop());
    println!("stale_invite_never_rings: {:?}", t0.elapsed());
}

#[test]
fn invite_and_hangup_in_one_sync_batch_never_ring() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let (_synapse, alice, home, room) = one_room("ring");
    let me = home.user.user_id.clone();
    // A first run: the store gets its sync token (the very first sync is history).
    let door = home.start_joined(&[(&alice, &room)]);
    assert!(door.stop());

    // While the door is down, a call is placed and hung up: the door's next sync brings both.
    let settled = js_call_id();
    alice.send(&room, "m.call.invite", &invite(&settled, Some(&me), 60_000));
    alice.send(&room, "m.call.hangup", &hangup(&settled, "PAGEA"));
    let mut door = home.start_ready();

    // A fresh call afterwards rings: the settled one did not (it would ring first, or make the
    // door busy).
    let fresh = js_call_id();
    alice.send(&room, "m.call.invite", &invite(&fresh, Some(&me), 60_000));
    door.wait_log("status: Ringing", WAIT);
    door.wait_notify("ringing", WAIT, |l| l.starts_with("STATUS=Ringing"));
    assert_eq!(
        log_count(&door, "first sync of this store"),
        0,
        "the restart resumes from the stored sync token: {:?}",
        door.lines
    );
    assert_eq!(log_count(&door, "] status: "), 1, "{:?}", door.lines);
    assert_eq!(notes_count(&door, "STATUS=Ringing"), 1, "{:?}", door.notes);
    assert_eq!(log_count(&door, "busy"), 0, "{:?}", door.lines);

    // A press answers what rings: the fresh call, never the settled one.
    door.ring();
    wait_event(&alice, &room, "the door's answer", |e| {
        e["type"] == "m.call.answer" && e["content"]["call_id"] == fresh.as_str()
    });
    assert!(events_for(&alice, &room, &me, "m.call.answer", &settled).is_empty());
    assert!(door.stop());
    println!(
        "invite_and_hangup_in_one_sync_batch_never_ring: {:?}",
        t0.elapsed()
    );
}

/// Alice (in her browser) calls the door in an encrypted room; the door answers, its video
/// reaches her, and she hangs up. The door must decrypt every event of hers to get there.
fn encrypted_call(alice: &mut Browser, door: &mut Door, room: &str) {
    door.clear_notes();
    let call = alice.call(json!({"cmd": "place_call", "room_id": room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.wait_event("the door's video", WAIT, |e| e["event"] == "first_frame");
    door.wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
    alice.call(json!({"cmd": "hangup", "call_id": call}));
    let ended = door.wait_log("call ended", WAIT);
    assert!(ended.contains("remote: true"), "{ended}");
    door.wait_log("status: Idle", WAIT);
    assert_eq!(log_count(door, "cannot decrypt"), 0, "{:?}", door.lines);
}

#[test]
fn restart_keeps_the_device_and_decrypts() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let harness::world::BrowserWorld {
        synapse,
        mut alice,
        alice_user: _,
        home,
        room,
    } = harness::world::with_browser(true, None, false, DoorSettings::default());
    let me = home.user.user_id.clone();

    // The door's own view of its account, with the token `intercom login` stored.
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(home.dir.path().join("state/session.json")).unwrap(),
    )
    .unwrap();
    let device = session["device_id"].as_str().unwrap().to_owned();
    let own = Client::with_token(&synapse, &me, session["access_token"].as_str().unwrap());
    let devices = || -> Vec<String> {
        let mut ids: Vec<String> = own
            .devices()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    // The device's identity keys, as other users' clients see them.
    let keys = || -> Option<Value> {
        let reply = own.post("/keys/query", json!({"device_keys": {&me: []}}));
        let keys = &reply["device_keys"][&me][&device]["keys"];
        keys.is_object().then(|| keys.clone())
    };

    let wait_joined = |alice: &mut Browser| {
        alice.call(json!({"cmd": "wait_member", "room_id": room, "user_id": me,
                          "timeout_ms": 30000}));
    };
    let mut door = home.start_ready();
    wait_joined(&mut alice);
    let keys_before = harness::poll("the door's device keys", WAIT, keys);
    let devices_before = devices();
    assert!(devices_before.contains(&device), "{devices_before:?}");
    // A call before the restart: alice shares her room key with the door's device.
    encrypted_call(&mut alice, &mut door, &room);
    assert!(door.stop());

    let mut door = home.start_ready();
    assert_eq!(devices(), devices_before, "a restart made a new device");
    assert_eq!(
        keys(),
        Some(keys_before),
        "a restart changed the device's keys"
    );

    // An encrypted call after the restart: the door reads alice's invite (sent with the megolm
    // session she shared before the restart) and answers it.
    encrypted_call(&mut alice, &mut door, &room);
    assert!(door.stop());
    assert_eq!(devices(), devices_before);
    println!("restart_keeps_the_device_and_decrypts: {:?}", t0.elapsed());
}

#[test]
fn homeserver_outage_while_idle_then_a_press_calls_within_5s() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let (mut synapse, alice, home, room) = one_room("auto-answer");
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);

    let down = Instant::now();
    synapse.stop();
    door.wait_log("homeserver unreachable", WAIT);
    door.wait_notify("the outage in the status", WAIT, |l| {
        l.starts_with("STATUS=Idle (homeserver unreachable")
    });
    synapse.restart();
    door.wait_log("homeserver reachable again", WAIT);
    println!(
        "homeserver back for the door {:?} after it went down",
        down.elapsed()
    );

    let pressed = Instant::now();
    door.ring();
    let invite = wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == me.as_str()
    });
    let took = pressed.elapsed();
    println!("invite in the room {took:?} after the press");
    assert!(
        took < Duration::from_secs(5),
        "the invite took {took:?} after the outage"
    );
    assert!(invite["content"]["offer"]["sdp"]
        .as_str()
        .is_some_and(|s| s.contains("m=video")));
    assert!(door.stop());
    println!(
        "homeserver_outage_while_idle_then_a_press_calls_within_5s: {:?}",
        t0.elapsed()
    );
}

#[test]
fn garbage_and_stranger_events_do_not_ring() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let (synapse, alice, home, room) = one_room("auto-answer");
    let me = home.user.user_id.clone();
    let mallory = Client::login(&synapse, &synapse.register("mallory"));
    alice.invite(&room, &mallory.user_id);
    mallory.join(&room);
    let mut door = home.start_joined(&[(&alice, &room)]);
    door.clear_notes();

    let burst = harness::garbage::burst(&alice, &mallory, &me);
    assert_eq!(burst.events.len(), 50);
    burst.send(&room);
    let (mut for_door, for_room, last) = (burst.for_door.clone(), &burst.for_room, &burst.last);

    wait_event(
        &alice,
        &room,
        "the door's reject of mallory's last call",
        |e| e["type"] == "m.call.reject" && e["content"]["call_id"] == last.as_str(),
    );
    for _ in 0..for_door.len() + for_room.len() {
        door.wait_log(&format!("refused a call from {}", mallory.user_id), WAIT);
    }
    // The door answered nothing but mallory's calls for it, each with one reject.
    let from_door: Vec<Value> = alice
        .messages(&room)
        .into_iter()
        .filter(|e| {
            e["sender"] == me.as_str()
                && e["type"].as_str().is_some_and(|t| t.starts_with("m.call."))
        })
        .collect();
    let mut rejected = Vec::new();
    for e in &from_door {
        assert_eq!(e["type"], "m.call.reject", "{e}");
        rejected.push(call_id(e));
    }
    rejected.sort();
    for_door.sort();
    assert_eq!(rejected, for_door);
    assert!(for_room.iter().all(|id| !rejected.contains(id)));
    // Nothing rang or was answered, and the peers' 60 KB strings stayed out of the log.
    for status in [
        "status: Ringing",
        "status: Answering",
        "status: Connecting",
        "status: In call",
    ] {
        assert_eq!(log_count(&door, status), 0, "{status}: {:?}", door.lines);
    }
    assert!(
        log_count(&door, "dropping a call event") >= 15,
        "the malformed events are logged as dropped: {:?}",
        door.lines
    );
    let longest = door.lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");

    // A press still calls.
    door.ring();
    door.wait_notify("calling", WAIT, |l| l == "STATUS=Calling 1 room(s)");
    wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == me.as_str()
    });
    for prefix in ["STATUS=Ringing", "STATUS=Answering", "STATUS=In call"] {
        assert_eq!(notes_count(&door, prefix), 0, "{prefix}: {:?}", door.notes);
    }
    assert!(door.stop());
    println!(
        "garbage_and_stranger_events_do_not_ring: {:?}",
        t0.elapsed()
    );
}

/// A peer in a call sends 4 events of 300 passive-TCP candidates, each at another address of a
/// listener that never accepts: were they handed to the ICE agent, the door would open a
/// connection for each (a LAN scanner, and descriptors exhausted). None is opened, the drop is
/// logged once, and the door stays usable.
#[test]
fn a_flood_of_tcp_candidates_opens_no_connections() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = one_room("auto-answer");
    let me = home.user.user_id.clone();
    let mut door = home.start_joined(&[(&alice, &room)]);
    // Every 127.x.y.z reaches a listener on 0.0.0.0; it never accepts, so a connection to it
    // stays open (or pending) in the door.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let call = js_call_id();
    let offer = invite(&call, Some(&me), 60_000);
    let party = offer["party_id"].as_str().unwrap().to_owned();
    alice.send(&room, "m.call.invite", &offer);
    wait_event(&alice, &room, "the door's answer", |e| {
        e["type"] == "m.call.answer" && e["sender"] == me.as_str()
    });
    let before = harness::procfs::open_fds(door.pid());
    for round in 0..4u32 {
        let candidates: Vec<Value> = (0..300u32)
            .map(|i| {
                json!({
                    "candidate": format!(
                        "candidate:{round}{i} 1 tcp 1518280447 127.{}.{}.{} {port} typ host tcptype passive",
                        round + 1, i / 200, i % 200 + 1
                    ),
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                })
            })
            .collect();
        let content = json!({"call_id": call, "party_id": party, "version": "1",
                             "candidates": candidates});
        alice.send(&room, "m.call.candidates", &content);
    }
    // A command after them: once the door has judged it, it has handed on what it would of
    // the candidates (one sync response's call events go to the core before its messages).
    alice.send(
        &room,
        "m.room.message",
        &json!({"msgtype": "m.text", "body": "!open"}),
    );
    door.wait_log("refused: this door has no relay configured", WAIT);
    // Connection attempts start as soon as the agent has a candidate: watch for a while.
    let watch = Instant::now();
    let mut most = before;
    while watch.elapsed() < Duration::from_secs(3) {
        most = most.max(harness::procfs::open_fds(door.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most < before + 20,
        "descriptors went from {before} to {most}"
    );
    let dropped: Vec<&String> = door
        .lines
        .iter()
        .filter(|l| l.contains("dropped ICE candidates from"))
        .collect();
    assert!(
        dropped.len() == 1 && dropped[0].contains(" TCP"),
        "the drop is logged once: {dropped:?}"
    );
    alice.send(&room, "m.call.hangup", &hangup(&call, &party));
    door.wait_log("call ended", WAIT);
    drop(listener);
    assert!(door.stop());
}

/// `STATUS=` must reach systemd when the status changes, not at the driver loop's next wake-up
/// (it once did: under the shipped unit's 15 s watchdog ping `systemctl status` lagged by up to
/// 15 s, and without a watchdog by a whole transition). The door is started by hand here, without
/// a watchdog, because the harness's 1 s watchdog would hide the lag.
#[test]
fn status_reaches_systemd_as_it_changes() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = one_room("ring");
    let me = home.user.user_id.clone();
    let socket = home.dir.path().join("notify-no-watchdog.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_intercom"))
        .args(["run", "--config"])
        .arg(&home.config)
        .env("NOTIFY_SOCKET", &socket)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(home.dir.path().join("door.log")).unwrap())
        .spawn()
        .unwrap();
    // Reads notes until one line satisfies `matches`, or `within` has passed.
    let wait = |within: Duration, matches: &dyn Fn(&str) -> bool| -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            notify.set_read_timeout(Some(left)).unwrap();
            let n = notify.recv(&mut buf).ok()?;
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(line) = message.lines().find(|l| matches(l)) {
                return Some(line.to_owned());
            }
        }
    };
    let ready = wait(WAIT, &|l| l == "READY=1");
    harness::poll("the door to join", WAIT, || {
        alice.joined_members(&room).contains(&me).then_some(())
    });
    alice.send(
        &room,
        "m.call.invite",
        &invite(&js_call_id(), Some(&me), 60_000),
    );
    let sent = Instant::now();
    let ringing = wait(Duration::from_secs(5), &|l| l.starts_with("STATUS=Ringing"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.is_some(), "no READY=1");
    let log = std::fs::read_to_string(home.dir.path().join("door.log")).unwrap();
    let logged = log.lines().find(|l| l.contains("status: Ringing"));
    assert!(
        ringing.is_some(),
        "STATUS=Ringing not sent within 5 s of the invite (waited {:?}), though the log has \
         {logged:?}",
        sent.elapsed()
    );
}

/// A sync response matrix-sdk cannot read (here every one that carries an update of one room,
/// broken by a proxy in front of Synapse) is skipped and logged once, and the door syncs on
/// from the next one: it stays online, rings, sees its call answered and hung up. What the
/// skipped responses carried is lost, by design (see `Unreadable` in src/matrix/mod.rs).
#[test]
fn an_unreadable_sync_response_is_skipped_and_the_door_syncs_on() {
    if isolated!() {
        return;
    }
    let synapse = Synapse::start(None);
    let proxy = harness::proxy::Proxy::start(synapse.port);
    let door_user = synapse.register("door");
    let alice = Client::login(&synapse, &synapse.register("alice"));
    let room = alice.create_room(&[&door_user.user_id], false);
    let junk = alice.create_room(&[&door_user.user_id], false);
    let me = door_user.user_id.clone();
    let home = DoorHome::new(
        &synapse,
        door_user,
        &DoorSettings {
            rooms: vec![room.clone()],
            allow: vec![alice.user_id.clone()],
            incoming: "auto-answer",
            homeserver: Some(proxy.url()),
            ..DoorSettings::default()
        },
    );
    let mut door = home.start_joined(&[(&alice, &room), (&alice, &junk)]);
    door.wait_notify("online", WAIT, |l| l == "STATUS=Idle");

    proxy.break_syncs_with(&junk);
    let text = json!({"msgtype": "m.text", "body": "a message the door never reads"});
    alice.send(&junk, "m.room.message", &text);
    door.wait_log("skipped a sync response matrix-sdk cannot read", WAIT);
    assert!(proxy.broken() > 0);

    door.ring();
    let invite = wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == me.as_str()
    });
    let call = call_id(&invite);
    alice.send(&room, "m.call.answer", &answer(&call, "ALICEDEVICE"));
    wait_event(&alice, &room, "the door's select_answer", |e| {
        e["type"] == "m.call.select_answer" && e["content"]["call_id"] == call.as_str()
    });
    // (The fixture's answer is a browser's that is long gone: media never connects here.)
    let status = door.status(WAIT);
    assert_eq!(status, format!("Connecting to {}", alice.user_id));

    // Another broken response, skipped without another warning; the door still syncs on.
    alice.send(&junk, "m.room.message", &text);
    door.wait_log("skipped another unreadable sync response", WAIT);
    alice.send(&room, "m.call.hangup", &hangup(&call, "ALICEDEVICE"));
    door.wait_log("call ended", WAIT);
    assert_eq!(
        log_count(&door, "skipped a sync response matrix-sdk cannot read"),
        1,
        "{}",
        door.log_text()
    );
    assert_eq!(log_count(&door, "homeserver unreachable"), 0);
    assert!(door.stop());
}
