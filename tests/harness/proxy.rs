//! A plain HTTP proxy in front of Synapse that can break sync responses: each `/sync` response
//! that carries an update of a given room gets that update's `timeline.limited` turned into a
//! string, which matrix-sdk's types refuse (the whole response fails to read). Everything else
//! passes through as it is.
//!
//! One thread a client connection; each request is sent upstream as HTTP/1.0 on a connection of
//! its own (so the answer has no chunking and ends when the connection does), and answered to
//! the client with a `Content-Length`, keeping its connection open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// What the proxy breaks and how often it has.
#[derive(Default)]
struct Breaking {
    /// The room whose updates break the sync responses that carry them.
    room: Mutex<Option<String>>,
    broken: AtomicUsize,
}

pub struct Proxy {
    pub port: u16,
    breaking: Arc<Breaking>,
}

impl Proxy {
    /// A proxy on a free port of 127.0.0.1 for the server on `upstream` (a port of 127.0.0.1).
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let breaking = Arc::new(Breaking::default());
        let shared = Arc::clone(&breaking);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let breaking = Arc::clone(&shared);
                std::thread::spawn(move || serve(client, upstream, &breaking));
            }
        });
        Proxy { port, breaking }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, every sync response that carries an update of `room` is broken.
    pub fn break_syncs_with(&self, room: &str) {
        *self.breaking.room.lock().unwrap() = Some(room.to_owned());
    }

    /// How many sync responses were broken so far.
    pub fn broken(&self) -> usize {
        self.breaking.broken.load(Ordering::SeqCst)
    }
}

/// A request or response head: the first line and the headers, and the body's length.
struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn read(reader: &mut impl BufRead) -> Option<Head> {
        let mut first = String::new();
        if reader.read_line(&mut first).ok()? == 0 {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Some(Head {
            first: first.trim_end().to_owned(),
            headers,
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers but the ones about the connection and the body's framing.
    fn passed_on(&self) -> impl Iterator<Item = &(String, String)> {
        self.headers.iter().filter(|(n, _)| {
            ![
                "connection",
                "keep-alive",
                "content-length",
                "transfer-encoding",
            ]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
        })
    }
}

fn serve(client: TcpStream, upstream: u16, breaking: &Breaking) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    while let Some(request) = Head::read(&mut reader) {
        let length: usize = request
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request.first.splitn(3, ' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        let mut out = format!("{method} {target} HTTP/1.0\r\n");
        for (name, value) in request.passed_on() {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {length}\r\nConnection: close\r\n\r\n"
        ));
        if up
            .write_all(out.as_bytes())
            .and_then(|_| up.write_all(&body))
            .is_err()
        {
            return;
        }
        let mut up_reader = BufReader::new(up);
        let Some(response) = Head::read(&mut up_reader) else {
            return;
        };
        let mut answer = Vec::new();
        if up_reader.read_to_end(&mut answer).is_err() {
            return;
        }
        let is_sync = target.contains("/sync");
        if is_sync && response.first.contains(" 200") {
            answer = break_if_asked(answer, breaking);
        }
        let status = response
            .first
            .split_once(' ')
            .map_or("502 Bad Gateway", |(_, status)| status);
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (name, value) in response.passed_on() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", answer.len()));
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(&answer))
            .is_err()
        {
            return;
        }
    }
}

/// The sync response `body`, broken when it carries an update of the room asked for.
fn break_if_asked(body: Vec<u8>, breaking: &Breaking) -> Vec<u8> {
    let Some(room) = breaking.room.lock().unwrap().clone() else {
        return body;
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let update = &mut value["rooms"]["join"][room.as_str()];
    if !update.is_object() {
        return body;
    }
    update["timeline"]["limited"] = json!("not a boolean");
    breaking.broken.fetch_add(1, Ordering::SeqCst);
    serde_json::to_vec(&value).unwrap()
}
