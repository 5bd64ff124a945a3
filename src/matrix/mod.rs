//! The Matrix adapter (matrix-sdk): login, the stored session, E2EE, the sync loop, and sending.
//!
//! It translates between ruma's `m.call.*` events and the core's [`crate::call::CallEvent`]s and
//! decides nothing: which events matter, what rings, what is answered, which invitations are
//! joined and which messages are history are the station's business ([`crate::station`]). Its
//! boundary with the driver loop:
//!
//! - out: [`MatrixEvent`]s on the channel given to [`Matrix::spawn_sync`] — every call event of
//!   one sync response as one [`MatrixEvent::Batch`], in order, with `age` and whether it was
//!   encrypted; [`MatrixEvent::MemberLeft`]; text messages ([`MatrixEvent::Message`], with their
//!   `origin_server_ts`); invitations ([`MatrixEvent::Invited`]); whether the homeserver can be
//!   reached; the aliases that do not resolve;
//! - in: [`Matrix::send`] (a call event), [`Matrix::post_text`] (an audit line) in the same
//!   ordered queue per room, [`Matrix::post_snapshot`] (an `m.image`), [`Matrix::join`].
//!
//! The session (access token, device id) lives in a 0600 file in the state directory, written
//! once by `intercom login` ([`session`], [`login`]); the SQLite stores (state, sync token,
//! crypto keys) in `store/` beside it. Every start restores that session (`client.rs`): the door
//! is one device for life, and a restart resumes from the stored sync token instead of replaying
//! history. `sync.rs` is the sync loop, `timeline.rs` what it takes from each response, `send.rs`
//! the sending queues, `aliases.rs` the lazily resolved aliases, `turn.rs` the TURN servers,
//! `wire.rs` the `m.call.*` events, `check.rs` what `intercom check` asks of the homeserver.

mod aliases;
mod check;
mod client;
mod login;
mod send;
pub mod session;
mod snapshot;
mod sync;
mod timeline;
mod turn;
pub mod wire;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind};
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events;
use matrix_sdk::ruma::api::error::{ErrorKind, FromHttpResponseError};
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{
    OwnedDeviceId, OwnedRoomAliasId, OwnedRoomId, OwnedUserId, TransactionId, UInt,
};
use matrix_sdk::store::{StateStoreDataKey, StateStoreDataValue};
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::{Client, HttpError, RoomState, SessionMeta, SessionTokens};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

pub use check::diagnose;
pub use login::{login, prepare_login};
pub use session::Session;

use aliases::Aliases;
use client::{build_client, resolve, restore};
use send::{joined_room, run_queues, Failure, Queued, Target};
use sync::SyncLoop;
use timeline::{sync_filter, translate, RoomFacts};
use turn::turn_servers;

use crate::call::{CallEvent, Identity, PartyId, ReceivedEvent, ReceivedMessage, RoomId, UserId};
use crate::config::{MatrixConfig, RoomRef};
use crate::error::Error;

/// The file in the state directory that holds the Matrix session.
pub fn session_path(state_dir: &Path) -> PathBuf {
    state_dir.join("session.json")
}

/// The directory in the state directory that holds the SQLite stores (state, crypto keys).
pub fn store_path(state_dir: &Path) -> PathBuf {
    state_dir.join("store")
}

/// Read connections each SQLite store may pool (the SDK's minimum). The door reads its stores
/// a little at a time; the SDK's default, four per CPU core, opens more files and caches for
/// nothing on a Pi.
pub const STORE_POOL: usize = 2;

/// Each SQLite connection's page cache, in bytes (the SDK's low-memory setting is 500 kB).
pub const STORE_CACHE: u32 = 64 * 1024;

/// The SQLite stores' settings: the SDK's low-memory ones (the write-ahead log kept under 2 MB),
/// with [`STORE_POOL`] connections at most and a [`STORE_CACHE`] page cache each. The door's
/// databases are small and read a few times a sync; a page not cached is read from the kernel's
/// page cache. With 500 kB a connection the caches could take 6 MB as the stores grow, memory a
/// door that runs for years does not have to spare (the soak's numbers: ARCHITECTURE.md).
fn store_config(store: &Path) -> matrix_sdk::SqliteStoreConfig {
    matrix_sdk::SqliteStoreConfig::with_low_memory_config(store)
        .pool_max_size(STORE_POOL)
        .cache_size(STORE_CACHE)
}

