//! The sync loop: syncs until the driver has gone, reports what it sees as [`MatrixEvent`]s,
//! and skips a response matrix-sdk cannot read (see [`Unreadable`]).

use super::*;

pub(super) struct SyncLoop {
    pub(super) client: Client,
    pub(super) me: String,
    pub(super) synced: watch::Sender<bool>,
    pub(super) aliases: Aliases,
    pub(super) events: mpsc::Sender<MatrixEvent>,
}

impl SyncLoop {
    pub(super) async fn run(self) {
        // Without a stored sync token, the first response is the room's history.
        let mut catching_up = match self
            .client
            .state_store()
            .get_kv_data(StateStoreDataKey::SyncToken)
            .await
        {
            Ok(token) => token.is_none(),
            Err(e) => {
                log::warn!("cannot read the sync token from the store: {e}");
                true
            }
        };
        let mut online = None;
        let mut backoff = MIN_BACKOFF;
        let mut reported_unresolved = Vec::new();
        // Past a response that was skipped (see `Unreadable`): where the next sync starts.
        let mut resume: Option<String> = None;
        let mut warned = std::collections::HashSet::new();
        loop {
            // Long-poll only while online: the first sync, and the first after a failure, return
            // at once, so that sending can start and recovery is reported without delay.
            let timeout = if online == Some(true) {
                SYNC_TIMEOUT
            } else {
                Duration::ZERO
            };
            let mut settings = SyncSettings::default()
                .timeout(timeout)
                .filter(sync_filter());
            if let Some(token) = &resume {
                settings = settings.token(token.clone());
            }
            let result = tokio::select! {
                r = self.client.sync_once(settings) => r,
                () = self.events.closed() => return,
            };
            let result = match result {
                Err(e) if is_unreadable(&e) => {
                    let since = match &resume {
                        Some(token) => Some(token.clone()),
                        None => self.stored_token().await,
                    };
                    let unreadable = tokio::select! {
                        u = Unreadable::fetch(&self.client, since.as_deref()) => u,
                        () = self.events.closed() => return,
                    };
                    match unreadable {
                        Ok(Some(skipped)) => {
                            if warned.insert(skipped.parts.clone()) {
                                log::warn!(
                                    "skipped a sync response matrix-sdk cannot read ({e}; in {}), with what it carried ({}): syncing on from the next one",
                                    skipped.parts, skipped.carried
                                );
                            } else {
                                log::debug!(
                                    "skipped another unreadable sync response (in {})",
                                    skipped.parts
                                );
                            }
                            resume = Some(skipped.next_batch);
                            continue;
                        }
                        // It reads now: the failure was the transfer's. The next sync tries again.
                        Ok(None) => Err(e),
                        Err(why) => {
                            log::debug!("cannot look at the unreadable sync response: {why}");
                            Err(e)
                        }
                    }
                }
                other => other,
            };
            match result {
                Ok(response) => {
                    resume = None;
                    backoff = MIN_BACKOFF;
                    self.synced.send_replace(true);
                    if online != Some(true) {
                        if online == Some(false) {
                            log::info!("Matrix sync works again");
                        }
                        online = Some(true);
                        if !self.report(MatrixEvent::Online).await {
                            return;
                        }
                    }
                    // Before the events: they reach the core under the rooms' aliases.
                    let unresolved = self.resolve_aliases().await;
                    if unresolved != reported_unresolved {
                        reported_unresolved.clone_from(&unresolved);
                        if !self.report(MatrixEvent::Unresolved(unresolved)).await {
                            return;
                        }
                    }
                    if catching_up {
                        log::info!("first sync of this store: its history is not looked at");
                    } else {
                        let rooms = self.room_facts(&response).await;
                        for event in translate(&response, &self.me, &rooms, &self.aliases) {
                            if !self.report(event).await {
                                return;
                            }
                        }
                    }
                    catching_up = false;
                    crate::panics::test_panic("sync");
                    if !self.report_invites(&response).await {
                        return;
                    }
                    self.prepare_encryption().await;
                }
                Err(e) => {
                    let reason = describe_error(&e);
                    if online != Some(false) {
                        log::warn!(
                            "Matrix sync failed, retrying with backoff up to {}s: {reason}",
                            MAX_BACKOFF.as_secs()
                        );
                        online = Some(false);
                        if !self.report(MatrixEvent::Offline(reason)).await {
                            return;
                        }
                    } else {
                        log::debug!("Matrix sync failed again: {reason}");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.events.closed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// What the core needs to know of each room in `response`, as the store has it after the
    /// response was applied.
    pub(super) async fn room_facts(&self, response: &SyncResponse) -> HashMap<String, RoomFacts> {
        let mut facts = HashMap::new();
        for id in response.rooms.joined.keys() {
            let Some(room) = self.client.get_room(id) else {
                continue;
            };
            // Counted from the member events in the store, which the door's syncs (not lazy
            // loading members) bring whole: `joined_members_count()` reads the sync's room
            // summary, which Synapse sends only to clients that lazy-load: 0 for the door.
            let members = room
                .joined_user_ids()
                .await
                .ok()
                .map(|ids| ids.len() as u64)
                .filter(|&n| n > 0);
            facts.insert(
                id.to_string(),
                RoomFacts {
                    // Unknown counts as encrypted: a plaintext command is then refused rather
                    // than taken in a room that may be encrypted.
                    encrypted: !matches!(
                        room.encryption_state(),
                        matrix_sdk::EncryptionState::NotEncrypted
                    ),
                    members,
                },
            );
        }
        facts
    }

    /// The sync token the store holds (where `sync_once` starts by default).
    pub(super) async fn stored_token(&self) -> Option<String> {
        match self
            .client
            .state_store()
            .get_kv_data(StateStoreDataKey::SyncToken)
            .await
        {
            Ok(Some(StateStoreDataValue::SyncToken(token))) => Some(token),
            _ => None,
        }
    }

    /// Resolves the configured aliases not resolved yet; returns those that still fail, with
    /// why. Tried again after every sync until they resolve.
    pub(super) async fn resolve_aliases(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for alias in self.aliases.unresolved() {
            if let Err(why) = self.aliases.resolve(&self.client, &alias).await {
                failed.push((alias, why));
            }
        }
        failed
    }

    /// Hands an event to the driver; false once the driver has gone.
    pub(super) async fn report(&self, event: MatrixEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Loads the whole member list of each joined encrypted room that does not have it yet (after
    /// the first sync, and after the door joins one), so that the next sync starts by asking for
    /// the members' device keys. Otherwise matrix-sdk does both when the first event is sent
    /// into the room: the first ring would wait for two more requests to the homeserver.
    ///
    /// First, it asks for the encryption state of each room whose state matrix-sdk does not know:
    /// a sync never says that a room is not encrypted, and the core refuses a plaintext `!open`
    /// in a room that may be (a plain room's first `!open` after a start was refused).
    pub(super) async fn prepare_encryption(&self) {
        for room in self.client.joined_rooms() {
            if matches!(
                room.encryption_state(),
                matrix_sdk::EncryptionState::Unknown
            ) {
                let id = room.room_id().to_string();
                // Asked again after the next sync if this fails.
                if let Err(e) = room.request_encryption_state().await {
                    log::debug!(room = id.as_str(); "cannot ask whether {id} is encrypted: {e}");
                }
            }
            if room.are_members_synced() || !room.encryption_state().is_encrypted() {
                continue;
            }
            let id = room.room_id().to_string();
            match room.sync_members().await {
                Ok(()) => {
                    log::debug!(room = id.as_str(); "loaded the members of {id} for encryption")
                }
                Err(e) => log::warn!(room = id.as_str(); "cannot load the members of {id}: {e}"),
            }
        }
    }

    /// Reports the rooms the door was invited to in `response`, with who invited it; false once
    /// the driver has gone.
    pub(super) async fn report_invites(&self, response: &SyncResponse) -> bool {
        for (room_id, invited) in &response.rooms.invited {
            let inviter = invited.invite_state.events.iter().find_map(|e| {
                let e: Value = e.deserialize_as_unchecked().ok()?;
                let ours = e["type"] == "m.room.member"
                    && e["state_key"] == self.me.as_str()
                    && e["content"]["membership"] == "invite";
                ours.then(|| e["sender"].as_str().map(str::to_owned))?
            });
            let invited = MatrixEvent::Invited {
                room: RoomId(room_id.to_string()),
                inviter: inviter.map(UserId),
            };
            if !self.report(invited).await {
                return false;
            }
        }
        true
    }
}

/// Whether a sync failed because its response could not be read (it came, but matrix-sdk's
/// types do not take it), rather than because the homeserver could not be reached.
pub(super) fn is_unreadable(e: &matrix_sdk::Error) -> bool {
    let matrix_sdk::Error::Http(http) = e else {
        return false;
    };
    matches!(http.as_ref(), HttpError::Api(api) if matches!(**api, FromHttpResponseError::Deserialization(_)))
}

/// A sync response that matrix-sdk cannot read, skipped.
///
/// matrix-sdk stores nothing of a sync whose response it cannot read, so every following sync
/// asks with the same `since` token and gets the same response again: one bad response (one
/// room's broken update, a proxy's mangling) would keep the door offline for good. Syncing
/// without the token, or with another filter, is no way out: it replays history. So the
/// response is fetched once more as plain JSON, with exactly the request `sync_once` makes (no
/// long poll); if it still does not read, its `next_batch` is where the next sync starts, and
/// what it carried is lost: the events of its rooms (the door's calls and commands in them
/// included; an invite lost this way rings nothing, an answer lost ends the call by its
/// timeout), and to-device messages (room keys: later events of those sessions stay
/// undecryptable) and device-list changes, which the homeserver does not send again. A response
/// that reads the second time was a failed transfer: the sync is simply tried again. One
/// without a `next_batch` cannot be skipped: the loop keeps retrying it, as after a network
/// error. Logged once for each part found unreadable.
pub(super) struct Unreadable {
    next_batch: String,
    /// Which parts do not read ("rooms.join.!abc:example.org", or "the response").
    parts: String,
    /// What it carried, in counts.
    carried: String,
}

impl Unreadable {
    /// Fetches the response for `since` again; `Ok(None)` when it reads this time.
    pub(super) async fn fetch(
        client: &Client,
        since: Option<&str>,
    ) -> Result<Option<Unreadable>, String> {
        use matrix_sdk::reqwest;
        use matrix_sdk::ruma::api::auth_scheme::SendAccessToken;
        use matrix_sdk::ruma::api::{MatrixVersion, OutgoingRequest, SupportedVersions};

        let mut request = sync_events::v3::Request::new();
        request.filter = Some(sync_filter());
        request.since = since.map(str::to_owned);
        request.timeout = Some(Duration::ZERO);
        // As `sync_once` asks.
        request.use_state_after = true;
        let token = client.access_token().ok_or("no access token")?;
        let versions = SupportedVersions {
            versions: [MatrixVersion::V1_1].into(),
            features: Default::default(),
        };
        let http_request = request
            .try_into_http_request::<Vec<u8>>(
                client.homeserver().as_str(),
                SendAccessToken::IfRequired(&token),
                std::borrow::Cow::Owned(versions),
            )
            .map_err(|e| e.to_string())?;
        let http_request = reqwest::Request::try_from(http_request).map_err(|e| e.to_string())?;
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, client.http_client().execute(http_request))
                .await
                .map_err(|_| "no answer in time".to_owned())?
                .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, response.bytes())
            .await
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("the homeserver answered {status}"));
        }
        if reads(&body).is_ok() {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        let next_batch = value["next_batch"]
            .as_str()
            .ok_or("it has no next_batch to sync on from")?
            .to_owned();
        Ok(Some(Unreadable {
            parts: unreadable_parts(&value, &next_batch),
            carried: carried(&value),
            next_batch,
        }))
    }
}

/// Whether a sync response's body reads as matrix-sdk reads it.
pub(super) fn reads(body: &[u8]) -> Result<(), String> {
    use matrix_sdk::ruma::api::IncomingResponse;
    use matrix_sdk::ruma::exports::http;
    let response = http::Response::new(body);
    sync_events::v3::Response::try_from_http_response(response)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The parts of an unreadable response that do not read on their own: each room's update, each
/// other top-level section.
pub(super) fn unreadable_parts(value: &Value, next_batch: &str) -> String {
    let alone = |key: &str, part: Value| {
        let mut probe = serde_json::json!({ "next_batch": next_batch });
        probe[key] = part;
        reads(&serde_json::to_vec(&probe).unwrap_or_default()).is_err()
    };
    let mut parts = Vec::new();
    if let Some(top) = value.as_object() {
        for (key, section) in top {
            match (key.as_str(), section.as_object()) {
                ("next_batch", _) => {}
                ("rooms", Some(kinds)) => {
                    for (kind, rooms) in kinds {
                        for (room, update) in rooms.as_object().into_iter().flatten() {
                            let part =
                                serde_json::json!({ kind.as_str(): { room.as_str(): update } });
                            if alone("rooms", part) {
                                parts.push(format!("rooms.{kind}.{room}"));
                            }
                        }
                    }
                }
                _ => {
                    if alone(key, section.clone()) {
                        parts.push(key.clone());
                    }
                }
            }
        }
    }
    if parts.is_empty() {
        "the response".to_owned()
    } else {
        parts.join(", ")
    }
}

/// What a sync response carried, in counts: rooms with updates, timeline events, to-device
/// messages.
pub(super) fn carried(value: &Value) -> String {
    let rooms = &value["rooms"];
    let mut updates = 0;
    let mut events = 0;
    for kind in ["join", "invite", "leave", "knock"] {
        for update in rooms[kind].as_object().into_iter().flat_map(|r| r.values()) {
            updates += 1;
            events += update["timeline"]["events"].as_array().map_or(0, Vec::len);
        }
    }
    let to_device = value["to_device"]["events"].as_array().map_or(0, Vec::len);
    format!(
        "{updates} room update(s), {events} timeline event(s), {to_device} to-device message(s)"
    )
}
