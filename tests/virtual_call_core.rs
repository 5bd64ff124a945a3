//! The call core, rule by rule, on virtual time: `now` is a value the test moves. Each test names
//! the rule of the Matrix VoIP module (spec v1, MSC2746) or the policy it checks.

use std::time::Duration;

use intercom::call::*;

#[path = "harness/virtual_time.rs"]
mod virtual_time;

use virtual_time::*;

// --- placing calls --------------------------------------------------------------------------

#[test]
fn press_prepares_offer_then_invites_every_room_with_its_own_call_id() {
    let mut t = CoreClock::new(Incoming::Ring);
    let out = t.press();
    assert!(sent(&out).is_empty(), "nothing goes out before the offer");
    let call = offer_call(&out);
    let out = t.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
    let invites = sent(&out);
    assert_eq!(invites.len(), 2);
    assert_ne!(
        invites[0].1.call_id, invites[1].1.call_id,
        "js-sdk keys calls by call id alone"
    );
    for (_, e) in &invites {
        assert_eq!(e.party_id, PartyId(DOOR_PARTY.into()));
        let CallEventBody::Invite {
            lifetime,
            invitee,
            offer,
        } = &e.body
        else {
            panic!()
        };
        assert!(
            *lifetime >= Duration::from_secs(90),
            "the spec's minimal recommended lifetime"
        );
        assert_eq!(*invitee, None, "the whole room may answer");
        assert_eq!(
            offer.streams,
            vec![("stream0".to_owned(), StreamPurpose::UserMedia)]
        );
    }
    // The door's ids sort after js-sdk's (digits first), so the door yields in glare.
    assert!(invites[0]
        .1
        .call_id
        .0
        .starts_with(|c: char| c.is_ascii_alphabetic()));
}

#[test]
fn mashing_the_button_places_one_call() {
    let mut t = CoreClock::new(Incoming::Ring);
    let mut offers = 0;
    for _ in 0..10 {
        offers += rtc_commands(&t.press())
            .iter()
            .filter(|c| matches!(c, RtcCommand::CreateOffer { .. }))
            .count();
        t.now += Duration::from_millis(100);
    }
    assert_eq!(offers, 1);
}

#[test]
fn a_press_right_after_a_call_ended_calls_again_but_one_that_ends_it_does_not() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    t.now += Duration::from_millis(500);
    // A quick "no" from the room...
    t.batch(vec![event(
        "!a",
        ALICE,
        "A1",
        &legs[0].1 .0,
        CallEventBody::Reject,
    )]);
    let out = t.batch(vec![event(
        "!b",
        BOB,
        "B1",
        &legs[1].1 .0,
        CallEventBody::Reject,
    )]);
    assert_eq!(ended(&out), Some(EndReason::Rejected));
    // ...and the visitor presses again at once: a new call.
    t.now += Duration::from_millis(200);
    assert_eq!(rtc_commands(&t.press()).len(), 1, "a new offer");

    // A press that hangs a call up is not followed by a new call from the same mashing.
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    t.now += Duration::from_secs(5);
    assert!(matches!(
        ended(&t.press()),
        Some(EndReason::Hangup { remote: false, .. })
    ));
    t.now += Duration::from_millis(200);
    assert!(t.press().is_empty(), "the same mashing");
}