/// How long one request may take (a sync adds its long-poll timeout to this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a sync waits on the homeserver for something to happen.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How many timeline events of a room one sync response may carry.
const TIMELINE_LIMIT: u32 = 50;
/// The backoff of a failing sync, doubled on each failure.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often an event is tried before it is given up (with backoff from 1 s between tries).
const SEND_ATTEMPTS: u32 = 4;
/// How long a send waits for the first sync when the store does not know the room yet.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(30);

/// What the sync loop reports to the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum MatrixEvent {
    /// Every call event of one sync response, in timeline order within each room. Never empty.
    Batch(Vec<ReceivedEvent>),
    /// Someone else left (or was kicked or banned from) a room the door is in.
    MemberLeft { room: RoomId, user: UserId },
    /// A text message (`m.text`, decrypted when it was encrypted) from someone else, with its
    /// `origin_server_ts` (the station tells history from live messages).
    Message {
        message: ReceivedMessage,
        origin_server_ts: Option<u64>,
    },
    /// Someone invited the door into a room (the station decides whether to join).
    Invited {
        room: RoomId,
        inviter: Option<UserId>,
    },
    /// A sync succeeded: after the first one, and again after failures.
    Online,
    /// Syncing started failing (sent once, until the next [`MatrixEvent::Online`]); the loop
    /// keeps retrying with backoff.
    Offline(String),
    /// The configured room aliases the homeserver could not resolve, each with why (sent when
    /// the list changes; empty once every alias is resolved). Their rooms are not rung.
    Unresolved(Vec<(String, String)>),
}

pub use crate::station::TurnServers;

/// The door's connection to its homeserver: a restored session, its rooms, and the sending
/// queue. Made by [`connect`]; syncing starts with [`Matrix::spawn_sync`].
pub struct Matrix {
    client: Client,
    identity: Identity,
    rooms: Vec<RoomId>,
    aliases: Aliases,
    outbox: mpsc::UnboundedSender<(RoomId, Queued)>,
    /// The sending queue's task: done once every queued event was sent or given up.
    sending: tokio::task::JoinHandle<()>,
    /// True once a sync has succeeded since start: until then the store may not know the rooms.
    synced: watch::Sender<bool>,
}

/// Restores the stored session (never a new device) and starts the sending queue. Needs no
/// homeserver: room aliases are resolved once it answers (see [`Aliases`]).
pub async fn connect(config: &MatrixConfig) -> Result<Matrix, Error> {
    let session = Session::load(&session_path(&config.state_dir))?;
    if session.homeserver != config.homeserver.0 || session.user_id != config.user.0 {
        return Err(Error::Unavailable(format!(
            "the stored session is for {} on {}, the configuration names {} on {}: run `intercom login` again",
            session.user_id, session.homeserver, config.user, config.homeserver.0
        )));
    }
    let client = build_client(
        &session.homeserver,
        Some(&config.state_dir),
        REQUEST_TIMEOUT,
    )
    .await?;
    restore(&client, &session).await?;
    let rooms = config.rooms.iter().map(|r| RoomId(r.0.clone())).collect();
    let aliases = Aliases::new(&config.rooms);
    let (outbox, queue) = mpsc::unbounded_channel();
    let (synced, _) = watch::channel(false);
    let sending = tokio::spawn(run_queues(
        client.clone(),
        queue,
        synced.subscribe(),
        aliases.clone(),
    ));
    Ok(Matrix {
        client,
        identity: Identity {
            user: UserId(session.user_id),
            party: PartyId(session.device_id),
        },
        rooms,
        aliases,
        outbox,
        sending,
        synced,
    })
}

impl Matrix {
    /// The door's user id.
    pub fn user_id(&self) -> UserId {
        self.identity.user.clone()
    }

    /// The door's device id, which is also its `party_id` in calls.
    pub fn device_id(&self) -> PartyId {
        self.identity.party.clone()
    }

