//! The sans-IO call core: the call state machine and the door's policy.
//!
//! Everything here is a pure function of its inputs. The driver loop feeds it [`Input`]s together
//! with the current [`Instant`], asks it for the next deadline with [`Core::poll_timeout`], calls
//! [`Core::handle_timeout`] when that deadline passes, and drains [`Output`]s with
//! [`Core::poll_output`]. The core never reads the clock, never sleeps, never spawns and never
//! does I/O, and it imports no runtime, Matrix, WebRTC or device crate (a test enforces this):
//! that is what lets every rule below be tested on virtual time, in microseconds.
//!
//! Peer behaviour — a hangup, a reject, a timeout, an ICE failure, glare — is an [`Output`]
//! (ultimately [`Output::CallEnded`]), never an error: nothing a peer sends can make the core fail.

mod events;
mod policy;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use events::{
    CallEvent, CallEventBody, Candidate, HangupReason, ReceivedEvent, SdpKind, SessionDescription,
    StreamPurpose, VERSION,
};
pub use policy::{Incoming, Policy, PressDuringCall};
use timers::{Timer, Timers};

/// An opaque call id (`call_id` of the VoIP events).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub String);

/// An opaque room id. Never parsed: room version 12 ids have no server part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomId(pub String);

/// A Matrix user id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// A `party_id`: for the door, its device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartyId(pub String);

/// Who the door is on Matrix.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: UserId,
    pub party: PartyId,
}

/// What happens to the core. Each is handed in with the `now` it happened at.
#[derive(Debug, Clone)]
pub enum Input {
    /// The door's button was pressed (already debounced by the GPIO adapter's hardware filter;
    /// the core debounces again in time so that a mashed button is one press).
    ButtonPressed,
    /// One whole sync batch of call events, in timeline order. The core decides what rings only
    /// after it has seen the whole batch (an invite and its hangup in one batch never ring).
    SyncBatch(Vec<ReceivedEvent>),
    /// The WebRTC side of a call produced something.
    Rtc { call: CallId, event: RtcEvent },
    /// A device the call needs failed (camera, microphone, speaker).
    MediaFailed { what: String },
    /// A user left a room (membership changed away from `join`).
    MemberLeft { room: RoomId, user: UserId },
    /// The daemon is shutting down: hang up whatever is up.
    Shutdown,
}

/// What the WebRTC adapter reports.
#[derive(Debug, Clone)]
pub enum RtcEvent {
    /// A local offer or answer, ready to send.
    LocalDescription(SessionDescription),
    /// Local ICE candidates as they are gathered.
    LocalCandidates(Vec<Candidate>),
    /// Local gathering finished.
    GatheringComplete,
    /// The peer connection's state changed.
    Connection(ConnectionState),
    /// A command failed (bad remote SDP, no codec in common, ...).
    Failed { reason: String },
}

/// The peer connection's aggregate state, as the core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
}

/// What the core asks the world to do. Drained with [`Core::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a call event into a room.
    Send { room: RoomId, event: CallEvent },
    /// A command for the WebRTC side of a call.
    Rtc { call: CallId, command: RtcCommand },
    /// A command for the door's devices.
    Device(DeviceCommand),
    /// A one-line status for systemd (`STATUS=`) and the log.
    Status(String),
    /// A call is over.
    CallEnded { call: CallId, reason: EndReason },
}

/// Commands for the WebRTC adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcCommand {
    /// Create the peer connection with the door's tracks and make an offer.
    CreateOffer { video: bool },
    /// Create the peer connection, apply the remote offer and make an answer.
    CreateAnswer {
        offer: SessionDescription,
        video: bool,
    },
    /// Apply a remote description (an answer, or a renegotiation offer).
    SetRemoteDescription(SessionDescription),
    /// Add remote candidates (only ever after the remote description).
    AddRemoteCandidates(Vec<Candidate>),
    /// Tear the peer connection down.
    Close,
}

/// Commands for the door's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Start (warm up) the camera and microphone.
    StartMedia,
    StopMedia,
    /// The ringtone on the door's speaker (incoming call, ring mode).
    Ringtone(bool),
    /// The ringback tone while the door calls out.
    Ringback(bool),
}

/// Why a call ended, from the door's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// One side hung up; `remote` tells which.
    Hangup { reason: HangupReason, remote: bool },
    /// The callee rejected the call.
    Rejected,
    /// Another of the callee's devices answered (or another caller's answer was selected).
    AnsweredElsewhere,
    /// Nobody answered within the ring timeout.
    NoAnswer,
    /// A caller outside the allow-list, or the reject policy.
    Refused,
    /// Lost the glare race to the peer's invite.
    Replaced,
}

/// The core of the door: every call it is in and every rule it follows.
pub struct Core {
    policy: Policy,
    identity: Identity,
    state: State,
    timers: Timers,
    outputs: VecDeque<Output>,
    last_press: Option<Instant>,
    next_call: u64,
    call_seed: String,
}

#[derive(Debug)]
enum State {
    Idle,
    /// The door is calling out: preparing the offer, then ringing every configured room.
    Outgoing(Outgoing),
}

#[derive(Debug)]
struct Outgoing {
    call: CallId,
    offer: Option<SessionDescription>,
}

