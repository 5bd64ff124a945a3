//! Synapse from PyPI, on loopback, with SQLite and a config generated here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use super::{base64_unpadded, free_tcp_port, poll, random_bytes, random_string, tail};

/// The venv the set-up script installs Synapse into (see tests/setup).
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("INTERCOM_SYNAPSE_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    cache.join("intercom-dev/venv")
}

/// TURN settings to wire into Synapse.
pub struct Turn {
    pub uris: Vec<String>,
    pub shared_secret: String,
}

pub struct Synapse {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    registration_secret: String,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub localpart: String,
    pub user_id: String,
    pub password: String,
}

impl Synapse {
    pub fn start(turn: Option<&Turn>) -> Synapse {
        let python = venv().join("bin/python");
        assert!(
            python.exists(),
            "Synapse's venv is missing at {}: run tests/setup first",
            venv().display()
        );
        let dir = tempfile::Builder::new()
            .prefix("synapse-")
            .tempdir()
            .unwrap();
        let port = free_tcp_port();
        let registration_secret = random_string(32);
        write_config(dir.path(), port, &registration_secret, turn);
        let mut synapse = Synapse {
            child: None,
            dir,
            port,
            registration_secret,
        };
        synapse.run();
        synapse
    }

    fn run(&mut self) {
        let python = venv().join("bin/python");
        let child = Command::new(python)
            .args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("{}/_matrix/client/versions", self.url());
        poll("Synapse to answer", Duration::from_secs(60), || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("Synapse exited ({status}):\n{}", self.logs());
            }
            ureq::get(&url).call().ok()
        });
    }

    /// Stops Synapse (SIGTERM, then wait) and keeps its database.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and database.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Registers a user through the shared-secret admin API.
    pub fn register(&self, localpart: &str) -> User {
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let nonce: Value = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let nonce = nonce["nonce"].as_str().unwrap().to_owned();
        let password = random_string(16);
        let mut mac = Hmac::<Sha1>::new_from_slice(self.registration_secret.as_bytes()).unwrap();
        mac.update(format!("{nonce}\0{localpart}\0{password}\0notadmin").as_bytes());
        let mac: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let reply: Value = ureq::post(&url)
            .send_json(json!({
                "nonce": nonce, "username": localpart, "password": password,
                "admin": false, "mac": mac,
            }))
            .unwrap_or_else(|e| panic!("registering {localpart}: {e}"))
            .body_mut()
            .read_json()
            .unwrap();
        User {
            localpart: localpart.to_owned(),
            user_id: reply["user_id"].as_str().unwrap().to_owned(),
            password,
        }
    }

    /// The last lines of Synapse's logs.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- homeserver.log\n{}\n--- stderr\n{}",
            tail(&d.join("homeserver.log"), 80),
            tail(&d.join("stderr.log"), 40)
        )
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== Synapse on port {} ===\n{}", self.port, self.logs());
        }
        self.stop();
    }
}

fn write_config(dir: &Path, port: u16, registration_secret: &str, turn: Option<&Turn>) {
    let key = base64_unpadded(&random_bytes(32));
    std::fs::write(dir.join("signing.key"), format!("ed25519 a_test {key}\n")).unwrap();
    let limit = "{per_second: 10000, burst_count: 10000}";
    let turn = turn
        .map(|t| {
            format!(
                "turn_uris: {:?}\nturn_shared_secret: {:?}\nturn_user_lifetime: 1h\nturn_allow_guests: false\n",
                t.uris, t.shared_secret
            )
        })
        .unwrap_or_default();
    let d = dir.display();
    let config = format!(
        r#"server_name: "localhost"
public_baseurl: "http://127.0.0.1:{port}/"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
log_config: "{d}/log.yaml"
media_store_path: "{d}/media"
signing_key_path: "{d}/signing.key"
registration_shared_secret: "{registration_secret}"
macaroon_secret_key: "{mac}"
form_secret: "{form}"
report_stats: false
enable_metrics: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
bcrypt_rounds: 4
presence:
  enabled: false
url_preview_enabled: false
rc_message: {limit}
rc_registration: {limit}
rc_login:
  address: {limit}
  account: {limit}
  failed_attempts: {limit}
rc_joins:
  local: {limit}
  remote: {limit}
rc_joins_per_room: {limit}
rc_invites:
  per_room: {limit}
  per_user: {limit}
  per_issuer: {limit}
rc_3pid_validation: {limit}
rc_admin_redaction: {limit}
rc_key_requests: {limit}
rc_room_creation: {limit}
rc_delayed_event_mgmt: {limit}
{turn}"#,
        mac = random_string(32),
        form = random_string(32),
    );
    std::fs::write(dir.join("homeserver.yaml"), config).unwrap();
    std::fs::write(
        dir.join("log.yaml"),
        format!(
            r#"version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "{d}/homeserver.log"
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"#
        ),
    )
    .unwrap();
}
