//! Sending: one ordered queue per room, each event retried with backoff.

use super::*;

/// What the sending queue sends.
pub(super) enum Queued {
    Call(CallEvent),
    Text(String),
}

/// Hands each queued event to its room's sender, starting one per room on first use, so that a
/// room whose sends are failing does not hold up the others.
pub(super) async fn run_queues(
    client: Client,
    mut queue: mpsc::UnboundedReceiver<(RoomId, Queued)>,
    synced: watch::Receiver<bool>,
    aliases: Aliases,
) {
    let mut rooms = HashMap::new();
    while let Some((room, event)) = queue.recv().await {
        let (sender, _) = rooms.entry(room.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(send_room(
                client.clone(),
                aliases.clone(),
                room,
                rx,
                synced.clone(),
            ));
            (tx, task)
        });
        // A room sender ends only when its channel closes, which only this loop does.
        let _: Result<_, _> = sender.send(event);
    }
    // The queue is closed: let each room send what it still has.
    for (_, (sender, task)) in rooms {
        drop(sender);
        let _: Result<_, _> = task.await;
    }
}

/// Sends one room's events, in order.
pub(super) async fn send_room(
    client: Client,
    aliases: Aliases,
    room: RoomId,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    mut synced: watch::Receiver<bool>,
) {
    while let Some(outgoing) = queue.recv().await {
        let (event_type, content, call_id) = match &outgoing {
            Queued::Call(event) => {
                let (t, c) = wire::to_wire(event);
                (t, c, event.call_id.0.as_str())
            }
            Queued::Text(text) => (
                "m.room.message",
                serde_json::json!({"msgtype": "m.notice", "body": text}),
                "",
            ),
        };
        // One transaction id for every try: the homeserver keeps a retried event only once.
        let txn = TransactionId::new();
        let mut backoff = MIN_BACKOFF;
        for attempt in 1..=SEND_ATTEMPTS {
            let target = Target {
                client: &client,
                aliases: &aliases,
            };
            match send_one(target, &room, event_type, &content, &txn, &mut synced).await {
                Ok(()) => {
                    log::debug!(call_id, room = room.0.as_str(); "sent {event_type} to {}", room.0);
                    break;
                }
                Err(Failure::Permanent(e)) => {
                    log::error!(call_id, room = room.0.as_str(); "cannot send {event_type} to {}: {e}", room.0);
                    break;
                }
                Err(Failure::Transient(e)) if attempt == SEND_ATTEMPTS => {
                    log::error!(
                        call_id, room = room.0.as_str();
                        "cannot send {event_type} to {} after {SEND_ATTEMPTS} tries: {e}",
                        room.0
                    );
                }
                Err(Failure::Transient(e)) => {
                    log::warn!(
                        call_id, room = room.0.as_str();
                        "sending {event_type} to {} failed, retrying in {}s: {e}",
                        room.0,
                        backoff.as_secs()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

pub(super) enum Failure {
    /// Trying again will not help (the door is not in the room).
    Permanent(String),
    Transient(String),
}

/// Where events go: the client, and how it finds the rooms the core names.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) client: &'a Client,
    pub(super) aliases: &'a Aliases,
}

pub(super) async fn send_one(
    target: Target<'_>,
    room: &RoomId,
    event_type: &str,
    content: &Value,
    txn: &TransactionId,
    synced: &mut watch::Receiver<bool>,
) -> Result<(), Failure> {
    let joined = joined_room(target, room, synced).await?;
    joined
        .send_raw(event_type, content.clone())
        .with_transaction_id(txn)
        .await
        .map(drop)
        .map_err(|e| Failure::Transient(e.to_string()))
}

/// The room, once the door is joined to it.
pub(super) async fn joined_room(
    target: Target<'_>,
    room: &RoomId,
    synced: &mut watch::Receiver<bool>,
) -> Result<matrix_sdk::Room, Failure> {
    let client = target.client;
    let room_id = target.aliases.room_id(client, room).await?;
    if client.get_room(&room_id).is_none() && !*synced.borrow() {
        // A fresh store learns the door's rooms from the first sync.
        let _ = tokio::time::timeout(FIRST_SYNC_WAIT, synced.wait_for(|s| *s)).await;
    }
    let Some(joined) = client.get_room(&room_id) else {
        return if *synced.borrow() {
            Err(Failure::Permanent("the door is not in this room".into()))
        } else {
            Err(Failure::Transient("no sync with the homeserver yet".into()))
        };
    };
    if joined.state() == RoomState::Invited {
        // The door may be joining it right now (an allow-listed user's invite): try again.
        return Err(Failure::Transient(
            "the door is still joining this room".into(),
        ));
    }
    if joined.state() != RoomState::Joined {
        return Err(Failure::Permanent(format!(
            "the door is not joined to this room ({:?})",
            joined.state()
        )));
    }
    Ok(joined)
}
