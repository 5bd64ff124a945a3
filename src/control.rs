//! The local control socket: a Unix stream socket on which the daemon takes one-line commands
//! (`ring`, `status`) and answers one line (`ok …` or `error …`). `intercom ring` is its client;
//! installers and tests press the button through it.

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// A command that came in on the socket, with the way to answer it.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Press the door's button.
    Ring,
    /// Report the daemon's status line.
    Status,
}

impl Command {
    fn parse(line: &str) -> Option<Command> {
        match line.trim() {
            "ring" => Some(Command::Ring),
            "status" => Some(Command::Status),
            _ => None,
        }
    }
}

/// What is at `path` if it is something other than a socket ("a regular file"): the control
/// socket never replaces it.
pub fn not_a_socket(path: &Path) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let kind = meta.file_type();
    (!kind.is_socket()).then(|| crate::files::kind(&kind))
}

/// The control socket's file, as [`bind`] made it.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// The device and inode of the socket [`bind`] made.
    made: (u64, u64),
}

impl SocketFile {
    /// Removes the socket file if the path still holds the one [`bind`] made: by the time the
    /// daemon stops, someone may have put another file there, which is not the daemon's.
    pub fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_socket() && (m.dev(), m.ino()) == self.made => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!(
                        "cannot remove the control socket {}: {e}",
                        self.path.display()
                    );
                }
            }
            Ok(_) => log::warn!(
                "{} is no longer the control socket this daemon made: left alone",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

/// Binds the socket at `path`. A socket left by a dead daemon is replaced; a live daemon's is
/// refused, so two daemons never share one door. Any other file there is refused and left
/// alone: a path mistyped into the state directory must not cost the session file.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), Error> {
    if let Some(kind) = not_a_socket(path) {
        return Err(Error::io(
            "refusing to replace",
            Some(path.into()),
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{kind}, not a socket; remove it or choose another [control] socket"),
            ),
        ));
    }
    if std::fs::symlink_metadata(path).is_ok() {
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::Unavailable(format!(
                    "another intercom daemon is already listening on {}",
                    path.display()
                )))
            }
            // Nobody listens: the socket of a daemon that died.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                return Err(Error::io(
                    "cannot tell whether a daemon listens on",
                    Some(path.into()),
                    e,
                ))
            }
        }
        std::fs::remove_file(path).map_err(|e| {
            Error::io(
                "cannot remove the stale control socket",
                Some(path.into()),
                e,
            )
        })?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                "cannot create the directory of the control socket",
                Some(dir.into()),
                e,
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io("cannot listen on the control socket", Some(path.into()), e))?;
    // Owner and group (the service's) only.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io("cannot restrict the control socket", Some(path.into()), e))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io("cannot look at the control socket", Some(path.into()), e))?;
    let file = SocketFile {
        path: path.to_owned(),
        made: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

/// The most connections served at once. Those past it are answered `error busy` and closed at
/// once: idle clients (1,100 of them exhausted the daemon's descriptors) cost the daemon no
/// more than this many descriptors.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its line, and to take the answer: a wedged or idle client
/// holds one of the [`MAX_CONNECTIONS`] no longer than this.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest command line read, newline included: a client cannot make the daemon buffer
/// without bound.
pub const MAX_LINE: u64 = 256;

/// Reads one command from `read`: one line of at most [`MAX_LINE`] bytes, the first on the
/// connection, as `serve` does. `Err` is the answer's text for a line that is no command
/// (always one line, bounded: what the client sent is quoted with its control characters
/// escaped).
pub async fn read_command<R>(read: R) -> Result<Command, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("cannot read the command: {e}"))?;
    if !line.ends_with(b"\n") && line.len() as u64 >= MAX_LINE {
        return Err(format!(
            "command too long: expected one line of at most {MAX_LINE} bytes"
        ));
    }
    let text = String::from_utf8_lossy(&line);
    Command::parse(&text).ok_or_else(|| {
        let mut shown: String = text.trim().chars().take(64).collect();
        if shown.len() < text.trim().len() {
            shown.push_str("...");
        }
        format!("unknown command {shown:?}; expected \"ring\" or \"status\"")
    })
}

