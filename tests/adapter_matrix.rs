//! The Matrix adapter against real Synapse: login and session restore (one device for life),
//! sending every call event as the spec says, receiving matrix-js-sdk's events as batches,
//! history never delivered, invites accepted only from the allow list, and encryption.
//!
//! The peers are a bare HTTP client (`harness::client`) and, for E2EE, matrix-js-sdk in a
//! browser. Each test runs in its own network namespace with only `lo`.

mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::browser::Browser;
use harness::call_events::every_body;
use harness::client::Client as Peer;
use harness::netns::isolated;
use harness::synapse::{Synapse, User};
use intercom::call::{
    CallEvent, CallEventBody, CallId, HangupReason, PartyId, ReceivedEvent, RoomId, UserId,
};
use intercom::config::{HomeserverUrl, MatrixConfig, RoomRef, UserId as ConfigUser};
use intercom::matrix::{self, Matrix, MatrixEvent, Session};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The door's account and state directory, and alice (a plain client) in a room she made and
/// invited the door to, which the door's configuration rings.
struct AliceRoom {
    door: User,
    state: tempfile::TempDir,
    alice_peer: Peer,
    room: String,
    config: MatrixConfig,
}

fn alice_room(synapse: &Synapse, encrypted: bool) -> AliceRoom {
    let door = synapse.register("door");
    let alice = synapse.register("alice");
    let state = tempfile::tempdir().unwrap();
    let alice_peer = Peer::login(synapse, &alice);
    let room = alice_peer.create_room(&[&door.user_id], encrypted);
    let config = door_config(synapse, &door, state.path(), &[&room], &[]);
    AliceRoom {
        door,
        state,
        alice_peer,
        room,
        config,
    }
}

fn door_config(
    synapse: &Synapse,
    door: &User,
    state: &Path,
    rooms: &[&str],
    allow: &[&str],
) -> MatrixConfig {
    MatrixConfig {
        homeserver: HomeserverUrl(synapse.url()),
        user: ConfigUser(door.user_id.clone()),
        rooms: rooms.iter().map(|r| RoomRef((*r).to_owned())).collect(),
        allow: allow.iter().map(|u| ConfigUser((*u).to_owned())).collect(),
        state_dir: state.to_owned(),
        device_name: "door under test".into(),
        accept_invites: true,
    }
}

/// Connects and starts syncing; returns once the first sync succeeded.
async fn connect_and_sync(config: &MatrixConfig) -> (Matrix, mpsc::Receiver<MatrixEvent>) {
    let door = matrix::connect(config).await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    door.spawn_sync(tx);
    match next(&mut rx, "the first sync").await {
        MatrixEvent::Online => {}
        other => panic!("expected Online first, got {other:?}"),
    }
    (door, rx)
}

async fn next(rx: &mut mpsc::Receiver<MatrixEvent>, what: &str) -> MatrixEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing from the sync loop within {WAIT:?} ({what})"))
        .expect("the sync loop ended")
}

/// Waits until the sync loop has reported an invitation into each of `rooms`; returns who
/// invited the door into each, in the order of `rooms`. Other reports on the way are dropped.
async fn invited(rx: &mut mpsc::Receiver<MatrixEvent>, rooms: &[&str]) -> Vec<Option<String>> {
    let mut inviters = vec![None; rooms.len()];
    let mut seen = vec![false; rooms.len()];
    while seen.contains(&false) {
        if let MatrixEvent::Invited { room, inviter } = next(rx, "the invitations").await {
            if let Some(i) = rooms.iter().position(|r| *r == room.0) {
                seen[i] = true;
                inviters[i] = inviter.map(|u| u.0);
            }
        }
    }
    inviters
}

/// Collects every received call event (and other reports) until `done` holds for the events
/// collected so far.
async fn receive_until(
    rx: &mut mpsc::Receiver<MatrixEvent>,
    what: &str,
    done: impl Fn(&[ReceivedEvent]) -> bool,
) -> (Vec<ReceivedEvent>, Vec<MatrixEvent>, usize) {
    let mut events = Vec::new();
    let mut others = Vec::new();
    let mut batches = 0;
    while !done(&events) {
        match next(rx, what).await {
            MatrixEvent::Batch(batch) => {
                assert!(!batch.is_empty(), "an empty batch was sent");
                batches += 1;
                events.extend(batch);
            }
            other => others.push(other),
        }
    }
    (events, others, batches)
}

