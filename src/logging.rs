//! One log sink for everything: the journal under systemd, readable stderr otherwise.
//!
//! Our own code logs through `log`, with key-values that become journal fields (`CALL_ID`,
//! `ROOM`, `PEER`). Dependencies that use `tracing` (matrix-sdk, webrtc) reach the same sink:
//! `tracing` is built with its `log` feature and no tracing subscriber is ever installed, so each
//! of their events is handed on as a `log` record and passes the same filter.
//!
//! Three rules keep the journal truthful and readable:
//! - the audit lines (who opened the door, target [`AUDIT`]) pass whatever the filter says and
//!   are never held back;
//! - a few dependency messages that tell of nothing wrong are logged at `debug` instead
//!   ([`DEMOTED`]);
//! - a line about someone else's input names its `sender` and `kind` as key-values, and the
//!   first [`BURST`] of each sender and kind a minute are logged, the rest held back and counted
//!   ([`Limiter`]): a room member sending garbage cannot flood the journal.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The target of the audit lines ("door opened by …"): never filtered out, never held back.
pub const AUDIT: &str = "intercom::audit";

/// How many lines of one sender and kind are logged a [`WINDOW`].
pub const BURST: u32 = 5;

/// The window of [`BURST`].
pub const WINDOW: Duration = Duration::from_secs(60);

/// A filter in front of a sink.
pub struct Filtered<S> {
    filter: env_filter::Filter,
    limiter: Mutex<Limiter>,
    sink: S,
}

impl<S: Log> Filtered<S> {
    /// `spec` is a `RUST_LOG`-style filter (`info,intercom=debug,matrix_sdk=warn`).
    pub fn new(spec: &str, sink: S) -> Result<Self, String> {
        let filter = env_filter::Builder::new()
            .try_parse(spec)
            .map_err(|e| format!("invalid log filter {spec:?}: {e}"))?
            .build();
        Ok(Filtered {
            filter,
            limiter: Mutex::new(Limiter::new(BURST, WINDOW)),
            sink,
        })
    }

    /// Installs this logger for the whole process.
    pub fn install(self) -> Result<(), String>
    where
        S: Send + Sync + 'static,
    {
        // The audit lines are `info`: they must reach the logger whatever the filter says.
        let max = self.filter.filter().max(LevelFilter::Info);
        log::set_boxed_logger(Box::new(self)).map_err(|e| e.to_string())?;
        log::set_max_level(max);
        Ok(())
    }

    /// Past the filter and the limiter: to the sink, or not.
    fn pass(&self, record: &Record) {
        if !self.filter.matches(record) {
            return;
        }
        let kvs = record.key_values();
        let (Some(sender), Some(kind)) = (kvs.get("sender".into()), kvs.get("kind".into())) else {
            self.sink.log(record);
            return;
        };
        let (sender, kind) = (sender.to_string(), kind.to_string());
        let admit = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(Instant::now(), &sender, &kind);
        let say = |args: std::fmt::Arguments| {
            let fields = [("sender", sender.as_str()), ("kind", kind.as_str())];
            self.sink.log(
                &Record::builder()
                    .args(args)
                    .level(record.level())
                    .target(record.target())
                    .key_values(&fields)
                    .build(),
            );
        };
        match admit {
            Admit::Log { held: 0 } => self.sink.log(record),
            Admit::Log { held } => {
                say(format_args!(
                    "{sender}: {held} more lines about {kind} were held back"
                ));
                self.sink.log(record);
            }
            Admit::HoldFirst => say(format_args!(
                "{sender}: more than {BURST} lines about {kind} within {}s: the rest of that time \
                 they are held back, and counted in the next such line",
                WINDOW.as_secs()
            )),
            Admit::Hold => {}
        }
    }
}

impl<S: Log> Log for Filtered<S> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.target() == AUDIT || self.filter.enabled(metadata)
    }
    fn log(&self, record: &Record) {
        if record.target() == AUDIT {
            self.sink.log(record);
            return;
        }
        match demoted(record) {
            Some(level) => self.pass(
                &Record::builder()
                    .args(*record.args())
                    .level(level)
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .key_values(record.key_values())
                    .build(),
            ),
            None => self.pass(record),
        }
    }
    fn flush(&self) {
        self.sink.flush();
    }
}

/// Dependency messages that tell of nothing wrong: (target, words the message has, the level it
/// is logged at instead). They stay visible at `debug`.
pub const DEMOTED: &[(&str, &[&str], Level)] = &[
    // The ICE agent says so every 200 ms until the peer's first candidate arrives, which is how
    // every call starts.
    (
        "rtc_ice",
        &["pingAllCandidates called with no candidate pairs"],
        Level::Debug,
    ),
    // matrix-sdk logs every failed request at `error` before its caller decides. A 404
    // M_NOT_FOUND is how the homeserver says "there is none" to the SDK's probes (secret storage
    // and key backup account data at start, a plain room's encryption state before its first
    // send), and the SDK takes it so. A request of the door's own that fails is logged by the
    // adapter, in its own words.
    (
        "matrix_sdk::http_client",
        &[
            "Error while sending request",
            "status_code: 404",
            "kind: NotFound",
        ],
        Level::Debug,
    ),
    // Said of every timeline event that is not well-formed, with neither sender nor room: any
    // member can make it flood. The adapter warns of the malformed call events, with the sender,
    // held back past a few a minute; a malformed event of any other type is nothing to the door.
    (
        "matrix_sdk_base::response_processors::timeline",
        &["Error deserializing event"],
        Level::Debug,
    ),
    // It names neither the sender nor the room: the adapter logs each undecryptable event once,
    // with both.
    (
        "matrix_sdk_crypto",
        &["Failed to decrypt a room event"],
        Level::Debug,
    ),
];