    /// Who the door is, for the core.
    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }

    /// The configured rooms, in the configuration's order: room ids, and aliases as they are
    /// (the adapter translates them; see [`Aliases`]).
    pub fn rooms(&self) -> Vec<RoomId> {
        self.rooms.clone()
    }

    /// Queues `event` for `room`. Events for one room are sent one after the other, in the order
    /// queued, each retried a few times with backoff; a failure is logged (naming the room and
    /// the event type) and the queue goes on. Encrypted rooms get encrypted events.
    pub fn send(&self, room: RoomId, event: CallEvent) {
        if self.outbox.send((room, Queued::Call(event))).is_err() {
            log::error!("the Matrix sending queue has stopped: event dropped");
        }
    }

    /// Queues a text message (`m.notice`: a bot's line, which clients do not answer) for
    /// `room`, in order with the call events.
    pub fn post_text(&self, room: RoomId, text: String) {
        if self.outbox.send((room, Queued::Text(text))).is_err() {
            log::error!("the Matrix sending queue has stopped: message dropped");
        }
    }

    /// Joins `room` (a room id the door was invited to), on a task of its own; a failure is
    /// logged naming the room.
    pub fn join(&self, room: RoomId) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let r = room.0.as_str();
            let id = match matrix_sdk::ruma::OwnedRoomId::try_from(r) {
                Ok(id) => id,
                Err(e) => {
                    log::warn!(room = r; "cannot join {r}: {e}");
                    return;
                }
            };
            if let Err(e) = client.join_room_by_id(&id).await {
                log::warn!(room = r; "cannot join {r}: {e}");
            }
        });
    }

    /// Posts `jpeg` (`width` x `height`) into `room` as an `m.image`, its caption mentioning
    /// those of `mention` who are members of the room (`m.mentions` and their ids in the body),
    /// on a task of its own: it never holds up the call's events. Encrypted rooms get an
    /// encrypted upload. Tried a few times; a failure is logged naming the room.
    pub fn post_snapshot(
        &self,
        room: RoomId,
        jpeg: Vec<u8>,
        size: (u32, u32),
        mention: Vec<UserId>,
    ) {
        let client = self.client.clone();
        let mut synced = self.synced.subscribe();
        let aliases = self.aliases.clone();
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            for attempt in 1..=SEND_ATTEMPTS {
                let target = Target {
                    client: &client,
                    aliases: &aliases,
                };
                let sent = snapshot::post(target, &room, &jpeg, size, &mention, &mut synced).await;
                let r = room.0.as_str();
                match sent {
                    Ok(to) => {
                        let to = if to.is_empty() {
                            "nobody".to_owned()
                        } else {
                            to.join(", ")
                        };
                        log::info!(room = r; "snapshot posted to {r}, mentioning {to}");
                        return;
                    }
                    Err(Failure::Permanent(e)) => {
                        log::error!(room = r; "cannot post the snapshot to {r}: {e}");
                        return;
                    }
                    Err(Failure::Transient(e)) if attempt == SEND_ATTEMPTS => {
                        log::error!(room = r; "cannot post the snapshot to {r} after {SEND_ATTEMPTS} tries: {e}");
                    }
                    Err(Failure::Transient(e)) => {
                        log::warn!(room = r; "posting the snapshot to {r} failed, retrying: {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
    }

    /// Starts the sync loop: a task that syncs until `events` is closed, and reports what it sees
    /// (see [`MatrixEvent`]). The first sync of a store without a sync token only catches up:
    /// its timeline is history and never reaches the core.
    pub fn spawn_sync(&self, events: mpsc::Sender<MatrixEvent>) {
        let sync = SyncLoop {
            client: self.client.clone(),
            me: self.identity.user.0.clone(),
            synced: self.synced.clone(),
            aliases: self.aliases.clone(),
            events,
        };
        tokio::spawn(sync.run());
    }

    /// Stops taking events and waits, at most `within`, for the queued ones to be sent (the
    /// hangups of a shutdown). The sync loop stops on its own when its channel is closed.
    pub async fn close(self, within: Duration) {
        let Matrix {
            outbox, sending, ..
        } = self;
        drop(outbox);
        if tokio::time::timeout(within, sending).await.is_err() {
            log::warn!("events still queued for Matrix after {within:?}: not sent");
        }
    }

    /// The homeserver's TURN servers, or `None` when it offers none.
    pub async fn turn_servers(&self) -> Result<Option<TurnServers>, Error> {
        turn_servers(&self.client).await
    }
}

/// A client error in one line, with advice when the session itself was refused.
fn describe_error(e: &matrix_sdk::Error) -> String {
    match e {
        matrix_sdk::Error::Http(http) => match http.client_api_error_kind() {
            Some(ErrorKind::UnknownToken { .. }) => format!(
                "the homeserver no longer accepts the door's session ({e}): run `intercom login` again"
            ),
            _ => describe(http),
        },
        _ => e.to_string(),
    }
}

/// An HTTP error in one line: for a connection failure, its cause rather than the request's URL.
fn describe(e: &HttpError) -> String {
    let r = match e {
        HttpError::Reqwest(r) => r,
        HttpError::Cached(inner) => return describe(inner),
        _ => return e.to_string(),
    };
    let mut cause: &dyn std::error::Error = r;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if r.is_timeout() {
        "the homeserver did not answer in time"
    } else {
        "cannot reach the homeserver"
    };
    format!("{what}: {cause}")
}
