//! The `m.call.*` events on the wire, translated to and from the core's [`CallEvent`]s.
//!
//! Both directions go through ruma's VoIP content types, so that what the door sends is what
//! ruma (and therefore the spec, v1) says, and what it accepts is what ruma can parse. Around
//! ruma, the rules of the spec and of real peers that ruma does not apply itself:
//!
//! - every version is read as `"1"`: a peer speaking a newer minor version is still understood,
//!   and a version 0 peer's events (no `party_id`) get the sender's user id as their party id;
//! - a missing hangup `reason` is `user_hangup`;
//! - a candidate with an empty `candidate` string is kept: it is the peer's end of candidates;
//! - an event larger than a Matrix event can be (64 KiB), an `sdp` that is missing or empty, a
//!   `call_id` that is empty, or anything ruma refuses, is an error naming the event type, the
//!   sender and what is wrong. Never a panic: a peer's event is never trusted.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use matrix_sdk::ruma::events::call::answer::CallAnswerEventContent;
use matrix_sdk::ruma::events::call::candidates::{
    CallCandidatesEventContent, Candidate as WireCandidate,
};
use matrix_sdk::ruma::events::call::hangup::{CallHangupEventContent, Reason};
use matrix_sdk::ruma::events::call::invite::CallInviteEventContent;
use matrix_sdk::ruma::events::call::negotiate::CallNegotiateEventContent;
use matrix_sdk::ruma::events::call::reject::CallRejectEventContent;
use matrix_sdk::ruma::events::call::sdp_stream_metadata_changed::CallSdpStreamMetadataChangedEventContent;
use matrix_sdk::ruma::events::call::select_answer::CallSelectAnswerEventContent;
use matrix_sdk::ruma::events::call::{
    SessionDescription as WireDescription, StreamMetadata, StreamPurpose as WirePurpose,
};
use matrix_sdk::ruma::{OwnedUserId, OwnedVoipId, UInt, VoipVersionId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::call::{
    CallEvent, CallEventBody, CallId, Candidate, HangupReason, PartyId, ReceivedEvent, RoomId,
    SdpKind, SessionDescription, StreamPurpose, UserId, VERSION,
};

/// The largest event the spec allows (the whole PDU); a call event's content beyond it is refused
/// before it is parsed.
pub const MAX_EVENT_BYTES: usize = 65_536;

/// The event types this module reads: the spec's, and the one unstable alias ruma knows.
const CALL_EVENT_TYPES: &[&str] = &[
    "m.call.invite",
    "m.call.answer",
    "m.call.candidates",
    "m.call.select_answer",
    "m.call.reject",
    "m.call.negotiate",
    "m.call.hangup",
    "m.call.sdp_stream_metadata_changed",
    "org.matrix.call.sdp_stream_metadata_changed",
];

/// True for the event types [`from_wire`] translates.
pub fn is_call_event_type(event_type: &str) -> bool {
    CALL_EVENT_TYPES.contains(&event_type)
}

/// The event type and content to send for `event`: version `"1"` and the door's `party_id`
/// always, `invitee` only when there is one, lifetimes in milliseconds.
pub fn to_wire(event: &CallEvent) -> (&'static str, Value) {
    let call_id = voip_id(&event.call_id.0);
    let party_id = voip_id(&event.party_id.0);
    let content = match &event.body {
        CallEventBody::Invite {
            offer,
            lifetime,
            invitee,
        } => {
            let mut c = CallInviteEventContent::version_1(
                call_id,
                party_id,
                millis(*lifetime),
                wire_sdp(offer),
            );
            c.sdp_stream_metadata = wire_streams(&offer.streams);
            // ruma's `invitee` is a parsed user id, the core's an opaque one: one that does not
            // parse is still written, as given, rather than turning the invite into one for all.
            let unparsed =
                invitee
                    .as_ref()
                    .and_then(|u| match OwnedUserId::try_from(u.0.as_str()) {
                        Ok(id) => {
                            c.invitee = Some(id);
                            None
                        }
                        Err(_) => Some(u.0.clone()),
                    });
            let mut json = to_json(&c);
            if let Some(invitee) = unparsed {
                json["invitee"] = Value::String(invitee);
            }
            json
        }
        CallEventBody::Answer { answer } => {
            let mut c = CallAnswerEventContent::version_1(wire_sdp(answer), call_id, party_id);
            c.sdp_stream_metadata = wire_streams(&answer.streams);
            to_json(&c)
        }
        CallEventBody::Candidates { candidates } => {
            let candidates = candidates.iter().map(wire_candidate).collect();
            to_json(&CallCandidatesEventContent::version_1(
                call_id, party_id, candidates,
            ))
        }
        CallEventBody::SelectAnswer { selected_party_id } => {
            to_json(&CallSelectAnswerEventContent::version_1(
                call_id,
                party_id,
                voip_id(&selected_party_id.0),
            ))
        }
        CallEventBody::Reject => to_json(&CallRejectEventContent::version_1(call_id, party_id)),
        CallEventBody::Negotiate {
            description,
            lifetime,
        } => {
            let mut c = CallNegotiateEventContent::version_1(
                call_id,
                party_id,
                millis(*lifetime),
                wire_sdp(description),
            );
            c.sdp_stream_metadata = wire_streams(&description.streams);
            to_json(&c)
        }
        CallEventBody::Hangup { reason } => to_json(&CallHangupEventContent::version_1(
            call_id,
            party_id,
            Reason::from(reason.as_str()),
        )),
        CallEventBody::SdpStreamMetadataChanged { streams } => {
            to_json(&CallSdpStreamMetadataChangedEventContent::new(
                call_id,
                party_id,
                VoipVersionId::V1,
                wire_streams(streams),
            ))
        }
    };
    (event.body.event_type(), content)
}

/// Reads one timeline event (the whole event: `type`, `sender`, `content`, `unsigned.age`) that
/// arrived in `room`. `Ok(None)` for anything that is not a call event (including an
/// `m.room.encrypted` event that could not be decrypted); `Err` naming the event type, the sender
/// and the problem for a call event that cannot be understood.
pub fn from_wire(
    room: &RoomId,
    raw: &Value,
    encrypted: bool,
) -> Result<Option<ReceivedEvent>, String> {
    let Some(event_type) = raw.get("type").and_then(Value::as_str) else {
        return Ok(None);
    };
    if !is_call_event_type(event_type) {
        return Ok(None);
    }
    let Some(sender) = raw.get("sender").and_then(Value::as_str) else {
        return Err(format!("{event_type} without a sender"));
    };
    let fail = |what: String| format!("{event_type} from {sender}: {}", clip(&what));
    let content = match raw.get("content") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(fail("content is not an object".into())),
        None => return Err(fail("no content".into())),
    };
    if exceeds(raw, MAX_EVENT_BYTES) {
        return Err(fail(format!(
            "larger than a Matrix event can be ({MAX_EVENT_BYTES} bytes)"
        )));
    }
    let content = normalise(content.clone(), sender);
    let event = parse_body(event_type, content).map_err(fail)?;
    if event.call_id.0.is_empty() {
        return Err(fail("empty call_id".into()));
    }
    let age = raw
        .get("unsigned")
        .and_then(|u| u.get("age"))
        .and_then(Value::as_i64)
        .map(|ms| Duration::from_millis(ms.max(0).unsigned_abs()));
    Ok(Some(ReceivedEvent {
        room: room.clone(),
        sender: UserId(sender.to_owned()),
        age,
        encrypted,
        members: None,
        event,
    }))
}