/// The level `record` is logged at instead, when it is one of [`DEMOTED`].
fn demoted(record: &Record) -> Option<Level> {
    let target = record.target();
    let mut message = None;
    DEMOTED.iter().find_map(|(prefix, words, level)| {
        let ours = target == *prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with("::"));
        if !ours || record.level() >= *level {
            return None;
        }
        let message = message.get_or_insert_with(|| record.args().to_string());
        words.iter().all(|w| message.contains(w)).then_some(*level)
    })
}

/// What [`Limiter::admit`] says of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it; `held` lines of its sender and kind were held back before it (say so first).
    Log { held: u64 },
    /// Hold it back, and say that the rest will be: the first held back in its window.
    HoldFirst,
    /// Hold it back.
    Hold,
}

/// The first `burst` lines of each (sender, kind) a window are logged, the rest held back and
/// counted; the count is told with the first line of the next window. Takes `now`, reads no
/// clock. Remembers at most [`Limiter::KEYS`] pairs: beyond that, the senders of the newest
/// share one count, so the memory and the lines stay bounded however many senders there are.
#[derive(Debug)]
pub struct Limiter {
    burst: u32,
    window: Duration,
    seen: HashMap<(String, String), Slot>,
}

#[derive(Debug)]
struct Slot {
    since: Instant,
    logged: u32,
    held: u64,
}

impl Limiter {
    /// How many (sender, kind) pairs are remembered.
    pub const KEYS: usize = 256;

    pub fn new(burst: u32, window: Duration) -> Limiter {
        Limiter {
            burst,
            window,
            seen: HashMap::new(),
        }
    }

    /// Whether a line about `kind` from `sender` is logged at `now`.
    pub fn admit(&mut self, now: Instant, sender: &str, kind: &str) -> Admit {
        let mut key = (sender.to_owned(), kind.to_owned());
        if !self.seen.contains_key(&key) && self.seen.len() >= Self::KEYS {
            let window = self.window;
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.since) < window);
            if self.seen.len() >= Self::KEYS {
                key.0 = "(other senders)".to_owned();
            }
        }
        let slot = self.seen.entry(key).or_insert(Slot {
            since: now,
            logged: 0,
            held: 0,
        });
        if now.saturating_duration_since(slot.since) >= self.window {
            let held = slot.held;
            *slot = Slot {
                since: now,
                logged: 1,
                held: 0,
            };
            return Admit::Log { held };
        }
        if slot.logged < self.burst {
            slot.logged += 1;
            return Admit::Log { held: 0 };
        }
        slot.held += 1;
        if slot.held == 1 {
            Admit::HoldFirst
        } else {
            Admit::Hold
        }
    }
}

/// Readable lines on stderr: the wall-clock time (UTC, to match the homeserver's and the
/// phone's logs), level, target, message, key-values.
#[derive(Default)]
pub struct Stderr;

/// `t` in UTC as RFC 3339 with milliseconds: `2026-12-06T07:41:03.123Z`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let ms: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    };
    let (days, ms) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days as i64);
    let secs = ms / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): eras of 400 years, years starting in March so that the leap day ends
/// them.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct KvLine(String);

impl<'kvs> log::kv::VisitSource<'kvs> for KvLine {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push_str(&format!(" {key}={value}"));
        Ok(())
    }
}

impl Log for Stderr {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        let mut kv = KvLine(String::new());
        let _ = record.key_values().visit(&mut kv);
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{} {:<5} {}] {}{}",
            rfc3339_utc(SystemTime::now()),
            record.level(),
            record.target(),
            record.args(),
            kv.0
        );
    }
    fn flush(&self) {}
}

/// Dependencies speak at `warn` unless the filter names them: their `info` is mostly tracing
/// spans turned into records (one per request, per JSON path of a push rule...), which tell a
/// reader of the journal nothing. Span enter/exit records are never wanted.
const QUIET_DEPENDENCIES: &str = "matrix_sdk=warn,matrix_sdk_base=warn,matrix_sdk_crypto=warn,\
matrix_sdk_sqlite=warn,matrix_sdk_common=warn,matrix_sdk_crypto::backups=error,ruma=warn,\
ruma_common=warn,ruma_events=warn,webrtc=warn,rtc=error,rtc_ice=warn,rtc_dtls=error,rtc_srtp=warn,\
rtc_sctp=warn,tracing::span=off";

/// Sets up logging for the process: `RUST_LOG` wins over the configured `filter`.
pub fn init(filter: &str) -> Result<(), String> {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_owned());
    let spec = format!("{QUIET_DEPENDENCIES},{spec}");
    if systemd_journal_logger::connected_to_journal() {
        let journal = systemd_journal_logger::JournalLog::new()
            .map_err(|e| format!("cannot open the journal socket: {e}"))?
            .with_syslog_identifier("intercom".to_owned());
        Filtered::new(&spec, journal)?.install()
    } else {
        Filtered::new(&spec, Stderr)?.install()
    }
}
