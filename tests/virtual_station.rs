//! The station on virtual time: what the door does with a press, an invitation, a message, a
//! device that stops working and a control request, from input to output, without I/O. Each
//! test drives `Station` with instants it makes up.

use std::time::Duration;

use intercom::call::{
    CallEventBody, CallId, DoorPolicy, Incoming, LongPress, ReceivedMessage, RoomId, RtcCommand,
    RtcEvent, SdpKind, SessionDescription, StreamPurpose, UserId,
};
use intercom::panel::PanelConfig;
use intercom::station::{
    DeviceReport, Input, Level, Output, Part, Request, StationConfig, Tone, TurnServers,
};

#[path = "harness/virtual_time.rs"]
mod virtual_time;
use virtual_time::{identity, policy, StationClock, ALICE, BOB, MALLORY};

const MS: fn(u64) -> Duration = Duration::from_millis;
/// The wall clock at the station's start, in milliseconds since the epoch.
const STARTED_MS: u64 = 1_800_000_000_000;

fn config() -> StationConfig {
    StationConfig {
        identity: identity(),
        policy: policy(Incoming::Ring),
        door: DoorPolicy {
            relay: true,
            pulse: Duration::from_secs(2),
            call_command: true,
            room_command: true,
            long_press: LongPress::None,
            dtmf_code: String::new(),
        },
        panel: PanelConfig {
            debounce: MS(50),
            long_press: None,
        },
        call_seed: "t".into(),
        snapshots: true,
        accept_invites: true,
        turn_from_homeserver: false,
        started_wall_ms: STARTED_MS,
    }
}

/// A station with `config`, idle (its LED lit).
fn station(config: StationConfig) -> StationClock {
    let mut t = StationClock::new(config);
    let out = t.drain();
    assert!(out.contains(&Output::Led(true)), "idle: lit: {out:?}");
    t
}

/// A message from `sender` in `!a`, `age` old (as the homeserver says), or without an age and
/// stamped `ts`.
fn message(
    t: &mut StationClock,
    sender: &str,
    body: &str,
    age: Option<Duration>,
    ts: Option<u64>,
) -> Vec<Output> {
    t.input(Input::Message {
        message: ReceivedMessage {
            room: RoomId("!a".into()),
            sender: UserId(sender.into()),
            age,
            body: body.into(),
            encrypted: false,
            room_encrypted: false,
        },
        origin_server_ts: ts,
    })
}

fn logs(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log(l) => Some(l.text.clone()),
            _ => None,
        })
        .collect()
}

fn offer(out: &[Output]) -> Option<CallId> {
    out.iter().find_map(|o| match o {
        Output::Rtc {
            call,
            command: RtcCommand::CreateOffer { .. },
        } => Some(call.clone()),
        _ => None,
    })
}

fn local_offer() -> RtcEvent {
    RtcEvent::LocalDescription(SessionDescription {
        kind: SdpKind::Offer,
        sdp: "v=0\r\n".into(),
        streams: vec![("s".into(), StreamPurpose::UserMedia)],
    })
}

#[test]
fn a_press_is_debounced_rings_every_room_and_a_snapshot_follows_each_invite() {
    let mut t = station(config());
    let out = t.input(Input::ButtonEdge { pressed: true });
    assert!(offer(&out).is_none(), "not before the debounce: {out:?}");
    let out = t.advance(MS(50));
    assert!(logs(&out).contains(&"button pressed".to_owned()), "{out:?}");
    let call = offer(&out).expect("the press prepares an offer");
    assert!(out.contains(&Output::Tone {
        tone: Tone::Ringback,
        on: true
    }));
    // Nothing goes out to the rooms before the offer.
    assert!(!out.iter().any(|o| matches!(o, Output::Send { .. })));
    let out = t.input(Input::Rtc {
        call,
        event: local_offer(),
    });
    // Each room: its invite, then the snapshot for it.
    let order: Vec<(&str, &str)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { room, event } if matches!(event.body, CallEventBody::Invite { .. }) => {
                Some(("invite", room.0.as_str()))
            }
            Output::PostSnapshot { room, mention } => {
                assert_eq!(mention, &vec![UserId(ALICE.into()), UserId(BOB.into())]);
                Some(("snapshot", room.0.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("invite", "!a"),
            ("snapshot", "!a"),
            ("invite", "!b"),
            ("snapshot", "!b")
        ]
    );
    // The LED blinks while the door rings: off after half a second.
    let out = t.advance(MS(500));
    assert!(out.contains(&Output::Led(false)), "{out:?}");
}

#[test]
fn without_snapshots_the_invites_go_out_alone() {
    let mut t = station(StationConfig {
        snapshots: false,
        ..config()
    });
    t.input(Input::ButtonEdge { pressed: true });
    let call = offer(&t.advance(MS(50))).unwrap();
    let out = t.input(Input::Rtc {
        call,
        event: local_offer(),
    });
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Send { .. }))
            .count(),
        2
    );
    assert!(!out.iter().any(|o| matches!(o, Output::PostSnapshot { .. })));
}