/// Accepts connections for ever, handing each command to the driver loop: at most
/// [`MAX_CONNECTIONS`] at once, each for at most [`CLIENT_TIMEOUT`] of reading and writing.
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<Request>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Told without waiting (a few bytes fit an empty socket's buffer), and closed. The
            // write is the system call itself: the runtime has not polled the new socket yet.
            if let Ok(stream) = stream.into_std() {
                let _ = (&stream).write(
                    format!("error busy: {MAX_CONNECTIONS} connections already open; try again\n")
                        .as_bytes(),
                );
            }
            continue;
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (read, mut write) = stream.into_split();
            let command = match tokio::time::timeout(CLIENT_TIMEOUT, read_command(read)).await {
                Ok(command) => command,
                Err(_) => Err(format!("no command within {}s", CLIENT_TIMEOUT.as_secs())),
            };
            let answer = match command {
                Ok(command) => {
                    let (reply, rx) = oneshot::channel();
                    if requests.send(Request { command, reply }).await.is_err() {
                        "error the daemon is stopping".to_owned()
                    } else {
                        rx.await
                            .unwrap_or_else(|_| "error the daemon is stopping".to_owned())
                    }
                }
                Err(e) => format!("error {e}"),
            };
            let _ = tokio::time::timeout(
                CLIENT_TIMEOUT,
                write.write_all(format!("{answer}\n").as_bytes()),
            )
            .await;
        });
    }
}

/// The longest answer the client reads.
const MAX_ANSWER: u64 = 64 << 10;

/// The client side: sends `command` to the daemon at `path` and returns its answer (`ok …`: one
/// line, or for `status` several). An `error …` answer is an error, and so
/// is a socket nobody can use, each said plainly (no daemon, a stopped daemon's socket, no
/// permission).
pub fn send(path: &Path, command: &str) -> Result<String, Error> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        let shown = path.display();
        Error::Unavailable(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "cannot reach the intercom daemon at {shown}: no such socket: the intercom daemon is not running (start it: `systemctl start intercom`), or [control] socket names another path"
            ),
            std::io::ErrorKind::ConnectionRefused => format!(
                "cannot reach the intercom daemon at {shown}: nobody listens on it: the intercom daemon is not running (the socket is one a stopped daemon left)"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "cannot reach the intercom daemon at {shown}: permission denied: this user may not use the control socket (it is for the service's user and group: run this as root, or as a member of that group)"
            ),
            _ => format!("cannot reach the intercom daemon at {shown}: {e}"),
        })
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout))
        .and_then(|_| stream.write_all(format!("{command}\n").as_bytes()))
        .map_err(|e| Error::io("cannot send to the control socket", Some(path.into()), e))?;
    // The daemon closes the connection after its answer.
    let mut answer = String::new();
    std::io::Read::take(BufReader::new(stream), MAX_ANSWER)
        .read_to_string(&mut answer)
        .map_err(|e| Error::io("no answer on the control socket", Some(path.into()), e))?;
    let answer = answer.trim_end();
    if answer.is_empty() {
        return Err(Error::Unavailable(format!(
            "no answer on the control socket {}: the daemon closed the connection",
            path.display()
        )));
    }
    match answer.strip_prefix("error ") {
        Some(e) => Err(Error::Unavailable(format!("the daemon refused: {e}"))),
        None => Ok(answer.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn bind_replaces_only_a_stale_socket_and_removes_only_its_own() {
        let rt = runtime();
        let _entered = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // A file that is not a socket is refused, named, and left as it was.
        std::fs::write(&path, "precious").unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("a regular file, not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        std::fs::remove_file(&path).unwrap();
        // A stale socket is replaced; a live one is refused.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (listener, file) = bind(&path).unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("another intercom daemon"), "{e}");
        // Its own socket is removed; a file that took the path since is not.
        file.remove();
        assert!(!path.exists());
        drop(listener);
        let (_listener, file) = bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        file.remove();
        assert!(
            path.exists(),
            "another socket at the path is not the daemon's"
        );
    }
}