#[test]
fn unanswered_call_times_out_with_invite_timeout_in_every_room() {
    let mut t = CoreClock::new(Incoming::Ring);
    let t0 = t.now;
    t.ring_out();
    assert_eq!(t.core.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    assert!(
        t.advance(Duration::from_millis(29_999)).is_empty(),
        "nothing fires early"
    );
    let out = t.advance(Duration::from_millis(1));
    let hangups: Vec<_> = sent(&out)
        .into_iter()
        .filter(|(_, e)| {
            e.body
                == CallEventBody::Hangup {
                    reason: HangupReason::InviteTimeout,
                }
        })
        .collect();
    assert_eq!(hangups.len(), 2);
    assert_eq!(ended(&out), Some(EndReason::NoAnswer));
    assert!(t.core.is_idle());
    assert_eq!(t.core.poll_timeout(), None);
}

#[test]
fn shutdown_before_the_offer_sends_nothing_to_rooms() {
    let mut t = CoreClock::new(Incoming::Ring);
    t.press();
    t.core.handle_input(t.now, Input::Shutdown);
    let out = t.drain();
    assert!(sent(&out).is_empty());
    assert!(ended(&out).is_some());
    assert!(t.core.is_idle());
}

// --- select_answer --------------------------------------------------------------------------

#[test]
fn first_answer_wins_is_selected_and_the_other_rooms_are_hung_up() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    let (room_b, call_b) = legs[1].clone();
    // Candidates from two would-be answerers arrive before any answer: buffered per party.
    t.batch(vec![
        candidates(
            "!b",
            ALICE,
            "A1",
            &call_b.0,
            &["candidate:1 1 udp 2122260223 127.0.0.1 5001 typ host"],
        ),
        candidates(
            "!b",
            BOB,
            "B1",
            &call_b.0,
            &["candidate:1 1 udp 2122260223 127.0.0.1 5002 typ host"],
        ),
    ]);
    let out = t.batch(vec![
        answer("!b", ALICE, "A1", &call_b),
        answer("!b", BOB, "B1", &call_b),
    ]);
    let cmds = rtc_commands(&out);
    assert!(
        matches!(cmds[0], RtcCommand::SetRemoteDescription(ref d) if d.kind == SdpKind::Answer)
    );
    assert_eq!(
        cmds[1],
        RtcCommand::AddRemoteCandidates(vec![candidate(
            "candidate:1 1 udp 2122260223 127.0.0.1 5001 typ host"
        )])
    );
    assert_eq!(
        cmds.len(),
        2,
        "the second answer is ignored, bob's candidates dropped: {cmds:?}"
    );
    let events = sent(&out);
    assert!(events.contains(&(
        room_b.clone(),
        CallEvent {
            call_id: call_b.clone(),
            party_id: PartyId(DOOR_PARTY.into()),
            body: CallEventBody::SelectAnswer {
                selected_party_id: PartyId("A1".into())
            },
        }
    )));
    assert!(events.iter().any(|(r, e)| r.0 == "!a"
        && e.call_id == legs[0].1
        && matches!(e.body, CallEventBody::Hangup { .. })));
    assert!(out.contains(&Output::Device(DeviceCommand::Ringback(false))));
    // Later candidates only from the chosen party.
    let out = t.batch(vec![
        candidates(
            "!b",
            BOB,
            "B1",
            &call_b.0,
            &["candidate:1 1 udp 2122260223 127.0.0.1 5003 typ host"],
        ),
        candidates(
            "!b",
            ALICE,
            "A1",
            &call_b.0,
            &["candidate:1 1 udp 2122260223 127.0.0.1 5004 typ host"],
        ),
    ]);
    assert_eq!(
        rtc_commands(&out),
        vec![RtcCommand::AddRemoteCandidates(vec![candidate(
            "candidate:1 1 udp 2122260223 127.0.0.1 5004 typ host"
        )])]
    );
}

#[test]
fn callee_ends_silently_when_another_party_is_selected() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    let out = t.batch(vec![event(
        "!a",
        ALICE,
        "ALICEDEV",
        &call.0,
        CallEventBody::SelectAnswer {
            selected_party_id: PartyId("OTHERDOOR".into()),
        },
    )]);
    assert_eq!(ended(&out), Some(EndReason::AnsweredElsewhere));
    assert!(sent(&out).is_empty(), "it does not send any events");
}

#[test]
fn callee_goes_on_when_it_is_selected() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    let out = t.batch(vec![event(
        "!a",
        ALICE,
        "ALICEDEV",
        &call.0,
        CallEventBody::SelectAnswer {
            selected_party_id: PartyId(DOOR_PARTY.into()),
        },
    )]);
    assert!(ended(&out).is_none());
    assert!(!t.core.is_idle());
}

