//! The Matrix adapter (matrix-sdk): login, the stored session, E2EE, the sync loop, and sending.
//!
//! It translates between ruma's `m.call.*` events and the core's [`crate::call::CallEvent`]s and
//! decides nothing: which events matter, what rings and what is answered are the core's business.
//! Its boundary with the driver loop:
//!
//! - in: [`Matrix::send`] — an event to send into a room ([`crate::call::Output::Send`]);
//! - out: [`MatrixEvent`]s on the channel given to [`Matrix::spawn_sync`] — every call event of
//!   one sync response as one [`MatrixEvent::Batch`], in order, with `age` and whether it was
//!   encrypted ([`crate::call::Input::SyncBatch`]); [`MatrixEvent::MemberLeft`]
//!   ([`crate::call::Input::MemberLeft`]); text messages ([`MatrixEvent::Message`],
//!   [`crate::call::Input::Message`]) sent after the daemon started; and whether the homeserver
//!   can be reached;
//! - in: [`Matrix::post_text`] (an audit line, [`crate::call::Output::Post`]) in the same
//!   ordered queue as the call events, and [`Matrix::post_snapshot`] (an `m.image`).
//!
//! The session (access token, device id) lives in a 0600 file in the state directory, written
//! once by `intercom login` ([`session`]); the SQLite stores (state, sync token, crypto keys) in
//! `store/` beside it. Every start restores that session: the door is one device for life, and a
//! restart resumes from the stored sync token instead of replaying history.

mod check;
pub mod session;
mod snapshot;
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

pub use check::{diagnose, Diagnosis, Level};
pub use session::Session;

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
/// page cache. With 500 kB a connection the caches could take 6 MB as the stores grow: a
/// 200-call soak ended 1.1 MB above its twelfth call, and 0.56 MB with 64 kB (one run each).
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

/// TURN servers offered by the homeserver (`/voip/turnServer`). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServers {
    pub uris: Vec<String>,
    pub username: String,
    pub password: String,
    /// How long the credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServers")
            .field("uris", &self.uris)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The door's connection to its homeserver: a restored session, its rooms, and the sending
/// queue. Made by [`connect`]; syncing starts with [`Matrix::spawn_sync`].
pub struct Matrix {
    client: Client,
    identity: Identity,
    rooms: Vec<RoomId>,
    aliases: Aliases,
    outbox: mpsc::UnboundedSender<(RoomId, Outgoing)>,
    /// The sending queue's task: done once every queued event was sent or given up.
    sending: tokio::task::JoinHandle<()>,
    /// True once a sync has succeeded since start: until then the store may not know the rooms.
    synced: watch::Sender<bool>,
}

/// Logs the door's account in once, by password, as a new device named
/// `config.device_name`, with the SQLite stores in the state directory (so that the crypto store
/// belongs to this device from the start), and writes the session file.
///
/// Refuses what [`prepare_login`] refuses. A login that fails removes the stores it made: they
/// belong to no usable device.
pub async fn login(config: &MatrixConfig, password: &str) -> Result<Session, Error> {
    prepare_login(config, false)?;
    let state = &config.state_dir;
    let path = session_path(state);
    let store = store_path(state);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .map_err(|e| Error::io("cannot create the state directory", Some(state.clone()), e))?;
    let homeserver = &config.homeserver.0;
    let logged_in = async {
        let client = build_client(homeserver, Some(state), REQUEST_TIMEOUT).await?;
        let response = client
            .matrix_auth()
            .login_username(&config.user.0, password)
            .initial_device_display_name(&config.device_name)
            .send()
            .await
            .map_err(|e| {
                Error::Matrix(format!(
                    "cannot log {} in on {homeserver}: {}",
                    config.user,
                    describe_error(&e)
                ))
            })?;
        let session = Session {
            homeserver: homeserver.clone(),
            user_id: response.user_id.to_string(),
            device_id: response.device_id.to_string(),
            access_token: response.access_token.clone(),
        };
        session.save(&path)?;
        Ok(session)
    }
    .await;
    if logged_in.is_err() {
        // The client is gone with its stores' connections: what it made goes too.
        if let Err(e) = std::fs::remove_dir_all(&store) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!(
                    "cannot remove {} after the failed login: {e}",
                    store.display()
                );
            }
        }
    }
    logged_in
}

