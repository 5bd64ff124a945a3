//! Tests of the core on virtual time: `now` is a value the test moves.

use std::time::{Duration, Instant};

use intercom::call::*;

fn policy() -> Policy {
    Policy {
        rooms: vec![RoomId("!a".into()), RoomId("!b".into())],
        allow: vec![UserId("@alice:hs".into())],
        incoming: Incoming::Ring,
        ring_timeout: Duration::from_secs(30),
        max_length: Duration::from_secs(300),
        video: true,
        press_during_call: PressDuringCall::Ignore,
    }
}

fn core() -> Core {
    let identity = Identity {
        user: UserId("@door:hs".into()),
        party: PartyId("DOORDEVICE".into()),
    };
    Core::new(policy(), identity, "c")
}

fn drain(core: &mut Core) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn offer() -> SessionDescription {
    SessionDescription {
        kind: SdpKind::Offer,
        sdp: "v=0\r\n".into(),
        streams: vec![],
    }
}

fn offer_call(out: &[Output]) -> CallId {
    out.iter()
        .find_map(|o| match o {
            Output::Rtc {
                call,
                command: RtcCommand::CreateOffer { video: true },
            } => Some(call.clone()),
            _ => None,
        })
        .expect("a press asks WebRTC for an offer")
}

#[test]
fn press_prepares_offer_then_invites_every_room() {
    let t0 = Instant::now();
    let mut c = core();
    c.handle_input(t0, Input::ButtonPressed);
    let out = drain(&mut c);
    let call = offer_call(&out);
    assert!(out.contains(&Output::Device(DeviceCommand::StartMedia)));
    assert!(!out.iter().any(|o| matches!(o, Output::Send { .. })));

    c.handle_input(
        t0 + Duration::from_millis(40),
        Input::Rtc {
            call: call.clone(),
            event: RtcEvent::LocalDescription(offer()),
        },
    );
    let rooms: Vec<_> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { room, event } => {
                assert_eq!(event.party_id, PartyId("DOORDEVICE".into()));
                assert!(matches!(
                    event.body,
                    CallEventBody::Invite { lifetime, invitee: None, .. } if lifetime >= Duration::from_secs(60)
                ));
                Some(room)
            }
            _ => None,
        })
        .collect();
    assert_eq!(rooms, vec![RoomId("!a".into()), RoomId("!b".into())]);
}

#[test]
fn mashing_the_button_places_one_call() {
    let t0 = Instant::now();
    let mut c = core();
    for i in 0..10 {
        c.handle_input(t0 + Duration::from_millis(100 * i), Input::ButtonPressed);
    }
    let offers = drain(&mut c)
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Rtc {
                    command: RtcCommand::CreateOffer { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(offers, 1);
}

#[test]
fn unanswered_call_times_out_with_invite_timeout() {
    let t0 = Instant::now();
    let mut c = core();
    c.handle_input(t0, Input::ButtonPressed);
    let call = offer_call(&drain(&mut c));
    c.handle_input(
        t0,
        Input::Rtc {
            call: call.clone(),
            event: RtcEvent::LocalDescription(offer()),
        },
    );
    drain(&mut c);
    let deadline = c.poll_timeout().expect("ringing has a deadline");
    assert_eq!(deadline, t0 + Duration::from_secs(30));

    c.handle_timeout(deadline - Duration::from_millis(1));
    assert!(drain(&mut c).is_empty(), "nothing fires early");

    c.handle_timeout(deadline);
    let out = drain(&mut c);
    let hangups = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    event: CallEvent {
                        body: CallEventBody::Hangup {
                            reason: HangupReason::InviteTimeout
                        },
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert_eq!(hangups, 2, "one hangup per rung room");
    assert!(out.contains(&Output::CallEnded {
        call,
        reason: EndReason::NoAnswer
    }));
    assert!(c.is_idle());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn shutdown_before_the_offer_sends_nothing_to_rooms() {
    let t0 = Instant::now();
    let mut c = core();
    c.handle_input(t0, Input::ButtonPressed);
    drain(&mut c);
    c.handle_input(t0, Input::Shutdown);
    let out = drain(&mut c);
    assert!(!out.iter().any(|o| matches!(o, Output::Send { .. })));
    assert!(out.iter().any(|o| matches!(o, Output::CallEnded { .. })));
    assert!(c.is_idle());
}

#[test]
fn hangup_reasons_round_trip_and_default() {
    assert_eq!(HangupReason::from_wire(None), HangupReason::UserHangup);
    for r in [
        "ice_failed",
        "ice_timeout",
        "invite_timeout",
        "user_hangup",
        "user_busy",
        "user_media_failed",
        "unknown_error",
        "something_new",
    ] {
        assert_eq!(HangupReason::from_wire(Some(r)).as_str(), r);
    }
}
