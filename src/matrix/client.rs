//! The client: built with the stores of the state directory, the stored session restored,
//! configured rooms resolved.

use super::*;

/// A client for `homeserver`, with the SQLite stores of `state_dir` (or memory stores). Requests
/// are not retried by the SDK: the sync loop and the sending queue retry on their own terms.
pub(super) async fn build_client(
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
pub(super) async fn restore(client: &Client, session: &Session) -> Result<(), Error> {
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
pub(super) async fn resolve(client: &Client, room: &RoomRef) -> Result<RoomId, Error> {
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
