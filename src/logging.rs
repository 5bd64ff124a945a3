//! One log sink for everything: the journal under systemd, readable stderr otherwise.
//!
//! Our own code logs through `log`, with key-values that become journal fields (`CALL_ID`,
//! `ROOM`, `PEER`). Dependencies that use `tracing` (matrix-sdk, webrtc) reach the same sink:
//! `tracing` is built with its `log` feature and no tracing subscriber is ever installed, so each
//! of their events is handed on as a `log` record and passes the same filter.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Log, Metadata, Record};

/// A filter in front of a sink.
pub struct Filtered<S> {
    filter: env_filter::Filter,
    sink: S,
}

impl<S: Log> Filtered<S> {
    /// `spec` is a `RUST_LOG`-style filter (`info,intercom=debug,matrix_sdk=warn`).
    pub fn new(spec: &str, sink: S) -> Result<Self, String> {
        let filter = env_filter::Builder::new()
            .try_parse(spec)
            .map_err(|e| format!("invalid log filter {spec:?}: {e}"))?
            .build();
        Ok(Filtered { filter, sink })
    }

    /// Installs this logger for the whole process.
    pub fn install(self) -> Result<(), String>
    where
        S: Send + Sync + 'static,
    {
        let max = self.filter.filter();
        log::set_boxed_logger(Box::new(self)).map_err(|e| e.to_string())?;
        log::set_max_level(max);
        Ok(())
    }
}

impl<S: Log> Log for Filtered<S> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata)
    }
    fn log(&self, record: &Record) {
        if self.filter.matches(record) {
            self.sink.log(record);
        }
    }
    fn flush(&self) {
        self.sink.flush();
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
        Filtered::new(&spec, Stderr::default())?.install()
    }
}