// --- reject -----------------------------------------------------------------------------------

#[test]
fn reject_before_an_answer_ends_that_room_and_is_selected() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    let reject_a = event("!a", ALICE, "A1", &legs[0].1 .0, CallEventBody::Reject);
    let out = t.batch(vec![reject_a]);
    assert!(sent(&out).iter().any(|(r, e)| r.0 == "!a"
        && e.body
            == CallEventBody::SelectAnswer {
                selected_party_id: PartyId("A1".into())
            }));
    assert!(ended(&out).is_none(), "room !b still rings");
    let out = t.batch(vec![event(
        "!b",
        BOB,
        "B1",
        &legs[1].1 .0,
        CallEventBody::Reject,
    )]);
    assert_eq!(ended(&out), Some(EndReason::Rejected));
    assert!(t.core.is_idle());
}

#[test]
fn reject_after_an_answer_is_disregarded() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    t.batch(vec![answer("!a", ALICE, "A1", &legs[0].1)]);
    let out = t.batch(vec![event(
        "!a",
        BOB,
        "B1",
        &legs[0].1 .0,
        CallEventBody::Reject,
    )]);
    assert!(ended(&out).is_none() && out.is_empty(), "{out:?}");
}

// --- hangups ----------------------------------------------------------------------------------

#[test]
fn hangup_reasons_round_trip_and_a_missing_one_is_user_hangup() {
    assert_eq!(HangupReason::from_wire(None), HangupReason::UserHangup);
    for r in [
        "ice_failed",
        "ice_timeout",
        "invite_timeout",
        "user_hangup",
        "user_busy",
        "user_media_failed",
        "unknown_error",
        "replaced",
    ] {
        assert_eq!(HangupReason::from_wire(Some(r)).as_str(), r);
    }
}

#[test]
fn the_peer_hanging_up_ends_the_call_with_its_reason() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    let out = t.batch(vec![hangup(
        "!a",
        ALICE,
        "ALICEDEV",
        &call.0,
        HangupReason::UserHangup,
    )]);
    assert_eq!(
        ended(&out),
        Some(EndReason::Hangup {
            reason: HangupReason::UserHangup,
            remote: true
        })
    );
    assert!(rtc_commands(&out).contains(&RtcCommand::Close));
    assert!(t.core.is_idle());
}

#[test]
fn a_would_be_callee_hanging_up_does_not_end_the_ringing() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    let out = t.batch(vec![hangup(
        "!a",
        ALICE,
        "A1",
        &legs[0].1 .0,
        HangupReason::UserHangup,
    )]);
    assert!(ended(&out).is_none());
}

// --- incoming calls: liveness, batches, invitee, echo ------------------------------------------

#[test]
fn our_own_echo_is_ignored() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let out = t.batch(vec![invite("!a", DOOR, DOOR_PARTY, "1", None, 0)]);
    assert!(out.is_empty());
}

#[test]
fn an_invite_for_someone_else_is_ignored_and_one_without_invitee_is_for_anyone() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    assert!(t
        .batch(vec![invite("!a", ALICE, "A1", "1", Some(BOB), 0)])
        .is_empty());
    assert!(has_answer_command(
        &t.batch(vec![invite("!a", ALICE, "A1", "2", None, 0)])
    ));
}

#[test]
fn a_stale_invite_never_rings() {
    let mut t = CoreClock::new(Incoming::Ring);
    // 60 s lifetime, 58 s old: less than the 3 s needed to answer is left.
    for (id, age) in [("1", 58_000), ("2", 61_000)] {
        let out = t.batch(vec![invite("!a", ALICE, "A1", id, Some(DOOR), age)]);
        assert!(
            matches!(&out[..], [Output::Notice(n)] if n.contains("stale")),
            "only a line in the log: {out:?}"
        );
    }
    assert!(t.core.is_idle());
}

