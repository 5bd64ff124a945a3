//! Who may open the door, on virtual time: the `!open` and keypad (DTMF) rules of
//! `src/call/door.rs` as the core applies them, the long press, and what the LED is told.

use std::time::Duration;

use intercom::call::*;

#[path = "harness/virtual_time.rs"]
mod virtual_time;

use virtual_time::*;

/// A core with a relay (pulse 2 s): answers calls by itself, ignores a press during a call.
impl CoreClock {
    fn door(call_command: bool, room_command: bool) -> CoreClock {
        CoreClock::with_door(DoorPolicy {
            relay: true,
            pulse: Duration::from_secs(2),
            call_command,
            room_command,
            long_press: LongPress::None,
            dtmf_code: String::new(),
        })
    }

    /// A core with a relay whose keypad code is `code` (and `!open` off).
    fn keypad(code: &str) -> CoreClock {
        CoreClock::with_door(DoorPolicy {
            relay: true,
            call_command: false,
            dtmf_code: code.into(),
            ..DoorPolicy::default()
        })
    }

    fn with_door(door: DoorPolicy) -> CoreClock {
        let mut t = CoreClock::with(Policy {
            press_during_call: PressDuringCall::Ignore,
            ..policy(Incoming::AutoAnswer)
        });
        t.core.set_door_policy(door);
        t
    }

    /// The peer of `call` presses `keys`, one every 200 ms; what the core did.
    fn keys(&mut self, call: &str, keys: &str) -> Vec<Output> {
        let mut out = Vec::new();
        for key in keys.chars() {
            self.now += Duration::from_millis(200);
            out.extend(self.rtc(&CallId(call.into()), RtcEvent::Dtmf(key)));
        }
        out
    }

    /// The door rings out (a press) and `who` answers in `!a`; returns the door's call id.
    fn answered_by(&mut self, who: &str) -> String {
        let call = self.answer_tried_by(who);
        assert_eq!(self.core.activity(), Activity::InCall);
        call
    }

    /// The door rings out (a press) and `who` sends an answer in `!a`, which the door may or may
    /// not take; returns the door's call id.
    fn answer_tried_by(&mut self, who: &str) -> String {
        let (call, legs) = self.ring_out();
        let leg = legs
            .into_iter()
            .find_map(|(room, leg)| (room.0 == "!a").then_some(leg))
            .expect("an invite into !a");
        self.batch(vec![answer("!a", who, "DEV", &leg)]);
        call.0
    }

    /// Alice calls the door from `!a` and the door answers: a call is up with her.
    fn call_with_alice(&mut self) {
        self.answered_incoming();
        assert_eq!(self.core.activity(), Activity::InCall);
    }
}

#[test]
fn a_stranger_never_opens_and_is_told_nothing_but_the_log_names_them() {
    let mut t = CoreClock::door(true, true);
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
    let mut t = CoreClock::door(false, true);
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
    let mut t = CoreClock::door(true, true);
    for body in ["hello", "!opens", "open", "please !open", ""] {
        let out = t.say("!a", ALICE, body);
        assert!(out.is_empty(), "{body:?}: {out:?}");
    }
}