#[test]
fn only_an_allow_listed_user_s_invitation_is_joined_and_only_when_that_is_on() {
    let mut t = station(config());
    let joins = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::JoinRoom { .. }))
            .count()
    };
    let out = t.input(Input::Invited {
        room: RoomId("!new".into()),
        inviter: Some(UserId(ALICE.into())),
    });
    assert_eq!(
        out.iter().find(|o| matches!(o, Output::JoinRoom { .. })),
        Some(&Output::JoinRoom {
            room: RoomId("!new".into())
        })
    );
    assert!(logs(&out).contains(&format!("joining !new, invited by {ALICE}")));
    let out = t.input(Input::Invited {
        room: RoomId("!trap".into()),
        inviter: Some(UserId(MALLORY.into())),
    });
    assert_eq!(joins(&out), 0);
    assert!(logs(&out).contains(&format!(
        "not joining !trap, invited by {MALLORY}: not on the allow list"
    )));
    let out = t.input(Input::Invited {
        room: RoomId("!who".into()),
        inviter: None,
    });
    assert_eq!(joins(&out), 0, "an invite that names nobody");

    let mut t = station(StationConfig {
        accept_invites: false,
        ..config()
    });
    let out = t.input(Input::Invited {
        room: RoomId("!new".into()),
        inviter: Some(UserId(ALICE.into())),
    });
    assert_eq!(joins(&out), 0);
    assert!(logs(&out)[0].ends_with("accept_invites is off"));
}

#[test]
fn messages_from_before_the_start_are_history_and_never_acted_on() {
    let mut t = station(config());
    t.advance(Duration::from_secs(10));
    let opened = |out: &[Output]| out.contains(&Output::Relay(true));
    // Sent 11 s ago, while the daemon has run for 10 s: history, not even refused.
    let out = message(&mut t, ALICE, "!open", Some(Duration::from_secs(11)), None);
    assert!(!opened(&out), "{out:?}");
    assert!(
        !out.iter().any(|o| matches!(o, Output::Post { .. })),
        "{out:?}"
    );
    // No age: the timestamp decides.
    let out = message(&mut t, ALICE, "!open", None, Some(STARTED_MS - 1));
    assert!(!opened(&out) && !out.iter().any(|o| matches!(o, Output::Post { .. })));
    // After the start but without an age: the core refuses it, and tells alice why.
    let out = message(&mut t, ALICE, "!open", None, Some(STARTED_MS + 1));
    assert!(!opened(&out));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Post { text, .. } if text.starts_with("Door not opened"))));
    // Live: the door opens.
    let out = message(&mut t, ALICE, "!open", Some(MS(200)), None);
    assert!(opened(&out), "{out:?}");
}

#[test]
fn the_relay_pulse_has_one_owner_and_an_open_during_it_is_merged() {
    let mut t = station(config());
    t.advance(Duration::from_secs(1));
    let out = message(&mut t, ALICE, "!open", Some(MS(100)), None);
    assert!(out.contains(&Output::Relay(true)), "{out:?}");
    assert!(out.iter().any(|o| matches!(o,
        Output::Log(l) if l.level == Level::Audit && l.text == format!("door opened by {ALICE}"))));
    t.now += MS(1000);
    let out = message(&mut t, ALICE, "!open", Some(MS(100)), None);
    assert!(!out.contains(&Output::Relay(true)), "merged: {out:?}");
    assert!(logs(&out).iter().any(|l| l.contains("merged")), "{out:?}");
    // The pulse is the configured 2 s from the first open, not lengthened by the second.
    let out = t.advance(MS(999));
    assert!(!out.contains(&Output::Relay(false)), "{out:?}");
    let out = t.advance(MS(1));
    assert!(out.contains(&Output::Relay(false)), "{out:?}");
}