/// Polls `f` (blocking calls to Synapse) while the adapter's tasks run in between.
async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fixture(name: &str) -> Value {
    let path = harness::root().join("tests/fixtures/js-sdk-43").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A fixture's content, made this test's: its call id, and the door as the invitee.
fn fixture_content(name: &str, call_id: &str, invitee: &str) -> Value {
    let mut content = fixture(name)["content"].clone();
    content["call_id"] = call_id.into();
    if content.get("invitee").is_some() {
        content["invitee"] = invitee.into();
    }
    content
}

#[test]
fn login_once_then_every_connect_is_the_same_device() {
    if isolated!() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let door = synapse.register("door");
    let state = tempfile::tempdir().unwrap();
    let config = door_config(&synapse, &door, state.path(), &[], &[]);

    let wrong = runtime().block_on(matrix::login(&config, "not the password"));
    let wrong = wrong.unwrap_err().to_string();
    assert!(wrong.contains("cannot log @door:localhost in"), "{wrong}");
    assert!(!wrong.contains("not the password"), "{wrong}");

    let session = runtime()
        .block_on(matrix::login(&config, &door.password))
        .unwrap();
    assert_eq!(session.user_id, door.user_id);
    let file = matrix::session_path(state.path());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&matrix::store_path(state.path())), 0o700);
    assert_eq!(Session::load(&file).unwrap(), session);
    assert!(!format!("{session:?}").contains(&session.access_token));

    let again = runtime().block_on(matrix::login(&config, &door.password));
    assert!(
        again.unwrap_err().to_string().contains("already logged in"),
        "a second login must not make a second device"
    );

    // Registration made a device of its own: compare with the devices right after the login.
    let own = Peer::with_token(&synapse, &door.user_id, &session.access_token);
    let ids = |devices: Vec<Value>| -> Vec<String> {
        let mut ids: Vec<String> = devices
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let after_login = ids(own.devices());
    assert!(after_login.contains(&session.device_id));

    // Two starts of the daemon: each restores the session, syncs, and is the same device.
    for _ in 0..2 {
        runtime().block_on(async {
            let (m, _rx) = connect_and_sync(&config).await;
            assert_eq!(m.device_id().0, session.device_id);
            assert_eq!(m.user_id().0, door.user_id);
        });
    }
    let devices = own.devices();
    let doors: Vec<&Value> = devices
        .iter()
        .filter(|d| d["display_name"] == "door under test")
        .collect();
    assert_eq!(doors.len(), 1, "{devices:?}");
    assert_eq!(doors[0]["device_id"], session.device_id.as_str());
    assert_eq!(ids(devices), after_login, "a restore made a new device");
    println!("login + two restores: {:?}", t0.elapsed());
}

