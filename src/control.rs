//! The local control socket: a Unix stream socket on which the daemon takes one-line commands
//! (`ring`, `status`) and answers one line (`ok …` or `error …`). `intercom ring` is its client;
//! installers and tests press the button through it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
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

/// Binds the socket at `path`. A socket left by a dead daemon is replaced; a live daemon's is
/// refused, so two daemons never share one door.
pub fn bind(path: &Path) -> Result<UnixListener, Error> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::Unavailable(format!(
                "another intercom daemon is already listening on {}",
                path.display()
            )));
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
    Ok(listener)
}

/// Accepts connections for ever, handing each command to the driver loop.
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<Request>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            // At most one short line: a client cannot make the daemon buffer without bound.
            let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, 256));
            let answer = match reader.read_line(&mut line).await {
                Ok(_) => match Command::parse(&line) {
                    Some(command) => {
                        let (reply, rx) = oneshot::channel();
                        if requests.send(Request { command, reply }).await.is_err() {
                            "error the daemon is stopping".to_owned()
                        } else {
                            rx.await
                                .unwrap_or_else(|_| "error the daemon is stopping".to_owned())
                        }
                    }
                    None => format!(
                        "error unknown command {:?}; expected \"ring\" or \"status\"",
                        line.trim()
                    ),
                },
                Err(e) => format!("error {e}"),
            };
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// The client side: sends `command` to the daemon at `path` and returns its answer.
pub fn send(path: &Path, command: &str) -> Result<String, Error> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        Error::Unavailable(format!(
            "cannot reach the intercom daemon at {}: {e} (is `intercom run` running, and may this user use its socket?)",
            path.display()
        ))
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout))
        .and_then(|_| stream.write_all(format!("{command}\n").as_bytes()))
        .map_err(|e| Error::io("cannot send to the control socket", Some(path.into()), e))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| Error::io("no answer on the control socket", Some(path.into()), e))?;
    let answer = answer.trim_end().to_owned();
    match answer.strip_prefix("error ") {
        Some(e) => Err(Error::Unavailable(format!("the daemon refused: {e}"))),
        None => Ok(answer),
    }
}