#[test]
fn ringing_stops_when_the_invite_expires() {
    let mut t = CoreClock::new(Incoming::Ring);
    // 60 s lifetime, 40 s old: rings for the 20 s left, not the 30 s ring timeout.
    let out = t.batch(vec![invite("!a", ALICE, "A1", "1", Some(DOOR), 40_000)]);
    assert!(out.contains(&Output::Device(DeviceCommand::Ringtone(true))));
    assert!(t.advance(Duration::from_millis(19_999)).is_empty());
    let out = t.advance(Duration::from_millis(1));
    assert_eq!(ended(&out), Some(EndReason::NoAnswer));
    assert!(out.contains(&Output::Device(DeviceCommand::Ringtone(false))));
    assert!(sent(&out).is_empty());
}

#[test]
fn invite_and_hangup_in_one_batch_never_ring() {
    for settle in [
        CallEventBody::Hangup {
            reason: HangupReason::UserHangup,
        },
        CallEventBody::Reject,
        CallEventBody::Answer {
            answer: sdp(SdpKind::Answer),
        },
        CallEventBody::SelectAnswer {
            selected_party_id: PartyId("X".into()),
        },
    ] {
        let mut t = CoreClock::new(Incoming::Ring);
        let out = t.batch(vec![
            invite("!a", ALICE, "A1", "1", Some(DOOR), 0),
            event("!a", ALICE, "A1", "1", settle.clone()),
        ]);
        assert!(out.is_empty(), "{settle:?}: {out:?}");
        // And the same invite arriving again later does not ring either.
        assert!(t
            .batch(vec![invite("!a", ALICE, "A1", "1", Some(DOOR), 0)])
            .is_empty());
    }
}

#[test]
fn a_hangup_seen_before_its_invite_keeps_the_invite_from_ringing() {
    let mut t = CoreClock::new(Incoming::Ring);
    t.batch(vec![hangup(
        "!a",
        ALICE,
        "A1",
        "1",
        HangupReason::UserHangup,
    )]);
    assert!(t
        .batch(vec![invite("!a", ALICE, "A1", "1", Some(DOOR), 0)])
        .is_empty());
}

// --- policy -----------------------------------------------------------------------------------

#[test]
fn a_stranger_is_rejected_and_never_reaches_webrtc() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let out = t.batch(vec![invite("!dm", MALLORY, "M1", "1", Some(DOOR), 0)]);
    assert_eq!(sent(&out).len(), 1);
    assert_eq!(sent(&out)[0].1.body, CallEventBody::Reject);
    assert!(rtc_commands(&out).is_empty());
    assert!(!out.iter().any(|o| matches!(o, Output::Device(_))));
    // An invite to the whole room is left to the others in it: a reject would end it for all.
    let out = t.batch(vec![invite("!group", MALLORY, "M1", "2", None, 0)]);
    assert!(
        matches!(&out[..], [Output::Notice(n)] if n.contains("not on the allow list")),
        "{out:?}"
    );
}

#[test]
fn ring_mode_answers_only_after_a_press() {
    let mut t = CoreClock::new(Incoming::Ring);
    let out = t.batch(vec![invite("!a", ALICE, "A1", "1", Some(DOOR), 0)]);
    assert!(!has_answer_command(&out));
    assert!(out.contains(&Output::Device(DeviceCommand::Ringtone(true))));
    // Candidates that arrive before the offer is applied wait for it.
    let out = t.batch(vec![candidates(
        "!a",
        ALICE,
        "A1",
        "1",
        &["candidate:1 1 udp 2122260223 127.0.0.1 5005 typ host"],
    )]);
    assert!(rtc_commands(&out).is_empty());
    let out = t.press();
    let cmds = rtc_commands(&out);
    assert!(
        matches!(cmds[0], RtcCommand::CreateAnswer { .. }),
        "{cmds:?}"
    );
    assert_eq!(
        cmds[1],
        RtcCommand::AddRemoteCandidates(vec![candidate(
            "candidate:1 1 udp 2122260223 127.0.0.1 5005 typ host"
        )])
    );
    assert!(out.contains(&Output::Device(DeviceCommand::Ringtone(false))));
    let out = t.rtc(
        &CallId("1".into()),
        RtcEvent::LocalDescription(sdp(SdpKind::Answer)),
    );
    assert!(matches!(sent(&out)[0].1.body, CallEventBody::Answer { .. }));
}

