//! Who may open the door, on virtual time: the `!open` rules of `src/call/door.rs` as the core
//! applies them, the long press, and what the LED is told.

use std::time::{Duration, Instant};

use intercom::call::*;

const DOOR: &str = "@door:hs";
const ALICE: &str = "@alice:hs";
const BOB: &str = "@bob:hs";
const MALLORY: &str = "@mallory:hs";

/// A core with a relay (pulse 2 s), and a clock.
struct T {
    core: Core,
    now: Instant,
}

impl T {
    fn new(call_command: bool, room_command: bool) -> T {
        T::with(DoorPolicy {
            relay: true,
            pulse: Duration::from_secs(2),
            call_command,
            room_command,
            long_press: LongPress::None,
        })
    }

    fn with(door: DoorPolicy) -> T {
        let policy = Policy {
            rooms: vec![RoomId("!a".into()), RoomId("!b".into())],
            allow: vec![UserId(ALICE.into()), UserId(BOB.into())],
            incoming: Incoming::AutoAnswer,
            ring_timeout: Duration::from_secs(30),
            max_length: Duration::from_secs(300),
            video: true,
            press_during_call: PressDuringCall::Ignore,
        };
        let identity = Identity {
            user: UserId(DOOR.into()),
            party: PartyId("DOORDEVICE".into()),
        };
        let mut core = Core::new(policy, identity, "c");
        core.set_door_policy(door);
        T {
            core,
            now: Instant::now(),
        }
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    fn say(&mut self, room: &str, sender: &str, body: &str) -> Vec<Output> {
        self.say_aged(room, sender, body, Duration::from_millis(40))
    }

    fn say_aged(&mut self, room: &str, sender: &str, body: &str, age: Duration) -> Vec<Output> {
        self.core.handle_input(
            self.now,
            Input::Message(ReceivedMessage {
                room: RoomId(room.into()),
                sender: UserId(sender.into()),
                age: Some(age),
                body: body.into(),
            }),
        );
        self.drain()
    }

    /// Alice calls the door from `!a` and the door answers: a call is up with her.
    fn call_with_alice(&mut self) {
        let sdp = |kind| SessionDescription {
            kind,
            sdp: "v=0\r\n".into(),
            streams: vec![("s".into(), StreamPurpose::UserMedia)],
        };
        let invite = ReceivedEvent {
            room: RoomId("!a".into()),
            sender: UserId(ALICE.into()),
            age: Some(Duration::from_millis(50)),
            encrypted: false,
            event: CallEvent {
                call_id: CallId("100".into()),
                party_id: PartyId("ALICEDEV".into()),
                body: CallEventBody::Invite {
                    offer: sdp(SdpKind::Offer),
                    lifetime: Duration::from_secs(60),
                    invitee: None,
                },
            },
        };
        self.core
            .handle_input(self.now, Input::SyncBatch(vec![invite]));
        self.core.handle_input(
            self.now,
            Input::Rtc {
                call: CallId("100".into()),
                event: RtcEvent::LocalDescription(sdp(SdpKind::Answer)),
            },
        );
        self.drain();
        assert_eq!(self.core.activity(), Activity::InCall);
    }
}

fn opened(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::OpenDoor { by } => Some(by.clone()),
            _ => None,
        })
        .collect()
}