#[test]
fn a_device_that_stops_working_shows_in_the_status_until_it_works_again() {
    let mut t = station(config());
    let out = t.input(Input::Device(DeviceReport {
        part: Part::Camera,
        name: "/dev/video0".into(),
        problem: Some("missing".into()),
    }));
    assert!(
        out.contains(&Output::Status(
            "Idle (camera /dev/video0 missing: audio only)".into()
        )),
        "{out:?}"
    );
    let out = t.input(Input::Device(DeviceReport::ok(
        Part::Camera,
        "/dev/video0".into(),
    )));
    assert!(logs(&out).contains(&"camera /dev/video0 works again".to_owned()));
    assert!(out.contains(&Output::Status("Idle".into())), "{out:?}");
}

#[test]
fn the_control_socket_is_answered_and_its_ring_is_a_press() {
    let mut t = station(config());
    t.input(Input::Reachability(Some("connection refused".into())));
    let out = t.input(Input::Control {
        id: 7,
        request: Request::Status,
    });
    let Some(Output::Reply { id: 7, text }) = out
        .iter()
        .find(|o| matches!(o, Output::Reply { .. }))
        .cloned()
    else {
        panic!("no reply: {out:?}")
    };
    for line in [
        "ok Idle (homeserver unreachable: connection refused)",
        "state: Idle",
        "homeserver: unreachable (connection refused); retrying",
        "rooms: !a, !b",
        "last call: none since the daemon started",
        "missing: the homeserver",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let out = t.input(Input::Control {
        id: 8,
        request: Request::Ring,
    });
    assert!(out.contains(&Output::Reply {
        id: 8,
        text: "ok pressed".into()
    }));
    assert!(offer(&out).is_some(), "{out:?}");
}

#[test]
fn an_unreachable_homeserver_shows_on_the_led_and_in_the_status() {
    let mut t = station(config());
    let out = t.input(Input::Reachability(Some("timed out".into())));
    assert!(
        out.contains(&Output::Status(
            "Idle (homeserver unreachable: timed out)".into()
        )),
        "{out:?}"
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Log(l) if l.level == Level::Warn && l.text == "homeserver unreachable: timed out; retrying")));
    // The double blink: on 150 ms, off 150 ms, ...
    let out = t.advance(MS(150));
    assert!(out.contains(&Output::Led(false)), "{out:?}");
    let out = t.input(Input::Reachability(None));
    assert!(logs(&out).contains(&"homeserver reachable again".to_owned()));
    assert!(out.contains(&Output::Status("Idle".into())));
}

#[test]
fn the_homeserver_s_turn_servers_are_fetched_at_start_and_refreshed_before_they_expire() {
    let mut t = StationClock::new(StationConfig {
        turn_from_homeserver: true,
        ..config()
    });
    let fetches = |out: &[Output]| out.iter().filter(|o| **o == Output::FetchTurn).count();
    assert_eq!(fetches(&t.drain()), 1, "asked at start");
    let turn = TurnServers {
        uris: vec!["turn:turn.example.org".into()],
        username: "u".into(),
        password: "p".into(),
        ttl: Duration::from_secs(600),
    };
    let out = t.input(Input::Turn(Ok(Some(turn.clone()))));
    assert!(out.contains(&Output::IceServers(turn)), "{out:?}");
    // Asked again at 4/5 of the lifetime (480 s), not before.
    assert_eq!(fetches(&t.advance(Duration::from_secs(479))), 0);
    assert_eq!(fetches(&t.advance(Duration::from_secs(1))), 1);
    // A failure: again after a minute; no TURN at all: again after an hour.
    let out = t.input(Input::Turn(Err("connection refused".into())));
    assert!(out.iter().any(|o| matches!(o,
        Output::Log(l) if l.level == Level::Warn && l.text.contains("retrying in a minute"))));
    assert_eq!(fetches(&t.advance(Duration::from_secs(59))), 0);
    assert_eq!(fetches(&t.advance(Duration::from_secs(1))), 1);
    t.input(Input::Turn(Ok(None)));
    assert_eq!(fetches(&t.advance(Duration::from_secs(3599))), 0);
    assert_eq!(fetches(&t.advance(Duration::from_secs(1))), 1);
    // Nothing is asked while an answer is awaited, nor after the door stopped.
    assert_eq!(fetches(&t.advance(Duration::from_secs(7200))), 0);
    t.input(Input::Turn(Ok(None)));
    t.input(Input::Shutdown);
    assert_eq!(fetches(&t.advance(Duration::from_secs(7200))), 0);
}

#[test]
fn a_configured_turn_server_is_not_asked_of_the_homeserver() {
    let mut t = StationClock::new(config());
    let mut out = t.drain();
    out.extend(t.advance(Duration::from_secs(7200)));
    assert!(!out.contains(&Output::FetchTurn), "{out:?}");
}