#[test]
fn reject_policy_rejects_even_allowed_callers() {
    let mut t = CoreClock::new(Incoming::Reject);
    let out = t.batch(vec![invite("!a", ALICE, "A1", "1", Some(DOOR), 0)]);
    assert_eq!(sent(&out)[0].1.body, CallEventBody::Reject);
    assert!(rtc_commands(&out).is_empty());
}

#[test]
fn a_second_call_while_busy_gets_user_busy() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    t.answered_incoming();
    let out = t.batch(vec![invite("!b", BOB, "B1", "200", Some(DOOR), 0)]);
    let events = sent(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.call_id, CallId("200".into()));
    assert_eq!(
        events[0].1.body,
        CallEventBody::Hangup {
            reason: HangupReason::UserBusy
        }
    );
    assert!(rtc_commands(&out).is_empty());
}

#[test]
fn the_peer_leaving_the_room_ends_the_call() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    t.answered_incoming();
    t.core.handle_input(
        t.now,
        Input::MemberLeft {
            room: RoomId("!a".into()),
            user: UserId(ALICE.into()),
        },
    );
    assert_eq!(ended(&t.drain()), Some(EndReason::PeerLeft));
}

#[test]
fn maximum_call_length_hangs_up_with_user_hangup() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    let out = t.advance(Duration::from_secs(300));
    assert_eq!(
        ended(&out),
        Some(EndReason::Hangup {
            reason: HangupReason::UserHangup,
            remote: false
        })
    );
    assert!(sent(&out).iter().any(|(_, e)| e.body
        == CallEventBody::Hangup {
            reason: HangupReason::UserHangup
        }));
}

#[test]
fn a_press_during_a_call_hangs_up_when_configured() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    t.now += Duration::from_secs(5);
    let out = t.press();
    assert!(matches!(
        ended(&out),
        Some(EndReason::Hangup { remote: false, .. })
    ));
}

// --- glare ------------------------------------------------------------------------------------

#[test]
fn glare_while_preparing_drops_ours_and_takes_theirs() {
    let mut t = CoreClock::new(Incoming::Ring);
    t.press();
    let out = t.batch(vec![invite("!a", ALICE, "A1", "1795", None, 0)]);
    assert_eq!(ended(&out), Some(EndReason::Replaced));
    assert!(
        sent(&out).is_empty(),
        "no invite of ours went out: nothing to hang up"
    );
    assert!(
        has_answer_command(&out),
        "theirs is accepted automatically, even in ring mode"
    );
}

#[test]
fn glare_after_our_invite_keeps_the_lesser_call_id() {
    // js-sdk's ids start with a digit: lesser than the door's. Theirs survives.
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    let out = t.batch(vec![invite("!a", ALICE, "A1", "1795", None, 0)]);
    assert_eq!(ended(&out), Some(EndReason::Replaced));
    assert!(sent(&out)
        .iter()
        .any(|(_, e)| e.call_id == legs[0].1 && matches!(e.body, CallEventBody::Hangup { .. })));
    assert!(has_answer_command(&out));

    // A greater id loses: the door hangs it up and keeps ringing.
    let mut t = CoreClock::new(Incoming::Ring);
    t.ring_out();
    let out = t.batch(vec![invite("!a", ALICE, "A1", "zzz", None, 0)]);
    assert!(ended(&out).is_none());
    assert_eq!(sent(&out).len(), 1);
    assert_eq!(sent(&out)[0].1.call_id, CallId("zzz".into()));
    assert!(!has_answer_command(&out));
}

// --- negotiate --------------------------------------------------------------------------------

fn negotiate(call: &CallId, kind: SdpKind) -> ReceivedEvent {
    event(
        "!a",
        ALICE,
        "ALICEDEV",
        &call.0,
        CallEventBody::Negotiate {
            description: sdp(kind),
            lifetime: Duration::from_secs(60),
        },
    )
}