/// How long presses are merged into one: a visitor mashing the button places one call.
const PRESS_DEBOUNCE: Duration = Duration::from_millis(1500);

impl Core {
    /// A core for `identity`, following `policy`. `call_seed` makes call ids unique across
    /// restarts (the driver passes something random); the core itself has no entropy.
    pub fn new(policy: Policy, identity: Identity, call_seed: impl Into<String>) -> Core {
        Core {
            policy,
            identity,
            state: State::Idle,
            timers: Timers::default(),
            outputs: VecDeque::new(),
            last_press: None,
            next_call: 0,
            call_seed: call_seed.into(),
        }
    }

    /// Hands an input to the core.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::ButtonPressed => self.on_press(now),
            Input::Rtc { call, event } => self.on_rtc(now, call, event),
            Input::Shutdown => self.end_current(now, HangupReason::UserHangup, false),
            Input::SyncBatch(_) | Input::MediaFailed { .. } | Input::MemberLeft { .. } => {
                // Incoming calls and peer events come with the Matrix-calls work; until then the
                // door only places calls, and events for calls it does not know are ignored.
            }
        }
    }

    /// The earliest instant at which [`Core::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::RingTimeout => {
                    if let State::Outgoing(o) = &self.state {
                        let call = o.call.clone();
                        self.send_hangup_to_rooms(&call, HangupReason::InviteTimeout);
                        self.finish(call, EndReason::NoAnswer);
                    }
                }
            }
        }
    }

    /// The next thing for the world to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// True when no call is in any stage.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    fn on_press(&mut self, now: Instant) {
        let merged = self
            .last_press
            .is_some_and(|t| now.saturating_duration_since(t) < PRESS_DEBOUNCE);
        self.last_press = Some(now);
        if merged {
            return;
        }
        match &self.state {
            State::Idle => self.start_outgoing(now),
            // Presses while ringing out are ignored: the visitor is already calling.
            State::Outgoing(_) => {}
        }
    }

    fn start_outgoing(&mut self, now: Instant) {
        self.next_call += 1;
        let call = CallId(format!("{}{}", self.call_seed, self.next_call));
        self.outputs
            .push_back(Output::Device(DeviceCommand::StartMedia));
        self.outputs.push_back(Output::Rtc {
            call: call.clone(),
            command: RtcCommand::CreateOffer {
                video: self.policy.video,
            },
        });
        self.outputs
            .push_back(Output::Device(DeviceCommand::Ringback(true)));
        self.outputs.push_back(Output::Status(format!(
            "Calling {} room(s)",
            self.policy.rooms.len()
        )));
        self.timers
            .set(Timer::RingTimeout, now + self.policy.ring_timeout);
        self.state = State::Outgoing(Outgoing { call, offer: None });
    }

    fn on_rtc(&mut self, _now: Instant, call: CallId, event: RtcEvent) {
        let State::Outgoing(o) = &mut self.state else {
            return;
        };
        if o.call != call {
            return;
        }
        match event {
            RtcEvent::LocalDescription(sdp) if sdp.kind == SdpKind::Offer && o.offer.is_none() => {
                o.offer = Some(sdp.clone());
                let invitee = None;
                for room in self.policy.rooms.clone() {
                    let event = CallEvent {
                        call_id: call.clone(),
                        party_id: self.identity.party.clone(),
                        body: CallEventBody::Invite {
                            offer: sdp.clone(),
                            lifetime: self.policy.invite_lifetime(),
                            invitee: invitee.clone(),
                        },
                    };
                    self.outputs.push_back(Output::Send { room, event });
                }
            }
            RtcEvent::Failed { .. } => {
                self.send_hangup_to_rooms(&call, HangupReason::UnknownError);
                self.finish(
                    call,
                    EndReason::Hangup {
                        reason: HangupReason::UnknownError,
                        remote: false,
                    },
                );
            }
            _ => {}
        }
    }

    fn end_current(&mut self, _now: Instant, reason: HangupReason, remote: bool) {
        if let State::Outgoing(o) = &self.state {
            let call = o.call.clone();
            self.send_hangup_to_rooms(&call, reason.clone());
            self.finish(call, EndReason::Hangup { reason, remote });
        }
    }

    fn send_hangup_to_rooms(&mut self, call: &CallId, reason: HangupReason) {
        let sent_invite = matches!(&self.state, State::Outgoing(o) if o.offer.is_some());
        if !sent_invite {
            return;
        }
        for room in self.policy.rooms.clone() {
            self.outputs.push_back(Output::Send {
                room,
                event: CallEvent {
                    call_id: call.clone(),
                    party_id: self.identity.party.clone(),
                    body: CallEventBody::Hangup {
                        reason: reason.clone(),
                    },
                },
            });
        }
    }

    fn finish(&mut self, call: CallId, reason: EndReason) {
        self.outputs.push_back(Output::Rtc {
            call: call.clone(),
            command: RtcCommand::Close,
        });
        self.outputs
            .push_back(Output::Device(DeviceCommand::Ringback(false)));
        self.outputs
            .push_back(Output::Device(DeviceCommand::StopMedia));
        self.outputs.push_back(Output::CallEnded { call, reason });
        self.outputs.push_back(Output::Status("Idle".to_owned()));
        self.timers.clear();
        self.state = State::Idle;
    }
}