#[test]
fn call_command_is_for_the_one_in_the_call_in_its_room() {
    let mut t = CoreClock::door(true, false);
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
    let mut t = CoreClock::door(false, true);
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
    let mut t = CoreClock::door(false, true);
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
fn a_command_without_an_age_is_refused() {
    // Some homeservers omit `unsigned.age`: nothing then shows the command is fresh.
    let mut t = CoreClock::door(false, true);
    t.core.handle_input(
        t.now,
        Input::Message(ReceivedMessage {
            room: RoomId("!a".into()),
            sender: UserId(ALICE.into()),
            age: None,
            body: "!open".into(),
            encrypted: false,
            room_encrypted: false,
        }),
    );
    let out = t.drain();
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(posts(&out)[0].1.contains("no age"), "{out:?}");
}

#[test]
fn a_plaintext_command_in_an_encrypted_room_is_refused() {
    let mut t = CoreClock::door(false, true);
    let mut say = |encrypted: bool| {
        t.core.handle_input(
            t.now,
            Input::Message(ReceivedMessage {
                room: RoomId("!a".into()),
                sender: UserId(ALICE.into()),
                age: Some(Duration::from_millis(40)),
                body: "!open".into(),
                encrypted,
                room_encrypted: true,
            }),
        );
        t.now += Duration::from_secs(10);
        std::iter::from_fn(|| t.core.poll_output()).collect::<Vec<_>>()
    };
    let out = say(false);
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(posts(&out)[0].1.contains("not encrypted"), "{out:?}");
    let out = say(true);
    assert_eq!(opened(&out), vec![ALICE.to_owned()], "{out:?}");
}

#[test]
fn without_a_relay_nothing_opens() {
    let mut t = CoreClock::with_door(DoorPolicy {
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
    let mut t = CoreClock::with_door(DoorPolicy {
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

    let mut t = CoreClock::with_door(DoorPolicy {
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

    let mut t = CoreClock::with_door(DoorPolicy::default());
    t.call_with_alice();
    t.core.handle_input(t.now, Input::LongPress);
    assert!(t.drain().is_empty(), "\"none\" does nothing");
}

#[test]
fn activity_follows_the_call() {
    let mut t = CoreClock::door(true, false);
    assert_eq!(t.core.activity(), Activity::Idle);
    t.core.handle_input(t.now, Input::ButtonPressed);
    t.drain();
    assert_eq!(t.core.activity(), Activity::Ringing);
    t.core.handle_input(t.now, Input::Shutdown);
    t.drain();
    assert_eq!(t.core.activity(), Activity::Idle);
    t.call_with_alice();
}

// --- the keypad (DTMF) ------------------------------------------------------------------------

#[test]
fn the_keypad_code_from_the_allow_listed_peer_opens_with_a_keypad_audit_line() {
    let mut t = CoreClock::keypad("1234#");
    t.call_with_alice();
    let out = t.keys("100", "1234#");
    let by = format!("{ALICE} (keypad)");
    assert_eq!(opened(&out), vec![by.clone()]);
    assert_eq!(
        posts(&out),
        vec![("!a".to_owned(), format!("Door opened by {by}"))]
    );
    // The door calling out, answered by an allow-listed user: the same.
    let mut t = CoreClock::keypad("#");
    let call = t.answered_by(BOB);
    let out = t.keys(&call, "#");
    assert_eq!(opened(&out), vec![format!("{BOB} (keypad)")], "{out:?}");
}

#[test]
fn a_stranger_who_answers_the_door_never_opens_it_with_the_right_code() {
    // Mallory is in the room the door rings and answers its call: the door does not take her
    // answer (she is not on the allow list), so no call is up and her keys reach nothing.
    let mut t = CoreClock::keypad("1234#");
    let call = t.answer_tried_by(MALLORY);
    assert_eq!(
        t.core.activity(),
        Activity::Ringing,
        "her answer is not taken"
    );
    let out = t.keys(&call, "1234#");
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(
        posts(&out).is_empty(),
        "a stranger is told nothing: {out:?}"
    );
    // However she keeps trying.
    for _ in 0..10 {
        t.now += Duration::from_secs(10);
        assert!(opened(&t.keys(&call, "1234#")).is_empty());
    }
}

#[test]
fn a_wrong_code_is_a_logged_refusal_and_nothing_else() {
    let mut t = CoreClock::keypad("1234#");
    t.call_with_alice();
    let out = t.keys("100", "1235#");
    assert!(opened(&out).is_empty() && posts(&out).is_empty(), "{out:?}");
    let n = notices(&out);
    assert!(
        n.len() == 1 && n[0].contains("wrong keypad code") && n[0].contains(ALICE),
        "{n:?}"
    );
    assert!(!n[0].contains("1235"), "the keys are never logged: {n:?}");
    // A `#` ends an entry early: a mistyped entry starts over.
    let out = t.keys("100", "12#");
    assert!(notices(&out)[0].contains("wrong keypad code"), "{out:?}");
    // Third wrong entry: the keypad is off for the rest of the call, even for the right code.
    let out = t.keys("100", "9999#");
    assert!(notices(&out)[0].contains("rest of this call"), "{out:?}");
    let out = t.keys("100", "1234#");
    assert!(out.is_empty(), "{out:?}");
    // A new call has a fresh keypad.
    t.core.handle_input(t.now, Input::Shutdown);
    t.drain();
    let call = t.answered_by(ALICE);
    assert_eq!(opened(&t.keys(&call, "1234#")).len(), 1);
}

#[test]
fn a_code_without_a_terminator_is_complete_at_its_length() {
    let mut t = CoreClock::keypad("0*A7");
    t.call_with_alice();
    let out = t.keys("100", "0*A");
    assert!(out.is_empty(), "incomplete: {out:?}");
    assert_eq!(opened(&t.keys("100", "7")).len(), 1);
}

#[test]
fn keys_further_apart_than_the_gap_start_over() {
    // `keys` presses one every 200 ms: here "3" comes exactly KEYPAD_GAP after "2".
    let mut t = CoreClock::keypad("1234#");
    t.call_with_alice();
    assert!(t.keys("100", "12").is_empty());
    t.now += KEYPAD_GAP - Duration::from_millis(200);
    assert_eq!(opened(&t.keys("100", "34#")).len(), 1, "one entry");
    // Here a little later: "34#" is an entry of its own, and wrong.
    let mut t = CoreClock::keypad("1234#");
    t.call_with_alice();
    assert!(t.keys("100", "12").is_empty());
    t.now += KEYPAD_GAP;
    let out = t.keys("100", "34#");
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(notices(&out)[0].contains("wrong keypad code"), "{out:?}");
    assert_eq!(opened(&t.keys("100", "1234#")).len(), 1);
}

#[test]
fn the_keypad_only_works_in_a_call_that_is_up_and_when_configured() {
    // No code: keys do nothing, even the would-be code.
    let mut t = CoreClock::keypad("");
    t.call_with_alice();
    assert!(t.keys("100", "#").is_empty());
    assert!(t.keys("100", "1234#").is_empty());
    // Keys for another call, or when no call is up, do nothing.
    let mut t = CoreClock::keypad("#");
    assert!(t.keys("100", "#").is_empty());
    t.call_with_alice();
    assert!(t.keys("999", "#").is_empty());
    // Not a key at all.
    assert!(t.keys("100", "x").is_empty());
    assert_eq!(opened(&t.keys("100", "#")).len(), 1);
    // Without a relay: logged, nothing opens and nothing is posted.
    let mut t = CoreClock::with_door(DoorPolicy {
        relay: false,
        dtmf_code: "#".into(),
        ..DoorPolicy::default()
    });
    t.call_with_alice();
    let out = t.keys("100", "#");
    assert!(opened(&out).is_empty() && posts(&out).is_empty(), "{out:?}");
    assert!(notices(&out)[0].contains("no relay"), "{out:?}");
}

#[test]
fn keypad_openings_merge_into_a_pulse_like_any_other() {
    let mut t = CoreClock::keypad("#");
    t.call_with_alice();
    assert_eq!(opened(&t.keys("100", "#")).len(), 1);
    let out = t.keys("100", "#");
    assert!(opened(&out).is_empty(), "{out:?}");
    assert!(notices(&out)[0].contains("merged"), "{out:?}");
}

#[test]
fn dtmf_codes_are_checked() {
    for ok in ["", "1234", "1234#", "0123456789*ABCD#", "*A0B", "****#"] {
        assert_eq!(check_dtmf_code(ok), Ok(()), "{ok:?}");
    }
    for (bad, why) in [
        // One key, or a few, is a stray press away from opening the door.
        ("#", "at least 4"),
        ("1", "at least 4"),
        ("123#", "at least 4"),
        ("*AB", "at least 4"),
        ("12#4", "last key"),
        ("##", "last key"),
        ("12x#", "'x'"),
        ("a", "'a'"),
        ("12345678901234567", "at most 16"),
    ] {
        let e = check_dtmf_code(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn random_keys_open_only_for_an_allow_listed_peer() {
    // xorshift64*: deterministic.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    };
    let mut openings = 0;
    for _ in 0..2000 {
        let code = ["#", "1#", "12", "0*A7"][next(4) as usize];
        let who = [ALICE, BOB, MALLORY][next(3) as usize];
        let mut t = CoreClock::keypad(code);
        // Mallory's answer is not taken: her keys then reach no call at all.
        let call = t.answer_tried_by(who);
        for _ in 0..30 {
            let longest = if next(10) == 0 { 8000 } else { 1500 };
            t.now += Duration::from_millis(next(longest));
            let key = ['0', '1', '2', '7', '*', '#', 'A', 'x'][next(8) as usize];
            t.core.handle_input(
                t.now,
                Input::Rtc {
                    call: CallId(call.clone()),
                    event: RtcEvent::Dtmf(key),
                },
            );
            let out = t.drain();
            for by in opened(&out) {
                assert_ne!(who, MALLORY, "the keypad opened for a stranger: {out:?}");
                assert_eq!(by, format!("{who} (keypad)"));
                openings += 1;
            }
            if who == MALLORY {
                assert!(posts(&out).is_empty(), "{out:?}");
            }
        }
    }
    assert!(
        openings > 100,
        "only {openings} openings: the code is rarely reached"
    );
}