#[test]
fn a_negotiate_offer_is_answered_with_a_negotiate_answer() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    let out = t.batch(vec![negotiate(&call, SdpKind::Offer)]);
    assert!(
        matches!(rtc_commands(&out)[..], [RtcCommand::SetRemoteDescription(ref d)] if d.kind == SdpKind::Offer)
    );
    let out = t.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Answer)));
    let events = sent(&out);
    assert!(
        matches!(events[0].1.body, CallEventBody::Negotiate { ref description, .. } if description.kind == SdpKind::Answer)
    );
}

#[test]
fn in_an_offer_collision_the_callee_is_polite_and_the_caller_is_not() {
    // The door as callee: polite, takes the peer's offer over its own.
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
    let out = t.batch(vec![negotiate(&call, SdpKind::Offer)]);
    assert_eq!(rtc_commands(&out).len(), 1);

    // The door as caller: impolite, ignores the colliding offer.
    let mut t = CoreClock::new(Incoming::Ring);
    let (id, legs) = t.ring_out();
    t.batch(vec![answer("!a", ALICE, "ALICEDEV", &legs[0].1)]);
    let out = t.rtc(&id, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
    assert!(matches!(
        sent(&out)[0].1.body,
        CallEventBody::Negotiate { .. }
    ));
    let out = t.batch(vec![negotiate(&legs[0].1, SdpKind::Offer)]);
    assert!(rtc_commands(&out).is_empty());
    // Its own offer's answer is applied.
    let out = t.batch(vec![negotiate(&legs[0].1, SdpKind::Answer)]);
    assert_eq!(rtc_commands(&out).len(), 1);
}

// --- candidates -------------------------------------------------------------------------------

#[test]
fn local_candidates_wait_for_the_invite_then_batch_and_end() {
    let mut t = CoreClock::new(Incoming::Ring);
    let out = t.press();
    let call = offer_call(&out);
    // Gathered before the offer is out: held.
    assert!(sent(&t.rtc(&call, RtcEvent::LocalCandidates(vec![candidate("host1")]))).is_empty());
    let out = t.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
    let batches: Vec<_> = sent(&out)
        .into_iter()
        .filter(|(_, e)| matches!(e.body, CallEventBody::Candidates { .. }))
        .collect();
    assert_eq!(
        batches.len(),
        2,
        "the first batch follows the invite at once, to every room"
    );
    // Later candidates are grouped.
    assert!(sent(&t.rtc(&call, RtcEvent::LocalCandidates(vec![candidate("srflx")]))).is_empty());
    assert!(sent(&t.rtc(&call, RtcEvent::LocalCandidates(vec![candidate("relay")]))).is_empty());
    let out = t.advance(Duration::from_millis(100));
    let (_, e) = &sent(&out)[0];
    assert_eq!(
        e.body,
        CallEventBody::Candidates {
            candidates: vec![candidate("srflx"), candidate("relay")]
        }
    );
    // Gathering done with nothing left: the end of candidates goes alone (spec: must send it).
    let out = t.rtc(&call, RtcEvent::GatheringComplete);
    let (_, e) = &sent(&out)[0];
    let CallEventBody::Candidates { candidates } = &e.body else {
        panic!()
    };
    assert_eq!(candidates.len(), 1);
    assert!(candidates[0].candidate.is_empty());
}

// --- ICE --------------------------------------------------------------------------------------

#[test]
fn ice_failure_and_a_lasting_disconnect_hang_up_with_ice_failed() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    let out = t.rtc(&call, RtcEvent::Connection(ConnectionState::Failed));
    assert!(sent(&out).iter().any(|(_, e)| e.body
        == CallEventBody::Hangup {
            reason: HangupReason::IceFailed
        }));

    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Disconnected));
    t.now += Duration::from_secs(2);
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Connected));
    assert!(
        t.advance(Duration::from_secs(20)).is_empty(),
        "a short drop that recovers is fine"
    );
    t.rtc(&call, RtcEvent::Connection(ConnectionState::Disconnected));
    let out = t.advance(Duration::from_secs(10));
    assert_eq!(
        ended(&out),
        Some(EndReason::Hangup {
            reason: HangupReason::IceFailed,
            remote: false
        })
    );
}

