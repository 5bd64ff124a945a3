//! A bare Matrix client over plain HTTP (ureq), for tests to act as a peer without any SDK:
//! create rooms, invite and join, send raw events, read a room's messages and an account's
//! devices. Every failure panics with the request that failed and the homeserver's answer.

use serde_json::{json, Value};

use super::random_string;
use super::synapse::{Synapse, User};

pub struct Client {
    base: String,
    token: String,
    pub user_id: String,
}

/// Percent-encodes a path segment (room ids and event types contain `!`, `:`, `#`).
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    /// Logs `user` in with its password (a new device each time).
    pub fn login(synapse: &Synapse, user: &User) -> Client {
        let base = synapse.url();
        let reply: Value = ureq::post(&format!("{base}/_matrix/client/v3/login"))
            .send_json(json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.localpart},
                "password": user.password,
            }))
            .unwrap_or_else(|e| panic!("logging {} in: {e}", user.localpart))
            .body_mut()
            .read_json()
            .unwrap();
        Client {
            base,
            token: reply["access_token"].as_str().unwrap().to_owned(),
            user_id: reply["user_id"].as_str().unwrap().to_owned(),
        }
    }

    /// A client using an access token obtained elsewhere (the door's own session).
    pub fn with_token(synapse: &Synapse, user_id: &str, token: &str) -> Client {
        Client {
            base: synapse.url(),
            token: token.to_owned(),
            user_id: user_id.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3{path}", self.base)
    }

    pub fn get(&self, path: &str) -> Value {
        ureq::get(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap_or_else(|e| panic!("GET {path} as {}: {e}", self.user_id))
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        ureq::post(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(&body)
            .unwrap_or_else(|e| panic!("POST {path} as {}: {e} ({body})", self.user_id))
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn put(&self, path: &str, body: Value) -> Value {
        ureq::put(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(&body)
            .unwrap_or_else(|e| panic!("PUT {path} as {}: {e}", self.user_id))
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// Creates a room inviting `invite`; encrypted rooms get `m.room.encryption` from the start.
    pub fn create_room(&self, invite: &[&str], encrypted: bool) -> String {
        let mut initial_state = Vec::new();
        if encrypted {
            initial_state.push(json!({
                "type": "m.room.encryption", "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }));
        }
        let reply = self.post(
            "/createRoom",
            json!({"preset": "private_chat", "invite": invite, "initial_state": initial_state}),
        );
        reply["room_id"].as_str().unwrap().to_owned()
    }

    pub fn invite(&self, room: &str, user_id: &str) {
        self.post(
            &format!("/rooms/{}/invite", encode(room)),
            json!({"user_id": user_id}),
        );
    }

    pub fn join(&self, room: &str) {
        self.post(&format!("/join/{}", encode(room)), json!({}));
    }

    pub fn leave(&self, room: &str) {
        self.post(&format!("/rooms/{}/leave", encode(room)), json!({}));
    }

    /// The user ids joined to `room`.
    pub fn joined_members(&self, room: &str) -> Vec<String> {
        let reply = self.get(&format!("/rooms/{}/joined_members", encode(room)));
        reply["joined"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The rooms this user is joined to.
    pub fn joined_rooms(&self) -> Vec<String> {
        let reply = self.get("/joined_rooms");
        reply["joined_rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    /// Sends a raw event; returns its event id.
    pub fn send(&self, room: &str, event_type: &str, content: &Value) -> String {
        let txn = random_string(16);
        let reply = self.put(
            &format!("/rooms/{}/send/{}/{txn}", encode(room), encode(event_type)),
            content.clone(),
        );
        reply["event_id"].as_str().unwrap().to_owned()
    }

    /// The room's latest events (up to 100), oldest first.
    pub fn messages(&self, room: &str) -> Vec<Value> {
        let reply = self.get(&format!("/rooms/{}/messages?dir=b&limit=100", encode(room)));
        let mut chunk = reply["chunk"].as_array().cloned().unwrap_or_default();
        chunk.reverse();
        chunk
    }

    /// The bytes of an `mxc://server/id` upload (authenticated media).
    pub fn download(&self, mxc: &str) -> Vec<u8> {
        let path = mxc.strip_prefix("mxc://").expect(mxc);
        ureq::get(&format!(
            "{}/_matrix/client/v1/media/download/{path}",
            self.base
        ))
        .header("Authorization", &format!("Bearer {}", self.token))
        .call()
        .unwrap_or_else(|e| panic!("downloading {mxc} as {}: {e}", self.user_id))
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_vec()
        .unwrap()
    }

    /// This account's devices (`/devices`).
    pub fn devices(&self) -> Vec<Value> {
        self.get("/devices")["devices"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
