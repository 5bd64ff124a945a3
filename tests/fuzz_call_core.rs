//! Property test of the call core: random sequences of inputs — events duplicated, reordered,
//! stale, from strangers, from other rooms, of absurd sizes, with WebRTC events (keypad keys
//! among them) and timeouts mixed in — never panic, never make the core keep more than a bounded
//! amount, never let a stranger's call reach WebRTC, never select a stranger's answer to the
//! door's own call, never hand WebRTC a candidate it must not use (TCP, mDNS, link-local) or more
//! than a call's worth, never open the door for anyone but an allow-listed user (with a fresh
//! command, encrypted where the room is), and always come back to idle once time passes.
//!
//! `INTERCOM_FUZZ_CASES` sets the number of cases (default 100 000; 1 000 000 by hand took 169 s in
//! a debug build, no panic); `INTERCOM_FUZZ_SEED` the
//! first seed, to replay a failure.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use intercom::call::*;

#[path = "harness/rng.rs"]
mod rng;
#[path = "harness/virtual_time.rs"]
mod virtual_time;

use rng::Rng;
use virtual_time::{identity, policy};

const USERS: &[&str] = &["@alice:hs", "@bob:hs", "@mallory:hs", "@door:hs"];
const PARTIES: &[&str] = &["A1", "B1", "M1", "DOORDEVICE", "X"];
const ROOMS: &[&str] = &["!a", "!b", "!elsewhere"];
const STRANGER: &str = "@mallory:hs";
const ALLOWED: &[&str] = &["@alice:hs", "@bob:hs"];

fn sdp(rng: &mut Rng) -> SessionDescription {
    let size = if rng.chance(1) { 300 * 1024 } else { 40 };
    SessionDescription {
        kind: if rng.chance(50) {
            SdpKind::Offer
        } else {
            SdpKind::Answer
        },
        sdp: "v".repeat(size),
        streams: Vec::new(),
    }
}

fn random_body(rng: &mut Rng) -> CallEventBody {
    let duration = |rng: &mut Rng| Duration::from_millis(rng.below(120_000));
    match rng.below(8) {
        0 | 1 => CallEventBody::Invite {
            offer: sdp(rng),
            lifetime: duration(rng),
            invitee: if rng.chance(50) {
                None
            } else {
                Some(UserId(rng.pick(USERS).to_string()))
            },
        },
        2 => CallEventBody::Answer { answer: sdp(rng) },
        3 => {
            let n = if rng.chance(2) {
                5000
            } else {
                rng.below(4) as usize
            };
            CallEventBody::Candidates {
                candidates: (0..n)
                    .map(|i| Candidate {
                        candidate: random_candidate(rng, i),
                        sdp_mid: None,
                        sdp_m_line_index: Some(0),
                    })
                    .collect(),
            }
        }
        4 => CallEventBody::SelectAnswer {
            selected_party_id: PartyId(rng.pick(PARTIES).to_string()),
        },
        5 => CallEventBody::Reject,
        6 => CallEventBody::Negotiate {
            description: sdp(rng),
            lifetime: duration(rng),
        },
        _ => CallEventBody::Hangup {
            reason: HangupReason::from_wire(
                rng.pick(&[None, Some("ice_failed"), Some("weird")])
                    .as_deref(),
            ),
        },
    }
}

/// A candidate line: usable ones (some repeated), and each kind the door must never use.
fn random_candidate(rng: &mut Rng, i: usize) -> String {
    let port = 1024 + i % 60_000;
    match rng.below(8) {
        0 => String::new(),
        1 => format!("candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host"),
        2 => "candidate:2 1 UDP 1686052607 192.0.2.7 5000 typ srflx raddr 0.0.0.0 rport 0".into(),
        3 => format!("candidate:3 1 tcp 1518280447 127.0.0.1 {port} typ host tcptype passive"),
        4 => format!("candidate:4 1 udp 2122260223 {i}.local {port} typ host"),
        5 => format!("candidate:5 1 udp 2122260223 169.254.3.4 {port} typ host"),
        6 => format!("candidate:6 1 udp 2122260223 fe80::{i:x} {port} typ host"),
        _ => format!("c{i}"),
    }
}