#[test]
fn media_that_never_connects_is_given_up_with_ice_failed() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    t.answered_incoming();
    let out = t.advance(Duration::from_secs(30));
    assert_eq!(
        ended(&out),
        Some(EndReason::Hangup {
            reason: HangupReason::IceFailed,
            remote: false
        })
    );
}

// --- strangers and what peers may make the door do ----------------------------------------------

fn host_candidate(port: u16) -> String {
    format!("candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host")
}

#[test]
fn a_strangers_answer_reject_and_candidates_are_ignored_and_an_allowed_answer_wins() {
    let mut t = CoreClock::new(Incoming::Ring);
    let (_, legs) = t.ring_out();
    let (call_a, call_b) = (legs[0].1.clone(), legs[1].1.clone());
    // Mallory is a member of both rung rooms: her candidates, her answer in !a and her reject
    // in !b are not looked at.
    let out = t.batch(vec![
        candidates("!a", MALLORY, "M1", &call_a.0, &[&host_candidate(6001)]),
        answer("!a", MALLORY, "M1", &call_a),
        event("!b", MALLORY, "M1", &call_b.0, CallEventBody::Reject),
    ]);
    assert!(rtc_commands(&out).is_empty(), "{out:?}");
    assert!(
        sent(&out).is_empty(),
        "nothing selected or hung up: {out:?}"
    );
    let notes: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Notice(n) if n.contains(MALLORY) && n.contains("not on the allow list")))
        .collect();
    assert_eq!(notes.len(), 2, "{out:?}");
    assert_eq!(t.core.activity(), Activity::Ringing);
    // Alice answers in !b, which mallory's reject did not end; mallory's candidates in !a
    // never reach WebRTC, and !a is hung up.
    let out = t.batch(vec![answer("!b", ALICE, "A1", &call_b)]);
    let cmds = rtc_commands(&out);
    assert_eq!(cmds.len(), 1, "only alice's answer: {cmds:?}");
    assert!(sent(&out).iter().any(|(r, e)| r.0 == "!b"
        && e.body
            == CallEventBody::SelectAnswer {
                selected_party_id: PartyId("A1".into())
            }));
    assert!(sent(&out).iter().any(|(r, e)| r.0 == "!a"
        && e.call_id == call_a
        && matches!(e.body, CallEventBody::Hangup { .. })));
    assert_eq!(t.core.activity(), Activity::InCall);
}

#[test]
fn a_strangers_invite_for_the_whole_room_is_rejected_when_the_door_is_the_only_other_member() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    // Element's 1:1 call names no invitee: in a room of two, it is for the door.
    let mut dm = invite("!dm", MALLORY, "M1", "1", None, 0);
    dm.members = Some(2);
    let out = t.batch(vec![dm]);
    assert_eq!(
        sent(&out).iter().map(|(_, e)| &e.body).collect::<Vec<_>>(),
        vec![&CallEventBody::Reject],
        "{out:?}"
    );
    assert!(rtc_commands(&out).is_empty());
    // In a room of three, it is for the others too: left alone.
    let mut group = invite("!group", MALLORY, "M1", "2", None, 0);
    group.members = Some(3);
    let out = t.batch(vec![group]);
    assert!(sent(&out).is_empty(), "{out:?}");
    assert!(t.core.is_idle());
}

#[test]
fn an_invite_without_an_age_never_rings() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let mut e = invite("!a", ALICE, "A1", "1", Some(DOOR), 0);
    e.age = None;
    let out = t.batch(vec![e]);
    assert!(
        matches!(&out[..], [Output::Notice(n)] if n.contains("no age")),
        "only a line in the log: {out:?}"
    );
    assert!(t.core.is_idle());
}

