//! The worlds most tests start from: Synapse, alice (on the door's allow list) in a room with
//! the door, and the door's home (configured and logged in, not yet running).

use serde_json::json;

use super::browser::Browser;
use super::client::Client;
use super::door::{Door, DoorHome, DoorSettings};
use super::synapse::{Synapse, Turn, User};

/// Alice as a plain HTTP client, in a plain room with the door. `settings.rooms` and
/// `settings.allow` are filled in here.
pub fn with_client(settings: DoorSettings) -> (Synapse, Client, DoorHome, String) {
    let synapse = Synapse::start(None);
    let door = synapse.register("door");
    let alice = Client::login(&synapse, &synapse.register("alice"));
    let room = alice.create_room(&[&door.user_id], false);
    let settings = DoorSettings {
        rooms: vec![room.clone()],
        allow: vec![alice.user_id.clone()],
        ..settings
    };
    let home = DoorHome::new(&synapse, door, &settings);
    (synapse, alice, home, room)
}

/// Alice in her browser (matrix-js-sdk), in a room she made and invited the door to.
pub struct BrowserWorld {
    pub synapse: Synapse,
    pub alice: Browser,
    pub alice_user: User,
    pub home: DoorHome,
    pub room: String,
}

/// See [`BrowserWorld`]. `turn` is wired into Synapse; `relay_only` keeps alice's media on TURN.
/// `settings.rooms` and `settings.allow` are filled in here.
pub fn with_browser(
    encrypted: bool,
    turn: Option<&Turn>,
    relay_only: bool,
    settings: DoorSettings,
) -> BrowserWorld {
    let synapse = Synapse::start(turn);
    let door_user = synapse.register("door");
    let alice_user = synapse.register("alice");
    let mut alice = Browser::start("alice", relay_only);
    alice.call(
        json!({"cmd": "login", "homeserver": synapse.url(), "user": alice_user.localpart,
                      "password": alice_user.password, "encryption": encrypted}),
    );
    let room = alice
        .call(json!({"cmd": "create_room", "invite": [door_user.user_id], "encrypted": encrypted}))
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings = DoorSettings {
        rooms: vec![room.clone()],
        allow: vec![alice_user.user_id.clone()],
        ..settings
    };
    let home = DoorHome::new(&synapse, door_user, &settings);
    BrowserWorld {
        synapse,
        alice,
        alice_user,
        home,
        room,
    }
}

impl BrowserWorld {
    /// Starts the door and waits for READY=1 and until alice sees it in the room (it accepts
    /// the invite of an allow-listed user).
    pub fn start_door(&mut self) -> Door {
        let door = self.home.start_ready();
        self.alice
            .call(json!({"cmd": "wait_member", "room_id": self.room,
                         "user_id": self.home.user.user_id, "timeout_ms": 30000}));
        door
    }
}
