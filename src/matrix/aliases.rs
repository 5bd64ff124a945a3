//! Room aliases, resolved lazily.

use super::*;

/// The configured room aliases and the room ids the homeserver gave for them.
///
/// The core knows a room given as an alias by the alias itself: it is resolved when the
/// homeserver first answers (by the sync loop, and by a send that needs it first), not at start,
/// so that the door starts and serves whatever works while the homeserver is down. Events from
/// the resolved room reach the core under the alias; events for the alias go to the room id.
#[derive(Clone, Default)]
pub(super) struct Aliases(Arc<Mutex<HashMap<String, Option<OwnedRoomId>>>>);

impl Aliases {
    pub(super) fn new(rooms: &[RoomRef]) -> Aliases {
        let aliases = rooms
            .iter()
            .filter(|r| r.0.starts_with('#'))
            .map(|r| (r.0.clone(), None))
            .collect();
        Aliases(Arc::new(Mutex::new(aliases)))
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<OwnedRoomId>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The aliases not resolved yet.
    pub(super) fn unresolved(&self) -> Vec<String> {
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
    pub(super) async fn room_id(
        &self,
        client: &Client,
        room: &RoomId,
    ) -> Result<OwnedRoomId, Failure> {
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
    pub(super) async fn resolve(
        &self,
        client: &Client,
        alias: &str,
    ) -> Result<OwnedRoomId, String> {
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
    pub(super) fn core_room(&self, id: &str) -> RoomId {
        let table = self.lock();
        let alias = table
            .iter()
            .find(|(_, resolved)| resolved.as_ref().is_some_and(|r| r.as_str() == id));
        RoomId(alias.map_or(id, |(alias, _)| alias.as_str()).to_owned())
    }
}
