//! `intercom login`: the door's account logged in once, as a new device, with its stores; and
//! what is checked before a password is asked.

use super::*;

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