#[test]
fn every_call_event_is_sent_as_the_spec_says() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let AliceRoom {
        door,
        // Bound, not `_`: the state directory must live as long as the test.
        state: _state,
        alice_peer,
        room,
        config,
    } = alice_room(&synapse, false);

    runtime().block_on(async {
        let session = matrix::login(&config, &door.password).await.unwrap();
        Peer::with_token(&synapse, &door.user_id, &session.access_token).join(&room);
        let (m, mut rx) = connect_and_sync(&config).await;
        assert_eq!(m.rooms(), [RoomId(room.clone())]);
        let party = m.device_id();
        let sent: Vec<CallEvent> = every_body()
            .into_iter()
            .enumerate()
            .map(|(i, body)| CallEvent {
                call_id: CallId(format!("call-{i}")),
                party_id: party.clone(),
                body,
            })
            .collect();
        let t_send = Instant::now();
        for e in &sent {
            m.send(RoomId(room.clone()), e.clone());
        }
        let on_server = poll("every event to reach the room", || {
            let calls: Vec<Value> = alice_peer
                .messages(&room)
                .into_iter()
                .filter(|e| e["type"].as_str().unwrap_or("").starts_with("m.call."))
                .collect();
            (calls.len() == sent.len()).then_some(calls)
        })
        .await;
        println!(
            "{} events sent and on the server in {:?}",
            sent.len(),
            t_send.elapsed()
        );

        for (got, e) in on_server.iter().zip(&sent) {
            let c = &got["content"];
            assert_eq!(got["type"], e.body.event_type(), "in order: {got}");
            assert_eq!(got["sender"], door.user_id.as_str());
            assert_eq!(c["version"], "1", "{got}");
            assert_eq!(c["party_id"], party.0.as_str(), "{got}");
            assert_eq!(c["call_id"], e.call_id.0.as_str());
        }
        let content = |t: &str| &on_server.iter().find(|e| e["type"] == t).unwrap()["content"];
        let invite = content("m.call.invite");
        assert_eq!(invite["lifetime"], 90000);
        assert_eq!(invite["offer"]["type"], "offer");
        assert!(invite["offer"]["sdp"].as_str().unwrap().starts_with("v=0"));
        assert!(invite.get("invitee").is_none(), "{invite}");
        assert_eq!(
            invite["sdp_stream_metadata"],
            json!({"cam": {"purpose": "m.usermedia"}, "screen": {"purpose": "m.screenshare"}})
        );
        assert_eq!(content("m.call.answer")["answer"]["type"], "answer");
        assert_eq!(
            content("m.call.candidates")["candidates"],
            json!([{"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host",
                    "sdpMid": "0", "sdpMLineIndex": 0}, {"candidate": ""}])
        );
        assert_eq!(
            content("m.call.select_answer")["selected_party_id"],
            "PEERDEVICE"
        );
        assert_eq!(content("m.call.negotiate")["lifetime"], 60000);
        assert_eq!(content("m.call.negotiate")["description"]["type"], "offer");
        assert_eq!(content("m.call.hangup")["reason"], "invite_timeout");
        assert_eq!(
            content("m.call.sdp_stream_metadata_changed")["sdp_stream_metadata"],
            json!({"cam": {"purpose": "m.usermedia"}})
        );

        // The door's own events come back through its sync, parsed to what was sent: echo
        // filtering (by party_id) is the core's business, not the adapter's.
        let (echoes, _, _) = receive_until(&mut rx, "the door's own echoes", |got| {
            got.len() >= sent.len()
        })
        .await;
        let echoed: Vec<CallEvent> = echoes.iter().map(|r| r.event.clone()).collect();
        assert_eq!(echoed, sent);
        assert!(echoes
            .iter()
            .all(|r| r.sender.0 == door.user_id && !r.encrypted));

        // A shutdown: close() returns once what was queued is on the server.
        let last = CallEvent {
            call_id: CallId("last-words".into()),
            party_id: party.clone(),
            body: CallEventBody::Hangup {
                reason: HangupReason::UserHangup,
            },
        };
        m.send(RoomId(room.clone()), last);
        m.close(WAIT).await;
        let messages = alice_peer.messages(&room);
        assert!(
            messages
                .iter()
                .any(|e| e["content"]["call_id"] == "last-words"),
            "the last hangup was not sent before close() returned"
        );
    });
    println!(
        "every_call_event_is_sent_as_the_spec_says: {:?}",
        t0.elapsed()
    );
}