/// Reads every version as "1" and gives version 0 events (no `party_id`) the sender's user id as
/// their party id. A `null` reason is an absent one.
fn normalise(mut content: serde_json::Map<String, Value>, sender: &str) -> Value {
    content.insert("version".into(), Value::String(VERSION.into()));
    if content.get("party_id").is_none_or(Value::is_null) {
        content.insert("party_id".into(), Value::String(sender.into()));
    }
    if content.get("reason").is_some_and(Value::is_null) {
        content.remove("reason");
    }
    Value::Object(content)
}

fn parse_body(event_type: &str, content: Value) -> Result<CallEvent, String> {
    let (call_id, party_id, body) = match event_type {
        "m.call.invite" => {
            let c: CallInviteEventContent = parse(content)?;
            let offer = core_sdp(SdpKind::Offer, c.offer, &c.sdp_stream_metadata, "offer")?;
            let body = CallEventBody::Invite {
                offer,
                lifetime: Duration::from_millis(c.lifetime.into()),
                invitee: c.invitee.map(|u| UserId(u.to_string())),
            };
            (c.call_id, c.party_id, body)
        }
        "m.call.answer" => {
            let c: CallAnswerEventContent = parse(content)?;
            let answer = core_sdp(SdpKind::Answer, c.answer, &c.sdp_stream_metadata, "answer")?;
            (c.call_id, c.party_id, CallEventBody::Answer { answer })
        }
        "m.call.candidates" => {
            let c: CallCandidatesEventContent = parse(content)?;
            let candidates = c
                .candidates
                .into_iter()
                .map(core_candidate)
                .collect::<Result<_, _>>()?;
            (
                c.call_id,
                c.party_id,
                CallEventBody::Candidates { candidates },
            )
        }
        "m.call.select_answer" => {
            let c: CallSelectAnswerEventContent = parse(content)?;
            let body = CallEventBody::SelectAnswer {
                selected_party_id: PartyId(c.selected_party_id.to_string()),
            };
            (c.call_id, Some(c.party_id), body)
        }
        "m.call.reject" => {
            let c: CallRejectEventContent = parse(content)?;
            (c.call_id, Some(c.party_id), CallEventBody::Reject)
        }
        "m.call.negotiate" => {
            let c: CallNegotiateEventContent = parse(content)?;
            let kind = match c.description.session_type.as_str() {
                "offer" => SdpKind::Offer,
                "answer" => SdpKind::Answer,
                other => {
                    return Err(format!(
                        "description type {other:?} is neither \"offer\" nor \"answer\""
                    ))
                }
            };
            let description = core_sdp(kind, c.description, &c.sdp_stream_metadata, "description")?;
            let body = CallEventBody::Negotiate {
                description,
                lifetime: Duration::from_millis(c.lifetime.into()),
            };
            (c.call_id, Some(c.party_id), body)
        }
        "m.call.hangup" => {
            let c: CallHangupEventContent = parse(content)?;
            let body = CallEventBody::Hangup {
                reason: HangupReason::from_wire(Some(c.reason.as_str())),
            };
            (c.call_id, c.party_id, body)
        }
        _ => {
            // m.call.sdp_stream_metadata_changed and its unstable alias.
            let c: CallSdpStreamMetadataChangedEventContent = parse(content)?;
            let body = CallEventBody::SdpStreamMetadataChanged {
                streams: core_streams(&c.sdp_stream_metadata),
            };
            (c.call_id, Some(c.party_id), body)
        }
    };
    // `normalise` put a party id in; ruma keeps it optional for the types version 0 had.
    let party_id = party_id.ok_or("no party_id")?;
    Ok(CallEvent {
        call_id: CallId(call_id.to_string()),
        party_id: PartyId(party_id.to_string()),
        body,
    })
}

