//! The virtual-time harness: the call core, the door panel and the station that holds both,
//! driven with a `now` the test moves
//! (no clock is read after the start, no I/O), the events a peer sends, and filters over what
//! comes out. Loaded on its own (`#[path]`) by the `virtual_*` tests and the core's fuzzer, which
//! need none of the network harness.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use intercom::call::*;
use intercom::panel::{Panel, PanelConfig, PanelOutput};

pub const DOOR: &str = "@door:hs";
pub const DOOR_PARTY: &str = "DOORDEVICE";
pub const ALICE: &str = "@alice:hs";
pub const BOB: &str = "@bob:hs";
pub const MALLORY: &str = "@mallory:hs";

/// The door's policy in the tests: it rings `!a` and `!b`, alice and bob are allowed, a ring
/// lasts 30 s and a call at most 5 min, with video; a press during a call hangs up.
pub fn policy(incoming: Incoming) -> Policy {
    Policy {
        rooms: vec![RoomId("!a".into()), RoomId("!b".into())],
        allow: vec![UserId(ALICE.into()), UserId(BOB.into())],
        incoming,
        ring_timeout: Duration::from_secs(30),
        max_length: Duration::from_secs(300),
        video: true,
        press_during_call: PressDuringCall::Hangup,
    }
}

/// The door's user and device.
pub fn identity() -> Identity {
    Identity {
        user: UserId(DOOR.into()),
        party: PartyId(DOOR_PARTY.into()),
    }
}

/// The station (the core, the panel, the status) and a virtual clock.
pub struct StationClock {
    pub station: intercom::station::Station,
    pub now: Instant,
}

impl StationClock {
    pub fn new(config: intercom::station::StationConfig) -> StationClock {
        let now = Instant::now();
        StationClock {
            station: intercom::station::Station::new(config, now),
            now,
        }
    }

    /// Everything the station has to say.
    pub fn drain(&mut self) -> Vec<intercom::station::Output> {
        std::iter::from_fn(|| self.station.poll_output()).collect()
    }

    /// `input` now; what the station did.
    pub fn input(&mut self, input: intercom::station::Input) -> Vec<intercom::station::Output> {
        self.station.handle_input(self.now, input);
        self.drain()
    }

    /// Moves the clock on by `d`, firing every deadline on the way, as the driver does.
    pub fn advance(&mut self, d: Duration) -> Vec<intercom::station::Output> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.station.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.station.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }
}

/// The call core and a virtual clock.
pub struct CoreClock {
    pub core: Core,
    pub now: Instant,
}

impl CoreClock {
    /// A core with [`policy`]`(incoming)`.
    pub fn new(incoming: Incoming) -> CoreClock {
        CoreClock::with(policy(incoming))
    }

    pub fn with(policy: Policy) -> CoreClock {
        CoreClock {
            core: Core::new(policy, identity(), "c"),
            now: Instant::now(),
        }
    }

    /// Everything the core has to say.
    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    /// `input` now; what the core did.
    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.core.handle_input(self.now, input);
        self.drain()
    }

    pub fn press(&mut self) -> Vec<Output> {
        self.input(Input::ButtonPressed)
    }

    pub fn batch(&mut self, events: Vec<ReceivedEvent>) -> Vec<Output> {
        self.input(Input::SyncBatch(events))
    }

    pub fn rtc(&mut self, call: &CallId, event: RtcEvent) -> Vec<Output> {
        self.input(Input::Rtc {
            call: call.clone(),
            event,
        })
    }

    /// A plain room message from `sender`, 40 ms old.
    pub fn say(&mut self, room: &str, sender: &str, body: &str) -> Vec<Output> {
        self.say_aged(room, sender, body, Duration::from_millis(40))
    }

    pub fn say_aged(&mut self, room: &str, sender: &str, body: &str, age: Duration) -> Vec<Output> {
        self.input(Input::Message(ReceivedMessage {
            room: RoomId(room.into()),
            sender: UserId(sender.into()),
            age: Some(age),
            body: body.into(),
            encrypted: false,
            room_encrypted: false,
        }))
    }

    /// Moves the clock and fires what is due.
    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.core.handle_timeout(self.now);
        self.drain()
    }

    /// Places a call from the door and lets the offer go out; returns the local call id and the
    /// call id used in each room.
    pub fn ring_out(&mut self) -> (CallId, Vec<(RoomId, CallId)>) {
        let out = self.press();
        let call = offer_call(&out);
        let out = self.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Offer)));
        let legs = sent(&out)
            .into_iter()
            .filter(|(_, e)| matches!(e.body, CallEventBody::Invite { .. }))
            .map(|(room, e)| (room, e.call_id))
            .collect();
        (call, legs)
    }

    /// An allow-listed caller's call (alice's, `100` in `!a`), auto-answered; returns its call id.
    pub fn answered_incoming(&mut self) -> CallId {
        let out = self.batch(vec![invite("!a", ALICE, "ALICEDEV", "100", None, 0)]);
        assert!(has_answer_command(&out), "{out:?}");
        let call = CallId("100".into());
        self.rtc(&call, RtcEvent::LocalDescription(sdp(SdpKind::Answer)));
        call
    }
}