#[test]
fn js_sdk_events_arrive_in_batches_and_history_never_does() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let door = synapse.register("door");
    let alice = synapse.register("alice");
    let mallory = synapse.register("mallory");
    let state = tempfile::tempdir().unwrap();
    let alice_peer = Peer::login(&synapse, &alice);
    let mallory_peer = Peer::login(&synapse, &mallory);
    // The hall: joined before the door ever syncs, with an invite in its history.
    let hall = alice_peer.create_room(&[&door.user_id], false);
    let config = door_config(&synapse, &door, state.path(), &[&hall], &[&alice.user_id]);

    runtime().block_on(async {
        let session = matrix::login(&config, &door.password).await.unwrap();
        let door_peer = Peer::with_token(&synapse, &door.user_id, &session.access_token);
        door_peer.join(&hall);
        let old = fixture_content("m.call.invite.json", "old-call", &door.user_id);
        alice_peer.send(&hall, "m.call.invite", &old);
        // Invites: from alice (on the allow list) and from mallory (not).
        let kitchen = alice_peer.create_room(&[&door.user_id], false);
        let cellar = mallory_peer.create_room(&[&door.user_id], false);

        let (m, mut rx) = connect_and_sync(&config).await;
        // The adapter reports both invitations with who sent them; joining is the station's
        // decision (here: alice's only), which the adapter carries out.
        assert_eq!(
            invited(&mut rx, &[&kitchen, &cellar]).await,
            vec![Some(alice.user_id.clone()), Some(mallory.user_id.clone())]
        );
        m.join(RoomId(kitchen.clone()));
        poll("the door to accept alice's invite", || {
            alice_peer
                .joined_members(&kitchen)
                .contains(&door.user_id)
                .then_some(())
        })
        .await;

        let t_send = Instant::now();
        let call = "new-call";
        for (event_type, file) in [
            ("m.call.invite", "m.call.invite.json"),
            ("m.call.candidates", "m.call.candidates.json"),
            (
                "m.call.candidates",
                "m.call.candidates.end-of-candidates.json",
            ),
            ("m.call.hangup", "m.call.hangup.json"),
        ] {
            alice_peer.send(
                &kitchen,
                event_type,
                &fixture_content(file, call, &door.user_id),
            );
        }
        let (got, others, batches) = receive_until(&mut rx, "alice's call events", |got| {
            got.iter()
                .any(|r| matches!(r.event.body, CallEventBody::Hangup { .. }))
        })
        .await;
        println!(
            "4 js-sdk events received in {batches} batch(es) within {:?}",
            t_send.elapsed()
        );
        assert!(others.is_empty(), "{others:?}");
        assert!(
            got.iter().all(|r| r.event.call_id.0 == call),
            "history was delivered: {got:?}"
        );
        assert_eq!(got.len(), 4, "{got:?}");
        for r in &got {
            assert_eq!(r.room, RoomId(kitchen.clone()));
            assert_eq!(r.sender, UserId(alice.user_id.clone()));
            assert_eq!(r.event.party_id, PartyId("PAGEA".into()));
            assert!(!r.encrypted);
            assert!(r.age.is_some_and(|a| a < WAIT), "{:?}", r.age);
        }
        let CallEventBody::Invite {
            offer,
            lifetime,
            invitee,
        } = &got[0].event.body
        else {
            panic!("the invite comes first: {got:?}");
        };
        assert!(offer.sdp.starts_with("v=0"));
        assert_eq!(*lifetime, Duration::from_millis(60000));
        assert_eq!(invitee.as_ref(), Some(&UserId(door.user_id.clone())));
        let CallEventBody::Candidates { candidates } = &got[2].event.body else {
            panic!("{got:?}");
        };
        assert_eq!(candidates.len(), 2);
        assert!(candidates[1].candidate.is_empty());
        assert_eq!(
            got[3].event.body,
            CallEventBody::Hangup {
                reason: HangupReason::UserHangup
            }
        );

        // Leaving is reported; mallory's invite was left alone.
        alice_peer.leave(&kitchen);
        loop {
            match next(&mut rx, "alice leaving").await {
                MatrixEvent::MemberLeft { room, user } => {
                    assert_eq!((room.0, user.0), (kitchen.clone(), alice.user_id.clone()));
                    break;
                }
                MatrixEvent::Batch(b) => panic!("unexpected batch {b:?}"),
                _ => {}
            }
        }
        assert!(!door_peer.joined_rooms().contains(&cellar));
    });
    println!(
        "js_sdk_events_arrive_in_batches_and_history_never_does: {:?}",
        t0.elapsed()
    );
}

