//! Debian's coturn on loopback, with TURN REST credentials (a shared secret Synapse also has).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::synapse::Turn;
use super::{free_udp_tcp_port, random_string};

pub struct Coturn {
    child: Child,
    pub port: u16,
    pub secret: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Coturn {
    pub fn start() -> Coturn {
        let port = free_udp_tcp_port();
        let secret = random_string(24);
        let dir = tempfile::Builder::new()
            .prefix("coturn-")
            .tempdir()
            .unwrap();
        let relay_min = 40000 + (port % 1000) * 20;
        let mut child = Command::new("turnserver")
            .args([
                "-n", // no configuration file: everything is on this command line
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                "--allow-loopback-peers",
                "--use-auth-secret",
                "--realm=localhost",
                "--fingerprint",
                "--log-file=stdout",
                "--simple-log",
            ])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!("--min-port={relay_min}"))
            .arg(format!("--max-port={}", relay_min + 19))
            .arg("--pidfile=/dev/null")
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver (Debian's coturn): {e}"));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Printed once the listeners and relay servers are up.
                if line.contains("Total General servers") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        if ready.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            panic!(
                "coturn did not open its UDP listener:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        Coturn {
            child,
            port,
            secret,
            log,
            _dir: dir,
        }
    }

    /// The settings that wire this server into Synapse.
    pub fn synapse_settings(&self) -> Turn {
        Turn {
            uris: vec![
                format!("turn:127.0.0.1:{}?transport=udp", self.port),
                format!("turn:127.0.0.1:{}?transport=tcp", self.port),
            ],
            shared_secret: self.secret.clone(),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            let from = log.len().saturating_sub(40);
            eprintln!(
                "=== coturn on port {} ===\n{}",
                self.port,
                log[from..].join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