#[test]
fn a_peers_candidates_are_filtered_deduplicated_and_bounded() {
    let mut t = CoreClock::new(Incoming::AutoAnswer);
    let call = t.answered_incoming();
    let good = host_candidate(7000);
    let out = t.batch(vec![candidates(
        "!a",
        ALICE,
        "ALICEDEV",
        &call.0,
        &[
            &good,
            &good,
            "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
            "candidate:3 1 TCP 1518280447 192.0.2.1 4443 typ host tcptype passive",
            "candidate:4 1 udp 2122260223 0e4c7c1e-7a8f.local 51000 typ host",
            "candidate:5 1 udp 2122260223 169.254.10.20 51000 typ host",
            "candidate:6 1 udp 2122260223 fe80::1 51000 typ host",
            "candidate:7 1 udp 2122260223 printer.lan 51000 typ host",
            "garbage",
            "",
        ],
    )]);
    assert_eq!(
        rtc_commands(&out),
        vec![RtcCommand::AddRemoteCandidates(vec![
            candidate(&good),
            candidate("")
        ])]
    );
    let notes: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Notice(n) if n.contains("dropped ICE candidates")))
        .collect();
    assert_eq!(notes.len(), 1, "{out:?}");
    // Four events of 300 candidates each: only a call's worth reach WebRTC, and the log says
    // so once.
    let mut used = 1;
    let mut noticed = 0;
    for round in 0..4u16 {
        let lines: Vec<String> = (0..300u16)
            .map(|i| host_candidate(10_000 + round * 300 + i))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = t.batch(vec![candidates("!a", ALICE, "ALICEDEV", &call.0, &refs)]);
        for c in rtc_commands(&out) {
            if let RtcCommand::AddRemoteCandidates(c) = c {
                used += c.len();
            }
        }
        noticed += out
            .iter()
            .filter(|o| matches!(o, Output::Notice(_)))
            .count();
    }
    assert_eq!(used, MAX_REMOTE_CANDIDATES);
    assert_eq!(noticed, 0, "the drops were logged once already");
}

// --- devices ----------------------------------------------------------------------------------

#[test]
fn a_failed_device_costs_the_call_that_device_not_the_call() {
    let mut t = CoreClock::new(Incoming::Ring);
    let out = t.press();
    let call = offer_call(&out);
    // The microphone fails while the offer is being made: the call still rings every room.
    t.core.handle_input(
        t.now,
        Input::MediaFailed {
            what: "microphone \"hw:1,0\" failed".into(),
        },
    );
    let out = t.drain();
    assert!(sent(&out).is_empty(), "{out:?}");
    assert_eq!(ended(&out), None, "{out:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Notice(n) if n.contains("microphone \"hw:1,0\""))),
        "{out:?}"
    );
    let out = t.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
    assert_eq!(sent(&out).len(), 2, "{out:?}");
    // And a camera that dies while it rings leaves it ringing.
    t.core.handle_input(
        t.now,
        Input::MediaFailed {
            what: "camera /dev/video0 failed".into(),
        },
    );
    let out = t.drain();
    assert!(sent(&out).is_empty() && ended(&out).is_none(), "{out:?}");
    assert!(!t.core.is_idle());
}

// --- the policy both kinds of call ask ------------------------------------------------------

#[test]
fn an_offered_call_is_judged_by_the_allow_list_then_busy_then_the_incoming_policy() {
    let alice = UserId(virtual_time::ALICE.into());
    let mallory = UserId(virtual_time::MALLORY.into());
    for (incoming, free) in [
        (Incoming::Ring, Offered::Ring),
        (Incoming::AutoAnswer, Offered::Answer),
        (Incoming::Reject, Offered::Reject),
    ] {
        let policy = virtual_time::policy(incoming);
        assert_eq!(policy.offered(&alice, false), free);
        assert_eq!(policy.offered(&alice, true), Offered::Busy);
        // A stranger is refused as a stranger, busy or not: never told the door is busy.
        assert_eq!(policy.offered(&mallory, false), Offered::Stranger);
        assert_eq!(policy.offered(&mallory, true), Offered::Stranger);
    }
}