// --- what a peer sends -----------------------------------------------------------------------

pub fn sdp(kind: SdpKind) -> SessionDescription {
    SessionDescription {
        kind,
        sdp: "v=0\r\n".into(),
        streams: vec![("stream0".into(), StreamPurpose::UserMedia)],
    }
}

/// A call event received 50 ms after it was sent, in a plain room.
pub fn event(
    room: &str,
    sender: &str,
    party: &str,
    call_id: &str,
    body: CallEventBody,
) -> ReceivedEvent {
    ReceivedEvent {
        room: RoomId(room.into()),
        sender: UserId(sender.into()),
        age: Some(Duration::from_millis(50)),
        encrypted: false,
        members: None,
        event: CallEvent {
            call_id: CallId(call_id.into()),
            party_id: PartyId(party.into()),
            body,
        },
    }
}

/// An invite with a lifetime of 60 s, `age_ms` old.
pub fn invite(
    room: &str,
    sender: &str,
    party: &str,
    call_id: &str,
    invitee: Option<&str>,
    age_ms: u64,
) -> ReceivedEvent {
    let mut e = event(
        room,
        sender,
        party,
        call_id,
        CallEventBody::Invite {
            offer: sdp(SdpKind::Offer),
            lifetime: Duration::from_secs(60),
            invitee: invitee.map(|u| UserId(u.into())),
        },
    );
    e.age = Some(Duration::from_millis(age_ms));
    e
}

pub fn answer(room: &str, sender: &str, party: &str, call_id: &CallId) -> ReceivedEvent {
    event(
        room,
        sender,
        party,
        &call_id.0,
        CallEventBody::Answer {
            answer: sdp(SdpKind::Answer),
        },
    )
}

pub fn hangup(
    room: &str,
    sender: &str,
    party: &str,
    call_id: &str,
    reason: HangupReason,
) -> ReceivedEvent {
    event(
        room,
        sender,
        party,
        call_id,
        CallEventBody::Hangup { reason },
    )
}

pub fn candidate(c: &str) -> Candidate {
    Candidate {
        candidate: c.into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    }
}

pub fn candidates(
    room: &str,
    sender: &str,
    party: &str,
    call_id: &str,
    list: &[&str],
) -> ReceivedEvent {
    event(
        room,
        sender,
        party,
        call_id,
        CallEventBody::Candidates {
            candidates: list.iter().map(|c| candidate(c)).collect(),
        },
    )
}

// --- what the core says ----------------------------------------------------------------------

/// The call a press placed (the one WebRTC is asked to offer for).
pub fn offer_call(out: &[Output]) -> CallId {
    out.iter()
        .find_map(|o| match o {
            Output::Rtc {
                call,
                command: RtcCommand::CreateOffer { .. },
            } => Some(call.clone()),
            _ => None,
        })
        .expect("a press asks WebRTC for an offer")
}

pub fn sent(out: &[Output]) -> Vec<(RoomId, CallEvent)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { room, event } => Some((room.clone(), event.clone())),
            _ => None,
        })
        .collect()
}

pub fn rtc_commands(out: &[Output]) -> Vec<RtcCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Rtc { command, .. } => Some(command.clone()),
            _ => None,
        })
        .collect()
}

pub fn has_answer_command(out: &[Output]) -> bool {
    rtc_commands(out)
        .iter()
        .any(|c| matches!(c, RtcCommand::CreateAnswer { .. }))
}

pub fn ended(out: &[Output]) -> Option<EndReason> {
    out.iter().find_map(|o| match o {
        Output::CallEnded { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// For whom the door opened.
pub fn opened(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::OpenDoor { by, .. } => Some(by.clone()),
            _ => None,
        })
        .collect()
}

/// (room, text) of each message posted.
pub fn posts(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Post { room, text } => Some((room.0.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

pub fn notices(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

// --- the panel -------------------------------------------------------------------------------

/// The door panel and a virtual clock.
pub struct PanelClock {
    pub panel: Panel,
    pub now: Instant,
}

impl PanelClock {
    pub fn new(config: PanelConfig) -> PanelClock {
        let now = Instant::now();
        PanelClock {
            panel: Panel::new(config, now),
            now,
        }
    }

    /// Moves the clock on by `d`, firing every deadline on the way, as the driver loop does.
    pub fn advance(&mut self, d: Duration) -> Vec<PanelOutput> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.panel.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.panel.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        self.panel.handle_timeout(end);
        out.extend(self.drain());
        out
    }

    pub fn edge(&mut self, down: bool) -> Vec<PanelOutput> {
        self.panel.button_edge(self.now, down);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<PanelOutput> {
        std::iter::from_fn(|| self.panel.poll_output()).collect()
    }
}