#[test]
fn events_in_an_encrypted_room_are_encrypted() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let AliceRoom {
        door,
        // Bound, not `_`: the state directory must live as long as the test.
        state: _state,
        alice_peer,
        room,
        config,
    } = alice_room(&synapse, true);

    runtime().block_on(async {
        let session = matrix::login(&config, &door.password).await.unwrap();
        Peer::with_token(&synapse, &door.user_id, &session.access_token).join(&room);
        let (m, mut rx) = connect_and_sync(&config).await;
        let invite = CallEvent {
            call_id: CallId("secret-call".into()),
            party_id: m.device_id(),
            body: every_body().remove(0),
        };
        let t_send = Instant::now();
        m.send(RoomId(room.clone()), invite.clone());
        let sent = poll("the door's event in the room", || {
            alice_peer
                .messages(&room)
                .into_iter()
                .find(|e| e["sender"] == door.user_id.as_str() && e["type"] != "m.room.member")
        })
        .await;
        println!("encrypted invite on the server in {:?}", t_send.elapsed());
        assert_eq!(sent["type"], "m.room.encrypted", "{sent}");
        assert_eq!(sent["content"]["algorithm"], "m.megolm.v1.aes-sha2");
        assert!(!sent.to_string().contains("secret-call"), "{sent}");
        assert!(!sent.to_string().contains("v=0"), "{sent}");

        // The door decrypts its own event when it comes back: the receiving path of E2EE.
        let (got, _, _) = receive_until(&mut rx, "the door's own invite, decrypted", |got| {
            !got.is_empty()
        })
        .await;
        assert_eq!(got[0].event, invite);
        assert!(got[0].encrypted);
    });
    println!(
        "events_in_an_encrypted_room_are_encrypted: {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_browser_call_in_an_encrypted_room_arrives_decrypted() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let synapse = Synapse::start(None);
    let door = synapse.register("door");
    let alice = synapse.register("alice");
    let state = tempfile::tempdir().unwrap();
    let config = door_config(&synapse, &door, state.path(), &[], &[&alice.user_id]);
    let mut browser = Browser::start("alice", false);
    browser.call(json!({
        "cmd": "login", "homeserver": synapse.url(), "user": alice.localpart,
        "password": alice.password, "encryption": true,
    }));

    runtime().block_on(async {
        matrix::login(&config, &door.password).await.unwrap();
        // The door syncs (and so publishes its device keys) before it is invited.
        let (m, mut rx) = connect_and_sync(&config).await;
        let room = browser.call(json!({
            "cmd": "create_room", "invite": [door.user_id], "encrypted": true,
        }))["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            invited(&mut rx, &[&room]).await,
            vec![Some(alice.user_id.clone())]
        );
        m.join(RoomId(room.clone()));
        // Joining needs the sync loop to run: wait on the browser in a thread.
        let (browser, waited) = tokio::task::spawn_blocking({
            let door_id = door.user_id.clone();
            let room = room.clone();
            move || {
                let r = browser.try_call(json!({
                    "cmd": "wait_member", "room_id": room, "user_id": door_id,
                }));
                (browser, r)
            }
        })
        .await
        .unwrap();
        let mut browser = browser;
        waited.expect("the door joins alice's encrypted room");
        let t_call = Instant::now();
        let call_id = browser.call(json!({"cmd": "place_call", "room_id": room, "video": true}))
            ["call_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (got, _, _) = receive_until(&mut rx, "the browser's invite", |got| {
            got.iter()
                .any(|r| matches!(r.event.body, CallEventBody::Invite { .. }))
        })
        .await;
        println!(
            "browser invite decrypted by the door in {:?}",
            t_call.elapsed()
        );
        let invite = got
            .iter()
            .find(|r| matches!(r.event.body, CallEventBody::Invite { .. }))
            .unwrap();
        assert_eq!(invite.event.call_id.0, call_id);
        assert_eq!(invite.sender.0, alice.user_id);
        assert!(invite.encrypted, "{invite:?}");
        let CallEventBody::Invite { offer, .. } = &invite.event.body else {
            unreachable!()
        };
        assert!(offer.sdp.starts_with("v=0"));
        browser.call(json!({"cmd": "hangup", "call_id": call_id}));
        let (got, _, _) = receive_until(&mut rx, "the browser's hangup", |got| {
            got.iter()
                .any(|r| matches!(r.event.body, CallEventBody::Hangup { .. }))
        })
        .await;
        assert!(
            got.iter()
                .all(|r| r.encrypted && r.event.call_id.0 == call_id),
            "{got:?}"
        );
    });
    println!(
        "a_browser_call_in_an_encrypted_room_arrives_decrypted: {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_restart_resumes_without_replaying_and_an_outage_is_reported() {
    if isolated!() {
        return;
    }
    let t0 = Instant::now();
    let mut synapse = Synapse::start(None);
    let AliceRoom {
        door,
        state,
        alice_peer,
        room,
        config,
    } = alice_room(&synapse, false);
    let is_hangup = |got: &[ReceivedEvent]| {
        got.iter()
            .any(|r| matches!(r.event.body, CallEventBody::Hangup { .. }))
    };
    let hangup = |call: &str| fixture_content("m.call.hangup.json", call, &door.user_id);

    runtime().block_on(async {
        let session = matrix::login(&config, &door.password).await.unwrap();
        Peer::with_token(&synapse, &door.user_id, &session.access_token).join(&room);
        let (_m, mut rx) = connect_and_sync(&config).await;
        alice_peer.send(&room, "m.call.hangup", &hangup("before-restart"));
        receive_until(&mut rx, "the first hangup", is_hangup).await;
    });
    // A new process: the stored sync token is reused, nothing is delivered twice.
    runtime().block_on(async {
        let (_m, mut rx) = connect_and_sync(&config).await;
        alice_peer.send(&room, "m.call.hangup", &hangup("after-restart"));
        let (got, others, _) = receive_until(&mut rx, "the second hangup", is_hangup).await;
        assert!(others.is_empty(), "{others:?}");
        assert!(
            got.iter().all(|r| r.event.call_id.0 == "after-restart"),
            "replayed: {got:?}"
        );

        // The homeserver goes away: one Offline; it comes back: Online, and events flow again.
        let t_stop = Instant::now();
        synapse.stop();
        match next(&mut rx, "the outage").await {
            MatrixEvent::Offline(reason) => {
                println!("offline reported in {:?}: {reason}", t_stop.elapsed());
                assert!(!reason.contains(&session_token(state.path())), "{reason}");
            }
            other => panic!("expected Offline, got {other:?}"),
        }
        synapse.restart();
        let t_back = Instant::now();
        match next(&mut rx, "the homeserver to come back").await {
            MatrixEvent::Online => {
                println!("online again {:?} after the restart", t_back.elapsed())
            }
            other => panic!("expected Online (and no second Offline), got {other:?}"),
        }
        alice_peer.send(&room, "m.call.hangup", &hangup("after-outage"));
        let (got, _, _) = receive_until(&mut rx, "the hangup after the outage", is_hangup).await;
        assert!(
            got.iter().all(|r| r.event.call_id.0 == "after-outage"),
            "{got:?}"
        );
    });
    println!(
        "a_restart_resumes_without_replaying_and_an_outage_is_reported: {:?}",
        t0.elapsed()
    );
}