fn posts(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Post { room, text } => Some((room.0.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn notices(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stranger_never_opens_and_is_told_nothing_but_the_log_names_them() {
    let mut t = T::new(true, true);
    let out = t.say("!a", MALLORY, "!open");
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(
        posts(&out).is_empty(),
        "nothing posted for a stranger: {out:?}"
    );
    let n = notices(&out);
    assert!(
        n.len() == 1 && n[0].contains(MALLORY) && n[0].contains("not on the allow list"),
        "{n:?}"
    );
    // Not even during a call the stranger is in.
    t.call_with_alice();
    let out = t.say("!a", MALLORY, "!open");
    assert!(opened(&out).is_empty() && posts(&out).is_empty(), "{out:?}");
}

#[test]
fn room_command_lets_an_allow_listed_user_open_from_a_configured_room_with_an_audit_line() {
    let mut t = T::new(false, true);
    let out = t.say("!b", BOB, "  !Open \n");
    assert_eq!(opened(&out), vec![BOB.to_owned()]);
    assert_eq!(
        posts(&out),
        vec![("!b".to_owned(), format!("Door opened by {BOB}"))]
    );
    // From a room the door does not ring: no.
    t.now += Duration::from_secs(10);
    let out = t.say("!elsewhere", BOB, "!open");
    assert!(opened(&out).is_empty(), "{out:?}");
}

#[test]
fn other_messages_are_not_commands() {
    let mut t = T::new(true, true);
    for body in ["hello", "!opens", "open", "please !open", ""] {
        let out = t.say("!a", ALICE, body);
        assert!(out.is_empty(), "{body:?}: {out:?}");
    }
}

#[test]
fn call_command_is_for_the_one_in_the_call_in_its_room() {
    let mut t = T::new(true, false);
    // No call: refused, and alice (allowed) is told why.
    let out = t.say("!a", ALICE, "!open");
    assert!(opened(&out).is_empty());
    let p = posts(&out);
    assert!(
        p.len() == 1 && p[0].0 == "!a" && p[0].1.starts_with("Door not opened: only during a call"),
        "{p:?}"
    );
    t.call_with_alice();
    // Bob is allowed, but not in the call.
    let out = t.say("!a", BOB, "!open");
    assert!(opened(&out).is_empty(), "{out:?}");
    // Alice, in another room than the call's: no.
    let out = t.say("!b", ALICE, "!open");
    assert!(opened(&out).is_empty(), "{out:?}");
    // Alice in the call's room: yes.
    let out = t.say("!a", ALICE, "!open");
    assert_eq!(opened(&out), vec![ALICE.to_owned()]);
    assert_eq!(
        posts(&out),
        vec![("!a".to_owned(), format!("Door opened by {ALICE}"))]
    );
}

#[test]
fn opens_during_a_pulse_merge_and_a_later_one_opens_again() {
    let mut t = T::new(false, true);
    assert_eq!(opened(&t.say("!a", ALICE, "!open")).len(), 1);
    t.now += Duration::from_millis(1500);
    let out = t.say("!b", BOB, "!open");
    assert!(opened(&out).is_empty() && posts(&out).is_empty(), "{out:?}");
    assert!(notices(&out)[0].contains("merged"), "{out:?}");
    t.now += Duration::from_millis(500);
    assert_eq!(opened(&t.say("!b", BOB, "!open")), vec![BOB.to_owned()]);
}

#[test]
fn a_stale_command_is_refused() {
    let mut t = T::new(false, true);
    let out = t.say_aged(
        "!a",
        ALICE,
        "!open",
        MAX_COMMAND_AGE + Duration::from_secs(1),
    );
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(posts(&out)[0].1.contains("s old"), "{out:?}");
    let out = t.say_aged("!a", ALICE, "!open", MAX_COMMAND_AGE);
    assert_eq!(opened(&out).len(), 1, "{out:?}");
}

#[test]
fn without_a_relay_nothing_opens() {
    let mut t = T::with(DoorPolicy {
        relay: false,
        room_command: true,
        long_press: LongPress::OpenDoor,
        ..DoorPolicy::default()
    });
    let out = t.say("!a", ALICE, "!open");
    assert!(opened(&out).is_empty());
    assert!(posts(&out)[0].1.contains("no relay"), "{out:?}");
    t.core.handle_input(t.now, Input::LongPress);
    assert!(opened(&t.drain()).is_empty());
}

#[test]
fn the_long_press_opens_or_hangs_up_as_configured() {
    let mut t = T::with(DoorPolicy {
        relay: true,
        long_press: LongPress::OpenDoor,
        ..DoorPolicy::default()
    });
    t.core.handle_input(t.now, Input::LongPress);
    let out = t.drain();
    assert_eq!(opened(&out), vec!["the button (long press)".to_owned()]);
    assert_eq!(
        posts(&out).len(),
        2,
        "the audit line in every room: {out:?}"
    );

    let mut t = T::with(DoorPolicy {
        relay: true,
        long_press: LongPress::Hangup,
        ..DoorPolicy::default()
    });
    t.call_with_alice();
    t.core.handle_input(t.now, Input::LongPress);
    let out = t.drain();
    assert!(opened(&out).is_empty());
    assert!(
        out.iter().any(|o| matches!(o, Output::CallEnded { .. })),
        "{out:?}"
    );
    assert_eq!(t.core.activity(), Activity::Idle);

    let mut t = T::with(DoorPolicy::default());
    t.call_with_alice();
    t.core.handle_input(t.now, Input::LongPress);
    assert!(t.drain().is_empty(), "\"none\" does nothing");
}

#[test]
fn activity_follows_the_call() {
    let mut t = T::new(true, false);
    assert_eq!(t.core.activity(), Activity::Idle);
    t.core.handle_input(t.now, Input::ButtonPressed);
    t.drain();
    assert_eq!(t.core.activity(), Activity::Ringing);
    t.core.handle_input(t.now, Input::Shutdown);
    t.drain();
    assert_eq!(t.core.activity(), Activity::Idle);
    t.call_with_alice();
}