/// Parses `content` with ruma, naming the field at fault (`offer.sdp: invalid type: ...`).
fn parse<T: DeserializeOwned>(content: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(content).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

fn core_sdp(
    kind: SdpKind,
    description: WireDescription,
    streams: &BTreeMap<String, StreamMetadata>,
    field: &str,
) -> Result<SessionDescription, String> {
    // ruma reads a missing `sdp` as an empty one; neither can start a call.
    if description.sdp.is_empty() {
        return Err(format!("{field} has no sdp"));
    }
    Ok(SessionDescription {
        kind,
        sdp: description.sdp,
        streams: core_streams(streams),
    })
}

/// The streams whose purpose the core knows; a custom purpose is left out.
fn core_streams(streams: &BTreeMap<String, StreamMetadata>) -> Vec<(String, StreamPurpose)> {
    streams
        .iter()
        .filter_map(|(id, m)| {
            let purpose = match m.purpose {
                WirePurpose::UserMedia => StreamPurpose::UserMedia,
                WirePurpose::ScreenShare => StreamPurpose::ScreenShare,
                _ => return None,
            };
            Some((id.clone(), purpose))
        })
        .collect()
}

fn core_candidate(c: WireCandidate) -> Result<Candidate, String> {
    let sdp_m_line_index = match c.sdp_m_line_index {
        Some(i) => Some(
            u16::try_from(u64::from(i))
                .map_err(|_| format!("sdpMLineIndex {i} is out of range"))?,
        ),
        None => None,
    };
    Ok(Candidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_m_line_index,
    })
}

/// A message for the log, cut short: a peer's 60 KiB string has no business in it.
fn clip(message: &str) -> String {
    const MAX: usize = 300;
    match message.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message.to_owned(),
    }
}

fn voip_id(s: &str) -> OwnedVoipId {
    OwnedVoipId::from(s)
}

fn millis(d: Duration) -> UInt {
    u64::try_from(d.as_millis())
        .ok()
        .and_then(UInt::new)
        .unwrap_or(UInt::MAX)
}

fn wire_sdp(d: &SessionDescription) -> WireDescription {
    let kind = match d.kind {
        SdpKind::Offer => "offer",
        SdpKind::Answer => "answer",
    };
    WireDescription::new(kind.to_owned(), d.sdp.clone())
}

fn wire_streams(streams: &[(String, StreamPurpose)]) -> BTreeMap<String, StreamMetadata> {
    streams
        .iter()
        .map(|(id, purpose)| {
            let purpose = match purpose {
                StreamPurpose::UserMedia => WirePurpose::UserMedia,
                StreamPurpose::ScreenShare => WirePurpose::ScreenShare,
            };
            (id.clone(), StreamMetadata::new(purpose))
        })
        .collect()
}

fn wire_candidate(c: &Candidate) -> WireCandidate {
    let mut w = WireCandidate::new(c.candidate.clone());
    w.sdp_mid = c.sdp_mid.clone();
    w.sdp_m_line_index = c.sdp_m_line_index.map(UInt::from);
    w
}

fn to_json(content: &impl Serialize) -> Value {
    // Plain structs with string keys: serialising them cannot fail.
    serde_json::to_value(content).expect("call event content serialises")
}

/// True when `value`, written as JSON, would take more than `limit` bytes. Stops writing as soon
/// as the limit is passed, so a 10 MB event costs no more than a 64 KiB one.
fn exceeds(value: &Value, limit: usize) -> bool {
    struct Budget(usize);
    impl io::Write for Budget {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or_else(|| io::Error::other("over budget"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget(limit), value).is_err()
}

#[cfg(test)]
mod tests;
