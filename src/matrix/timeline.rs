//! One sync response as the station's inputs: the call events as one batch, text messages,
//! who left.

use super::*;

/// What the door syncs: everything, with room for a burst of call events (candidates come in
/// many events) in one response, where the homeserver's default would cut the timeline at 10.
pub(super) fn sync_filter() -> sync_events::v3::Filter {
    let mut filter = FilterDefinition::empty();
    filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
    filter.into()
}

/// What the driver needs of one sync response: one batch of every call event in every joined
/// room, then who left. Undecryptable and malformed events are logged and left out.
pub(super) fn translate(
    response: &SyncResponse,
    me: &str,
    rooms: &HashMap<String, RoomFacts>,
    aliases: &Aliases,
) -> Vec<MatrixEvent> {
    let mut batch = Vec::new();
    let mut messages = Vec::new();
    let mut left = Vec::new();
    let mut leave = |room: &RoomId, user: Option<UserId>| {
        if let Some(user) = user {
            let gone = MatrixEvent::MemberLeft {
                room: room.clone(),
                user,
            };
            // A departure can be both in the timeline and in the state.
            if !left.contains(&gone) {
                left.push(gone);
            }
        }
    };
    for (room_id, update) in &response.rooms.joined {
        let room = aliases.core_room(room_id.as_str());
        let facts = rooms.get(room_id.as_str());
        for event in &update.timeline.events {
            batch.extend(call_event(&room, event, me).map(|mut e| {
                e.members = facts.and_then(|f| f.members);
                e
            }));
            let message = text_message(&room, event, me).map(|(mut m, origin_server_ts)| {
                m.room_encrypted = facts.is_some_and(|f| f.encrypted);
                MatrixEvent::Message {
                    message: m,
                    origin_server_ts,
                }
            });
            messages.extend(message);
            leave(&room, departed(event.raw(), me));
        }
        let (matrix_sdk::sync::State::Before(state) | matrix_sdk::sync::State::After(state)) =
            &update.state;
        for event in state {
            leave(&room, departed(event.cast_ref(), me));
        }
    }
    let mut out = Vec::new();
    if !batch.is_empty() {
        out.push(MatrixEvent::Batch(batch));
    }
    out.extend(messages);
    out.extend(left);
    out
}

/// A joined room, as the core needs to know it.
pub(super) struct RoomFacts {
    pub(super) encrypted: bool,
    /// Joined members, the door included, when the store knows them.
    pub(super) members: Option<u64>,
}

/// A timeline event as a text message from someone else, with its `origin_server_ts`, when it
/// is one.
pub(super) fn text_message(
    room: &RoomId,
    event: &TimelineEvent,
    me: &str,
) -> Option<(ReceivedMessage, Option<u64>)> {
    let raw = event.raw();
    if raw.get_field::<String>("type").ok().flatten()? != "m.room.message" {
        return None;
    }
    let sender = raw.get_field::<String>("sender").ok().flatten()?;
    if sender == me {
        return None;
    }
    let content: Value = raw.get_field("content").ok().flatten()?;
    if content["msgtype"] != "m.text" {
        return None;
    }
    let body = content["body"].as_str()?.to_owned();
    let unsigned: Option<Value> = raw.get_field("unsigned").ok().flatten();
    let age = unsigned
        .as_ref()
        .and_then(|u| u["age"].as_i64())
        .map(|ms| Duration::from_millis(ms.max(0).unsigned_abs()));
    let ts = raw.get_field::<u64>("origin_server_ts").ok().flatten();
    let message = ReceivedMessage {
        room: room.clone(),
        sender: UserId(sender),
        age,
        body,
        encrypted: event.encryption_info().is_some(),
        room_encrypted: false,
    };
    Some((message, ts))
}

/// A timeline event as a call event, when it is one. The warnings name their `sender` and
/// `kind`, so that the log holds back a flood of them from one member.
pub(super) fn call_event(room: &RoomId, event: &TimelineEvent, me: &str) -> Option<ReceivedEvent> {
    let raw = event.raw();
    let event_type = raw.get_field::<String>("type").ok().flatten()?;
    let sender = raw.get_field::<String>("sender").ok().flatten();
    let sender = sender.as_deref().unwrap_or("an unknown sender");
    if let TimelineEventKind::UnableToDecrypt { utd_info, .. } = &event.kind {
        log::warn!(
            room = room.0.as_str(), sender = sender, kind = "undecryptable events";
            "cannot decrypt an event from {sender} in {}: skipped ({:?})",
            room.0,
            utd_info.reason
        );
        return None;
    }
    if !wire::is_call_event_type(&event_type) {
        return None;
    }
    let kind = format!("malformed {event_type} events");
    let value: Value = match serde_json::from_str(raw.json().get()) {
        Ok(v) => v,
        Err(e) => {
            log::warn!(room = room.0.as_str(), sender = sender, kind = kind.as_str();
                "dropping a {event_type} event from {sender} in {}: {e}", room.0);
            return None;
        }
    };
    // When it came, and how long after the homeserver had it: the time the sync took. The
    // door's own events coming back are no news.
    if sender != me {
        log::debug!(
            room = room.0.as_str();
            "received {event_type} from {sender} ({} ms after the homeserver had it)",
            value["unsigned"]["age"].as_i64().unwrap_or(-1)
        );
    }
    match wire::from_wire(room, &value, event.encryption_info().is_some()) {
        Ok(received) => received,
        Err(e) => {
            // `e` names the event type and the sender.
            log::warn!(room = room.0.as_str(), sender = sender, kind = kind.as_str();
                "dropping a call event in {}: {e}", room.0);
            None
        }
    }
}

/// The user an `m.room.member` event says is gone (left, kicked, banned), unless it is the door.
pub(super) fn departed(raw: &Raw<AnySyncTimelineEvent>, me: &str) -> Option<UserId> {
    if raw.get_field::<String>("type").ok().flatten()? != "m.room.member" {
        return None;
    }
    let user = raw.get_field::<String>("state_key").ok().flatten()?;
    let content: Value = raw.get_field("content").ok().flatten()?;
    let gone = matches!(content["membership"].as_str(), Some("leave" | "ban"));
    (gone && user != me).then_some(UserId(user))
}