fn session_token(state: &Path) -> String {
    Session::load(&matrix::session_path(state))
        .unwrap()
        .access_token
}

#[test]
fn login_and_check_from_the_command_line() {
    if isolated!() {
        return;
    }
    use std::io::Write;
    use std::process::{Command, Stdio};
    let t0 = Instant::now();
    let mut synapse = Synapse::start(None);
    let door = synapse.register("door");
    let alice = synapse.register("alice");
    let alice_peer = Peer::login(&synapse, &alice);
    let joined = alice_peer.create_room(&[&door.user_id], false);
    let elsewhere = alice_peer.create_room(&[], false);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[matrix]\nhomeserver = {hs:?}\nuser = {user:?}\nrooms = [{joined:?}, {elsewhere:?}]\n\
             state_dir = {state:?}\n[camera]\ndevice = \"test-pattern\"\n\
             [audio]\ncapture = \"test-tone\"\nplayback = \"null\"\n",
            hs = synapse.url(),
            user = door.user_id,
        ),
    )
    .unwrap();
    let intercom = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    // The password as one line of standard input (not a terminal).
    let (code, out) = intercom(&["login"], &format!("{}\n", door.password));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("logged in as @door:localhost (device "),
        "{out}"
    );
    assert!(!out.contains(&door.password), "{out}");
    let session = Session::load(&matrix::session_path(&state)).unwrap();
    Peer::with_token(&synapse, &door.user_id, &session.access_token).join(&joined);

    let (code, out) = intercom(&["check"], "");
    println!("{out}");
    assert_eq!(code, Some(1), "one room is not joined: {out}");
    for line in [
        "ok      Matrix session: restores @door:localhost",
        &format!("ok      homeserver {}: answers", synapse.url()),
        &format!("ok      room {joined}: joined"),
        &format!("MISSING room {elsewhere}: not joined"),
        "warning TURN: the homeserver offers none",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(!out.contains(&session.access_token), "{out}");

    // Offline, check still reports (and does not hang or panic).
    synapse.stop();
    let t_check = Instant::now();
    let (code, out) = intercom(&["check"], "");
    println!("{out}");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("MISSING homeserver {}", synapse.url())),
        "{out}"
    );
    assert!(
        t_check.elapsed() < Duration::from_secs(20),
        "{:?}",
        t_check.elapsed()
    );
    println!("login_and_check_from_the_command_line: {:?}", t0.elapsed());
}

#[test]
fn turn_servers_come_from_the_homeserver() {
    if isolated!() {
        return;
    }
    let coturn = harness::coturn::Coturn::start();
    let settings = coturn.synapse_settings();
    let synapse = Synapse::start(Some(&settings));
    let door = synapse.register("door");
    let state = tempfile::tempdir().unwrap();
    let config = door_config(&synapse, &door, state.path(), &[], &[]);
    runtime().block_on(async {
        matrix::login(&config, &door.password).await.unwrap();
        let m = matrix::connect(&config).await.unwrap();
        let turn = m.turn_servers().await.unwrap().expect("TURN servers");
        assert_eq!(turn.uris, settings.uris);
        assert!(!turn.username.is_empty() && !turn.password.is_empty());
        assert_eq!(turn.ttl, Duration::from_secs(3600));
        let shown = format!("{turn:?}");
        assert!(!shown.contains(&turn.password), "{shown}");
    });
}
