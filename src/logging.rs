//! One log sink for everything: the journal under systemd, readable stderr otherwise.
//!
//! Our own code logs through `log`, with key-values that become journal fields (`CALL_ID`,
//! `ROOM`, `PEER`). Dependencies that use `tracing` (matrix-sdk, webrtc) reach the same sink:
//! `tracing` is built with its `log` feature and no tracing subscriber is ever installed, so each
//! of their events is handed on as a `log` record and passes the same filter.

use std::io::Write;
use std::time::Instant;

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

/// Readable lines on stderr: time since start, level, target, message, key-values.
pub struct Stderr {
    start: Instant,
}

impl Default for Stderr {
    fn default() -> Self {
        Stderr {
            start: Instant::now(),
        }
    }
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
        let t = self.start.elapsed();
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{:>4}.{:03}s {:<5} {}] {}{}",
            t.as_secs(),
            t.subsec_millis(),
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