/// What `intercom login` checks before it asks for a password: no session yet (logging in
/// again would make a new device and orphan the old one's keys), and no stores of an earlier
/// login (they hold its device's end-to-end keys: a new device cannot use them, but they are
/// not thrown away unasked). With `discard_store`, such stores are removed.
pub fn prepare_login(config: &MatrixConfig, discard_store: bool) -> Result<(), Error> {
    let state = &config.state_dir;
    let path = session_path(state);
    let store = store_path(state);
    match Session::load(&path) {
        Ok(old) => {
            return Err(Error::Unavailable(format!(
                "already logged in as {} (device {}): to log in afresh, remove {} and {} first",
                old.user_id,
                old.device_id,
                path.display(),
                store.display()
            )))
        }
        Err(_) if path.exists() => {
            return Err(Error::Unavailable(format!(
                "{} exists but is not a session this door can use: to log in afresh, remove it and {} first",
                path.display(),
                store.display()
            )))
        }
        Err(_) => {}
    }
    if std::fs::symlink_metadata(&store).is_err() {
        return Ok(());
    }
    if !discard_store {
        return Err(Error::Unavailable(format!(
            "{} holds the stores of an earlier login, its device's end-to-end encryption keys among them, but there is no session to use them: a new login makes a new device, which cannot use them. To discard them, run `intercom login --discard-store`; to keep them, move the directory elsewhere first",
            store.display()
        )));
    }
    log::warn!(
        "removing {} (--discard-store): the stores of an earlier login",
        store.display()
    );
    std::fs::remove_dir_all(&store)
        .map_err(|e| Error::io("cannot remove the earlier store", Some(store.clone()), e))
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
    let sending = tokio::spawn(dispatch(
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

/// The configured room aliases and the room ids the homeserver gave for them.
///
/// The core knows a room given as an alias by the alias itself: it is resolved when the
/// homeserver first answers (by the sync loop, and by a send that needs it first), not at start,
/// so that the door starts and serves whatever works while the homeserver is down. Events from
/// the resolved room reach the core under the alias; events for the alias go to the room id.
#[derive(Clone, Default)]
struct Aliases(Arc<Mutex<HashMap<String, Option<OwnedRoomId>>>>);

impl Aliases {
    fn new(rooms: &[RoomRef]) -> Aliases {
        let aliases = rooms
            .iter()
            .filter(|r| r.0.starts_with('#'))
            .map(|r| (r.0.clone(), None))
            .collect();
        Aliases(Arc::new(Mutex::new(aliases)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<OwnedRoomId>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The aliases not resolved yet.
    fn unresolved(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, id)| id.is_none())
            .map(|(alias, _)| alias.clone())
            .collect();
        left.sort();
        left
    }

    /// The room id of `room` (a room id already, or a configured alias), asking the homeserver
    /// when the alias is not resolved yet.
    async fn room_id(&self, client: &Client, room: &RoomId) -> Result<OwnedRoomId, Failure> {
        if !room.0.starts_with('#') {
            return OwnedRoomId::try_from(room.0.as_str())
                .map_err(|e| Failure::Permanent(format!("not a room id: {e}")));
        }
        if let Some(Some(id)) = self.lock().get(&room.0) {
            return Ok(id.clone());
        }
        self.resolve(client, &room.0)
            .await
            .map_err(Failure::Transient)
    }

    /// Asks the homeserver for `alias`'s room id and remembers it.
    async fn resolve(&self, client: &Client, alias: &str) -> Result<OwnedRoomId, String> {
        let parsed = OwnedRoomAliasId::try_from(alias)
            .map_err(|e| format!("room alias {alias} is not valid: {e}"))?;
        let response = client
            .resolve_room_alias(&parsed)
            .await
            .map_err(|e| format!("cannot resolve the room alias {alias}: {}", describe(&e)))?;
        let id = response.room_id;
        let mut table = self.lock();
        if !matches!(table.get(alias), Some(Some(known)) if *known == id) {
            log::info!(room = id.as_str(); "room alias {alias} is {id}");
        }
        table.insert(alias.to_owned(), Some(id.clone()));
        Ok(id)
    }

    /// How the core knows the room `id`: by its configured alias when it has one.
    fn core_room(&self, id: &str) -> RoomId {
        let table = self.lock();
        let alias = table
            .iter()
            .find(|(_, resolved)| resolved.as_ref().is_some_and(|r| r.as_str() == id));
        RoomId(alias.map_or(id, |(alias, _)| alias.as_str()).to_owned())
    }
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
        if self.outbox.send((room, Outgoing::Call(event))).is_err() {
            log::error!("the Matrix sending queue has stopped: event dropped");
        }
    }

    /// Queues a text message (`m.notice`: a bot's line, which clients do not answer) for
    /// `room`, in order with the call events.
    pub fn post_text(&self, room: RoomId, text: String) {
        if self.outbox.send((room, Outgoing::Text(text))).is_err() {
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

// ---------------------------------------------------------------------------------------------
// The client and the session.

/// A client for `homeserver`, with the SQLite stores of `state_dir` (or memory stores). Requests
/// are not retried by the SDK: the sync loop and the sending queue retry on their own terms.
async fn build_client(
    homeserver: &str,
    state_dir: Option<&Path>,
    timeout: Duration,
) -> Result<Client, Error> {
    let mut builder = Client::builder()
        .homeserver_url(homeserver)
        .request_config(RequestConfig::new().disable_retry().timeout(timeout));
    if let Some(state) = state_dir {
        // The crypto store holds the device's private keys: only the service's user reads them.
        let store = store_path(state);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&store)
            .map_err(|e| Error::io("cannot create the Matrix store", Some(store.clone()), e))?;
        builder =
            builder.sqlite_store_with_config_and_cache_path(store_config(&store), None::<&Path>);
    }
    builder.build().await.map_err(|e| {
        Error::Matrix(format!(
            "cannot set up the Matrix client for {homeserver}: {e}"
        ))
    })
}

/// Makes `client` the device of `session` again, without a request to the homeserver.
async fn restore(client: &Client, session: &Session) -> Result<(), Error> {
    let user_id = OwnedUserId::try_from(session.user_id.as_str()).map_err(|e| {
        Error::Unavailable(format!(
            "the stored session's user id {:?} is not valid ({e}): run `intercom login` again",
            session.user_id
        ))
    })?;
    let restored = MatrixSession {
        meta: SessionMeta {
            user_id,
            device_id: OwnedDeviceId::from(session.device_id.as_str()),
        },
        tokens: SessionTokens {
            access_token: session.access_token.clone(),
            refresh_token: None,
        },
    };
    client.restore_session(restored).await.map_err(|e| {
        Error::Matrix(format!(
            "cannot restore the session of {} (device {}): {e}",
            session.user_id, session.device_id
        ))
    })
}

/// A configured room as a room id: ids as they are, aliases asked of the homeserver.
async fn resolve(client: &Client, room: &RoomRef) -> Result<RoomId, Error> {
    if !room.0.starts_with('#') {
        return Ok(RoomId(room.0.clone()));
    }
    let alias = OwnedRoomAliasId::try_from(room.0.as_str())
        .map_err(|e| Error::Matrix(format!("room alias {room} is not valid: {e}")))?;
    let response = client.resolve_room_alias(&alias).await.map_err(|e| {
        Error::Matrix(format!(
            "cannot resolve the room alias {room}: {}",
            describe(&e)
        ))
    })?;
    Ok(RoomId(response.room_id.to_string()))
}

/// `/voip/turnServer`. A homeserver without TURN answers `{}` (or no URIs): `None`.
async fn turn_servers(client: &Client) -> Result<Option<TurnServers>, Error> {
    match client.send(turn_server::Request::default()).await {
        Ok(r) if r.uris.is_empty() => Ok(None),
        Ok(turn_server::Response {
            uris,
            username: Some(username),
            password: Some(password),
            ttl: Some(ttl),
        }) => Ok(Some(TurnServers {
            uris,
            username,
            password,
            ttl: Duration::from_secs(ttl),
        })),
        Ok(r) => {
            log::warn!(
                "the homeserver offers TURN servers {:?} without credentials (username, password and ttl): calls use direct connections only",
                r.uris
            );
            Ok(None)
        }
        Err(e) if e.client_api_error_kind() == Some(&ErrorKind::Unrecognized) => Ok(None),
        Err(e) => Err(Error::Matrix(format!(
            "cannot get TURN servers from the homeserver: {}",
            describe(&e)
        ))),
    }
}

/// `GET /voip/turnServer` with every field of the answer optional. Most homeservers without
/// TURN answer `{}`, which ruma's own response type cannot read, and matrix-sdk logs every
/// response it cannot read as an error: here `{}` is simply no TURN. The request and the error
/// answers are ruma's.
mod turn_server {
    use matrix_sdk::ruma::api::client::voip::get_turn_server_info::v3 as ruma_turn;
    use matrix_sdk::ruma::api::error::{FromHttpResponseError, IntoHttpError};
    use matrix_sdk::ruma::api::{
        auth_scheme::AuthScheme, path_builder::PathBuilder, EndpointError, IncomingResponse,
        Metadata, OutgoingRequest,
    };
    use matrix_sdk::ruma::exports::{bytes::BufMut, http};

    #[derive(Clone, Debug, Default)]
    pub struct Request {}

    #[derive(Debug, Default, serde::Deserialize)]
    pub struct Response {
        #[serde(default)]
        pub uris: Vec<String>,
        pub username: Option<String>,
        pub password: Option<String>,
        /// Seconds.
        pub ttl: Option<u64>,
    }

    impl Metadata for Request {
        const METHOD: http::Method = ruma_turn::Request::METHOD;
        const RATE_LIMITED: bool = ruma_turn::Request::RATE_LIMITED;
        type Authentication = <ruma_turn::Request as Metadata>::Authentication;
        type PathBuilder = <ruma_turn::Request as Metadata>::PathBuilder;
        const PATH_BUILDER: Self::PathBuilder = ruma_turn::Request::PATH_BUILDER;
    }

    impl OutgoingRequest for Request {
        type EndpointError = <ruma_turn::Request as OutgoingRequest>::EndpointError;
        type IncomingResponse = Response;

        fn try_into_http_request<T: Default + BufMut + AsRef<[u8]>>(
            self,
            base_url: &str,
            authentication_input: <Self::Authentication as AuthScheme>::Input<'_>,
            path_builder_input: <Self::PathBuilder as PathBuilder>::Input<'_>,
        ) -> Result<http::Request<T>, IntoHttpError> {
            ruma_turn::Request::new().try_into_http_request(
                base_url,
                authentication_input,
                path_builder_input,
            )
        }
    }

    impl IncomingResponse for Response {
        type EndpointError = <ruma_turn::Request as OutgoingRequest>::EndpointError;

        fn try_from_http_response<T: AsRef<[u8]>>(
            response: http::Response<T>,
        ) -> Result<Self, FromHttpResponseError<Self::EndpointError>> {
            if response.status().as_u16() >= 400 {
                return Err(FromHttpResponseError::Server(
                    Self::EndpointError::from_http_response(response),
                ));
            }
            Ok(serde_json::from_slice(response.body().as_ref())?)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sync loop.

struct SyncLoop {
    client: Client,
    me: String,
    synced: watch::Sender<bool>,
    aliases: Aliases,
    events: mpsc::Sender<MatrixEvent>,
}

impl SyncLoop {
    async fn run(self) {
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
    async fn room_facts(&self, response: &SyncResponse) -> HashMap<String, RoomFacts> {
        let mut facts = HashMap::new();
        for id in response.rooms.joined.keys() {
            let Some(room) = self.client.get_room(id) else {
                continue;
            };
            // Counted from the member events in the store, which the door's syncs (not lazy
            // loading members) bring whole: `joined_members_count()` reads the sync's room
            // summary, which Synapse sends only to clients that lazy-load, and was 0 here.
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
    async fn stored_token(&self) -> Option<String> {
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
    async fn resolve_aliases(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for alias in self.aliases.unresolved() {
            if let Err(why) = self.aliases.resolve(&self.client, &alias).await {
                failed.push((alias, why));
            }
        }
        failed
    }

    /// Hands an event to the driver; false once the driver has gone.
    async fn report(&self, event: MatrixEvent) -> bool {
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
    async fn prepare_encryption(&self) {
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
    async fn report_invites(&self, response: &SyncResponse) -> bool {
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
fn is_unreadable(e: &matrix_sdk::Error) -> bool {
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
struct Unreadable {
    next_batch: String,
    /// Which parts do not read ("rooms.join.!abc:example.org", or "the response").
    parts: String,
    /// What it carried, in counts.
    carried: String,
}

impl Unreadable {
    /// Fetches the response for `since` again; `Ok(None)` when it reads this time.
    async fn fetch(client: &Client, since: Option<&str>) -> Result<Option<Unreadable>, String> {
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
fn reads(body: &[u8]) -> Result<(), String> {
    use matrix_sdk::ruma::api::IncomingResponse;
    use matrix_sdk::ruma::exports::http;
    let response = http::Response::new(body);
    sync_events::v3::Response::try_from_http_response(response)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The parts of an unreadable response that do not read on their own: each room's update, each
/// other top-level section.
fn unreadable_parts(value: &Value, next_batch: &str) -> String {
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
fn carried(value: &Value) -> String {
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

/// What the door syncs: everything, with room for a burst of call events (candidates come in
/// many events) in one response, where the homeserver's default would cut the timeline at 10.
fn sync_filter() -> sync_events::v3::Filter {
    let mut filter = FilterDefinition::empty();
    filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
    filter.into()
}

/// What the driver needs of one sync response: one batch of every call event in every joined
/// room, then who left. Undecryptable and malformed events are logged and left out.
fn translate(
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
struct RoomFacts {
    encrypted: bool,
    /// Joined members, the door included, when the store knows them.
    members: Option<u64>,
}

/// A timeline event as a text message from someone else, with its `origin_server_ts`, when it
/// is one.
fn text_message(
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
fn call_event(room: &RoomId, event: &TimelineEvent, me: &str) -> Option<ReceivedEvent> {
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
fn departed(raw: &Raw<AnySyncTimelineEvent>, me: &str) -> Option<UserId> {
    if raw.get_field::<String>("type").ok().flatten()? != "m.room.member" {
        return None;
    }
    let user = raw.get_field::<String>("state_key").ok().flatten()?;
    let content: Value = raw.get_field("content").ok().flatten()?;
    let gone = matches!(content["membership"].as_str(), Some("leave" | "ban"));
    (gone && user != me).then_some(UserId(user))
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

// ---------------------------------------------------------------------------------------------
// Sending.

/// Hands each queued event to its room's sender, starting one per room on first use, so that a
/// room whose sends are failing does not hold up the others.
/// What the sending queue sends.
enum Outgoing {
    Call(CallEvent),
    Text(String),
}

async fn dispatch(
    client: Client,
    mut queue: mpsc::UnboundedReceiver<(RoomId, Outgoing)>,
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
async fn send_room(
    client: Client,
    aliases: Aliases,
    room: RoomId,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    mut synced: watch::Receiver<bool>,
) {
    while let Some(outgoing) = queue.recv().await {
        let (event_type, content, call_id) = match &outgoing {
            Outgoing::Call(event) => {
                let (t, c) = wire::to_wire(event);
                (t, c, event.call_id.0.as_str())
            }
            Outgoing::Text(text) => (
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

enum Failure {
    /// Trying again will not help (the door is not in the room).
    Permanent(String),
    Transient(String),
}

/// Where events go: the client, and how it finds the rooms the core names.
#[derive(Clone, Copy)]
struct Target<'a> {
    client: &'a Client,
    aliases: &'a Aliases,
}

async fn send_one(
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
async fn joined_room(
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