/// Runs one case; returns how often the keypad opened the door.
fn run_case(seed: u64) -> u32 {
    let mut keypad_openings = 0;
    let mut rng = Rng(seed | 1);
    let policy = Policy {
        incoming: *rng.pick(&[Incoming::AutoAnswer, Incoming::Ring, Incoming::Reject]),
        press_during_call: *rng.pick(&[PressDuringCall::Ignore, PressDuringCall::Hangup]),
        ..policy(Incoming::Ring)
    };
    let mut core = Core::new(policy, identity(), "d");
    let long_press = *rng.pick(&[LongPress::None, LongPress::Hangup, LongPress::OpenDoor]);
    core.set_door_policy(DoorPolicy {
        relay: rng.below(4) != 0,
        pulse: Duration::from_millis(100 + rng.below(5000)),
        call_command: rng.below(2) == 0,
        room_command: rng.below(2) == 0,
        long_press,
        dtmf_code: rng.pick(&["", "#", "#", "1#", "12"]).to_string(),
    });
    let mut now = Instant::now();
    // Call ids seen so far, to aim events at live calls; who sent each invite.
    let mut ids: Vec<CallId> = vec![CallId("1".into()), CallId("zzz".into())];
    let mut inviter: HashMap<CallId, String> = HashMap::new();
    // Who answered or rejected each (call id, party) so far.
    let mut answerers: HashMap<(CallId, PartyId), Vec<String>> = HashMap::new();
    // The remote candidates each call handed to WebRTC.
    let mut used_candidates: HashMap<CallId, usize> = HashMap::new();
    let mut local: Option<CallId> = None;

    let steps = 5 + rng.below(30);
    for _ in 0..steps {
        now += Duration::from_millis(rng.below(3000));
        // Who may open the door with this step's input: an allow-listed sender of `!open`, or
        // the button held when its long press opens the door. Nobody else, ever.
        let mut opener: Option<String> = None;
        // An allow-listed sender of a message, fresh or not: only they are ever answered.
        let mut asker: Option<String> = None;
        // A key from the peer of whatever call is up: whoever that is, only an allow-listed
        // user's keys open (the fuzz does not follow who the peer is; the core names them).
        let mut keypad = false;
        if rng.below(8) == 0 {
            let sender = rng.pick(USERS).to_string();
            let body = rng
                .pick(&["!open", " !OPEN\n", "!opens", "open", ""])
                .to_string();
            let age = (!rng.chance(10)).then(|| Duration::from_millis(rng.below(60_000)));
            let (encrypted, room_encrypted) = (rng.chance(50), rng.chance(50));
            // Only a fresh command, encrypted where the room is, from someone allowed.
            let fresh = age.is_some() && (encrypted || !room_encrypted);
            if sender != STRANGER && sender != "@door:hs" {
                asker = Some(sender.clone());
                if fresh {
                    opener = Some(sender.clone());
                }
            }
            core.handle_input(
                now,
                Input::Message(ReceivedMessage {
                    room: RoomId(rng.pick(ROOMS).to_string()),
                    sender: UserId(sender),
                    age,
                    body,
                    encrypted,
                    room_encrypted,
                }),
            );
        } else if rng.below(30) == 0 {
            if long_press == LongPress::OpenDoor {
                opener = Some("the button (long press)".into());
            }
            core.handle_input(now, Input::LongPress);
        } else {
            match rng.below(100) {
                0..=9 => core.handle_input(now, Input::ButtonPressed),
                10..=59 => {
                    let n = 1 + rng.below(4);
                    let mut batch = Vec::new();
                    for _ in 0..n {
                        let sender = rng.pick(USERS).to_string();
                        let body = random_body(&mut rng);
                        // A stranger's invites have call ids of their own ("m…"), which nobody else
                        // uses: an answer to such an id can only be an answer to the stranger.
                        let call_id =
                            if sender == STRANGER && matches!(body, CallEventBody::Invite { .. }) {
                                CallId(format!("m{}", rng.below(4)))
                            } else {
                                loop {
                                    let id = rng.pick(&ids).clone();
                                    if !id.0.starts_with('m') {
                                        break id;
                                    }
                                }
                            };
                        let ev = ReceivedEvent {
                            room: RoomId(rng.pick(ROOMS).to_string()),
                            sender: UserId(sender),
                            age: if rng.chance(10) {
                                None
                            } else {
                                Some(Duration::from_millis(rng.below(100_000)))
                            },
                            encrypted: rng.chance(50),
                            members: rng.pick(&[None, Some(2), Some(3)]).to_owned(),
                            event: CallEvent {
                                call_id,
                                party_id: PartyId(rng.pick(PARTIES).to_string()),
                                body,
                            },
                        };
                        if matches!(ev.event.body, CallEventBody::Invite { .. })
                            && ev.sender.0 == STRANGER
                        {
                            inviter.insert(ev.event.call_id.clone(), ev.sender.0.clone());
                        }
                        if let CallEventBody::Answer { .. } | CallEventBody::Reject = ev.event.body
                        {
                            let key = (ev.event.call_id.clone(), ev.event.party_id.clone());
                            answerers.entry(key).or_default().push(ev.sender.0.clone());
                        }
                        batch.push(ev.clone());
                        if rng.chance(10) {
                            batch.push(ev); // duplicated
                        }
                    }
                    if rng.chance(20) {
                        batch.reverse(); // reordered
                    }
                    core.handle_input(now, Input::SyncBatch(batch));
                }
                60..=84 => {
                    let call = match (&local, rng.chance(80)) {
                        (Some(c), true) => c.clone(),
                        _ => rng.pick(&ids).clone(),
                    };
                    let event = match rng.below(9) {
                        0 => RtcEvent::LocalDescription(sdp(&mut rng)),
                        1 => RtcEvent::LocalCandidates(vec![Candidate {
                            candidate: "c".into(),
                            sdp_mid: None,
                            sdp_m_line_index: None,
                        }]),
                        2 => RtcEvent::GatheringComplete,
                        3 => RtcEvent::Connection(*rng.pick(&[
                            ConnectionState::Connecting,
                            ConnectionState::Connected,
                            ConnectionState::Disconnected,
                            ConnectionState::Failed,
                        ])),
                        4 => RtcEvent::Failed { reason: "x".into() },
                        5..=7 => {
                            keypad = true;
                            RtcEvent::Dtmf(*rng.pick(&['1', '2', '#', '#', '*', 'x']))
                        }
                        _ => RtcEvent::Connection(ConnectionState::Connected),
                    };
                    core.handle_input(now, Input::Rtc { call, event });
                }
                85..=94 => {
                    now += Duration::from_millis(rng.below(40_000));
                    core.handle_timeout(now);
                }
                95..=97 => core.handle_input(
                    now,
                    Input::MemberLeft {
                        room: RoomId(rng.pick(ROOMS).to_string()),
                        user: UserId(rng.pick(USERS).to_string()),
                    },
                ),
                _ => core.handle_input(
                    now,
                    Input::MediaFailed {
                        what: "camera".into(),
                    },
                ),
            }
        }
        let mut count = 0;
        while let Some(out) = core.poll_output() {
            count += 1;
            assert!(count < 1000, "seed {seed}: outputs without end");
            match out {
                Output::Rtc { call, command } => {
                    if let RtcCommand::CreateAnswer { .. } = command {
                        assert_ne!(
                            inviter.get(&call).map(String::as_str),
                            Some(STRANGER),
                            "seed {seed}: a stranger's call reached WebRTC"
                        );
                    }
                    if let RtcCommand::AddRemoteCandidates(c) = &command {
                        for c in c {
                            assert_eq!(
                                judge_candidate(&c.candidate),
                                Ok(()),
                                "seed {seed}: {:?} reached WebRTC",
                                c.candidate
                            );
                        }
                        let used = used_candidates.entry(call.clone()).or_default();
                        *used += c.iter().filter(|c| !c.candidate.is_empty()).count();
                        assert!(
                            *used <= MAX_REMOTE_CANDIDATES,
                            "seed {seed}: {used} candidates in one call"
                        );
                    }
                    if matches!(
                        command,
                        RtcCommand::CreateOffer { .. } | RtcCommand::CreateAnswer { .. }
                    ) {
                        local = Some(call.clone());
                    }
                    if !ids.contains(&call) && ids.len() < 12 {
                        ids.push(call);
                    }
                }
                Output::Send { event, .. } => {
                    // The door selects only an answer (or reject) of someone allowed.
                    if let CallEventBody::SelectAnswer { selected_party_id } = &event.body {
                        let key = (event.call_id.clone(), selected_party_id.clone());
                        let from = answerers.get(&key).cloned().unwrap_or_default();
                        assert!(
                            from.iter().any(|u| ALLOWED.contains(&u.as_str())),
                            "seed {seed}: selected {key:?}, answered only by {from:?}"
                        );
                    }
                    if !ids.contains(&event.call_id) && ids.len() < 12 {
                        ids.push(event.call_id);
                    }
                }
                Output::OpenDoor { by, .. } => {
                    if keypad {
                        let user = by.strip_suffix(" (keypad)");
                        assert!(
                            user.is_some_and(|u| ALLOWED.contains(&u)),
                            "seed {seed}: the keypad opened the door for {by}"
                        );
                        keypad_openings += 1;
                    } else {
                        assert_eq!(
                            Some(&by),
                            opener.as_ref(),
                            "seed {seed}: the door opened for {by} without being asked by someone allowed"
                        );
                    }
                    assert_ne!(by, STRANGER, "seed {seed}: a stranger opened the door");
                }
                Output::Post { text, .. } => {
                    assert!(
                        asker.is_some()
                            || opener.is_some()
                            || (keypad && text.ends_with(" (keypad)")),
                        "seed {seed}: posted {text:?} in answer to no allowed user"
                    );
                }
                _ => {}
            }
        }
        if let Some(deadline) = core.poll_timeout() {
            assert!(
                deadline >= now - Duration::from_secs(3600),
                "seed {seed}: a deadline far in the past"
            );
        }
    }
    // Time passes: whatever was going on ends by itself.
    for _ in 0..4 {
        now += Duration::from_secs(1000);
        core.handle_timeout(now);
        while core.poll_output().is_some() {}
    }
    assert!(core.is_idle(), "seed {seed}: not idle after an hour");
    assert_eq!(
        core.poll_timeout(),
        None,
        "seed {seed}: a timer outlived the call"
    );
    keypad_openings
}

#[test]
fn random_inputs_never_panic_and_always_return_to_idle() {
    let cases: u64 = std::env::var("INTERCOM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let first: u64 = std::env::var("INTERCOM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED);
    let mut keypad_openings = 0;
    for seed in first..first + cases {
        keypad_openings += run_case(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    println!("{cases} cases, {keypad_openings} keypad openings");
    // A keypad opening needs an allow-listed peer, an answered call and the whole code in
    // order: about ten in the default 100 000 cases (none in the 5 000 the Pi build runs under
    // qemu). `virtual_door_open.rs` has the focused property that opens hundreds of times.
    assert!(
        cases < 100_000 || keypad_openings > 0,
        "the cases never reach a keypad opening: the keypad rule goes untested"
    );
}
