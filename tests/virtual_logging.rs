//! Dependencies log through `tracing`; the daemon's one sink is a `log` logger. With tracing's
//! `log` feature and no subscriber, their events must arrive at our sink, filtered like ours.
//! The audit lines pass any filter, dependency messages that tell of nothing wrong go to
//! `debug`, lines about others' input are held back past a few a minute, and the time on
//! stderr is the wall clock's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use intercom::logging::{rfc3339_utc, Admit, Filtered, Limiter, AUDIT, BURST};
use log::{Level, Log, Record};

/// (target, message, key-values, level) of one record.
type Got = (String, String, String, Level);

/// Every record the sink got.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<Got>>>);

impl log::Log for Memory {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let mut kv = String::new();
        struct V<'a>(&'a mut String);
        impl<'k> log::kv::VisitSource<'k> for V<'_> {
            fn visit_pair(
                &mut self,
                k: log::kv::Key<'k>,
                v: log::kv::Value<'k>,
            ) -> Result<(), log::kv::Error> {
                self.0.push_str(&format!("{k}={v};"));
                Ok(())
            }
        }
        let _ = record.key_values().visit(&mut V(&mut kv));
        self.0.lock().unwrap().push((
            record.target().to_owned(),
            record.args().to_string(),
            kv,
            record.level(),
        ));
    }
    fn flush(&self) {}
}

#[test]
fn tracing_events_and_log_fields_reach_the_one_sink_through_the_filter() {
    let memory = Memory::default();
    Filtered::new("info,noisy_dep=warn", memory.clone())
        .unwrap()
        .install()
        .unwrap();

    tracing::info!(target: "matrix_sdk::sync", "sync ok");
    tracing::info!(target: "noisy_dep", "filtered out");
    tracing::warn!(target: "noisy_dep", "kept");
    log::debug!("below the filter");
    log::info!(call_id = "c1", room = "!r"; "call ended");

    let got = memory.0.lock().unwrap().clone();
    let messages: Vec<&str> = got.iter().map(|(_, m, _, _)| m.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("sync ok")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("kept")), "{messages:?}");
    assert!(
        !messages.iter().any(|m| m.contains("filtered out")),
        "{messages:?}"
    );
    assert!(!messages.contains(&"below the filter"), "{messages:?}");
    let fields = &got.iter().find(|(_, m, _, _)| m == "call ended").unwrap().2;
    assert_eq!(fields, "call_id=c1;room=!r;");
}

/// Hands one record to `logger` as the `log` macros would (without installing it).
fn log(logger: &impl Log, level: Level, target: &str, message: &str, kv: &[(&str, &str)]) {
    logger.log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{message}"))
            .key_values(&kv)
            .build(),
    );
}

#[test]
fn audit_lines_pass_a_filter_that_says_warn() {
    let memory = Memory::default();
    let logger = Filtered::new("warn", memory.clone()).unwrap();
    assert!(logger.enabled(
        &log::Metadata::builder()
            .level(Level::Info)
            .target(AUDIT)
            .build()
    ));
    log(&logger, Level::Info, AUDIT, "door opened by @alice:hs", &[]);
    log(
        &logger,
        Level::Info,
        "intercom::daemon",
        "status: Idle",
        &[],
    );
    let got = memory.0.lock().unwrap().clone();
    let messages: Vec<&str> = got.iter().map(|(_, m, _, _)| m.as_str()).collect();
    assert_eq!(messages, ["door opened by @alice:hs"]);
}

#[test]
fn dependency_messages_that_tell_of_nothing_wrong_go_to_debug() {
    let ice = "[controlled]: pingAllCandidates called with no candidate pairs. Connection is not possible yet.";
    let not_found = "Error while sending request: Api(Server(MatrixError(Error { status_code: 404, body: Standard(StandardErrorBody { kind: NotFound, message: \"Account data not found\" }) })))";
    let refused = "Error while sending request: Reqwest(reqwest::Error { kind: Request, source: ConnectError })";
    let utd = "Failed to decrypt a room event: The room key was missing";
    let malformed = "Error deserializing event: missing field `call_id` at line 1 column 6003";
    let send = |logger: &Filtered<Memory>| {
        log(logger, Level::Warn, "rtc_ice::agent", ice, &[]);
        log(
            logger,
            Level::Error,
            "matrix_sdk::http_client",
            not_found,
            &[],
        );
        log(
            logger,
            Level::Error,
            "matrix_sdk::http_client",
            refused,
            &[],
        );
        log(logger, Level::Warn, "matrix_sdk_crypto::machine", utd, &[]);
        log(
            logger,
            Level::Warn,
            "matrix_sdk_base::response_processors::timeline",
            malformed,
            &[],
        );
        log(
            logger,
            Level::Warn,
            "rtc_ice::agent",
            "discard message from (x), unknown TransactionID",
            &[],
        );
    };
    // At `warn`, only what says something is wrong.
    let memory = Memory::default();
    send(&Filtered::new("warn", memory.clone()).unwrap());
    let got = memory.0.lock().unwrap().clone();
    let messages: Vec<&str> = got.iter().map(|(_, m, _, _)| m.as_str()).collect();
    assert_eq!(
        messages,
        [refused, "discard message from (x), unknown TransactionID"]
    );
    // At `debug` they are all there, the demoted ones at `debug`.
    let memory = Memory::default();
    send(&Filtered::new("debug", memory.clone()).unwrap());
    let levels: Vec<(String, Level)> = memory
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m, _, l)| (m.clone(), *l))
        .collect();
    assert_eq!(
        levels,
        [
            (ice.to_owned(), Level::Debug),
            (not_found.to_owned(), Level::Debug),
            (refused.to_owned(), Level::Error),
            (utd.to_owned(), Level::Debug),
            (malformed.to_owned(), Level::Debug),
            (
                "discard message from (x), unknown TransactionID".to_owned(),
                Level::Warn
            ),
        ]
    );
}

#[test]
fn a_flood_from_one_sender_is_held_back_and_others_still_heard() {
    let memory = Memory::default();
    let logger = Filtered::new("info", memory.clone()).unwrap();
    let bad = [
        ("sender", "@mallory:hs"),
        ("kind", "malformed m.call.invite events"),
    ];
    for i in 0..500 {
        log(
            &logger,
            Level::Warn,
            "intercom::matrix",
            &format!("dropping a call event {i}"),
            &bad,
        );
    }
    let other = [
        ("sender", "@bob:hs"),
        ("kind", "malformed m.call.invite events"),
    ];
    log(
        &logger,
        Level::Warn,
        "intercom::matrix",
        "dropping bob's",
        &other,
    );
    log(&logger, Level::Info, AUDIT, "door opened by @alice:hs", &[]);
    let got = memory.0.lock().unwrap().clone();
    let messages: Vec<&str> = got.iter().map(|(_, m, _, _)| m.as_str()).collect();
    let first: Vec<String> = (0..BURST)
        .map(|i| format!("dropping a call event {i}"))
        .collect();
    assert_eq!(
        &messages[..BURST as usize],
        first.as_slice(),
        "{messages:?}"
    );
    assert!(
        messages[BURST as usize].contains("held back"),
        "{messages:?}"
    );
    assert!(
        messages[BURST as usize].contains("@mallory:hs"),
        "{messages:?}"
    );
    assert_eq!(
        &messages[BURST as usize + 1..],
        ["dropping bob's", "door opened by @alice:hs"]
    );
    // The summary line is a warning like the ones it stands for, with the same fields.
    assert_eq!(got[BURST as usize].3, Level::Warn);
    assert_eq!(
        got[BURST as usize].2,
        "sender=@mallory:hs;kind=malformed m.call.invite events;"
    );
}

#[test]
fn the_limiter_logs_a_burst_a_window_and_then_tells_how_many_it_held_back() {
    let t0 = Instant::now();
    let mut limiter = Limiter::new(3, Duration::from_secs(60));
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    let got: Vec<Admit> = (0..6)
        .map(|i| limiter.admit(s(i), "@m:hs", "kind"))
        .collect();
    assert_eq!(
        got,
        [
            Admit::Log { held: 0 },
            Admit::Log { held: 0 },
            Admit::Log { held: 0 },
            Admit::HoldFirst,
            Admit::Hold,
            Admit::Hold,
        ]
    );
    // Another kind, another sender: counted apart.
    assert_eq!(
        limiter.admit(s(6), "@m:hs", "other"),
        Admit::Log { held: 0 }
    );
    assert_eq!(limiter.admit(s(6), "@n:hs", "kind"), Admit::Log { held: 0 });
    // The window is counted from its first line; the next line tells of the three held back.
    assert_eq!(limiter.admit(s(59), "@m:hs", "kind"), Admit::Hold);
    assert_eq!(
        limiter.admit(s(60), "@m:hs", "kind"),
        Admit::Log { held: 4 }
    );
    assert_eq!(
        limiter.admit(s(61), "@m:hs", "kind"),
        Admit::Log { held: 0 }
    );
    // A quiet sender starts afresh, with nothing to tell.
    assert_eq!(
        limiter.admit(s(500), "@m:hs", "kind"),
        Admit::Log { held: 0 }
    );
}

#[test]
fn the_limiter_stays_bounded_however_many_senders_there_are() {
    let t0 = Instant::now();
    let mut limiter = Limiter::new(BURST, Duration::from_secs(60));
    let logged = (0..10_000)
        .filter(|i| {
            matches!(
                limiter.admit(t0, &format!("@u{i}:hs"), "kind"),
                Admit::Log { .. } | Admit::HoldFirst
            )
        })
        .count();
    assert_eq!(logged, Limiter::KEYS + BURST as usize + 1);
    // Once their window has passed, new senders get slots of their own again.
    let later = t0 + Duration::from_secs(61);
    for i in 0..Limiter::KEYS {
        assert_eq!(
            limiter.admit(later, &format!("@v{i}:hs"), "kind"),
            Admit::Log { held: 0 }
        );
    }
}

#[test]
fn wall_clock_time_is_utc_rfc3339_with_milliseconds() {
    let at = |secs: i64, ms: u64| {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_millis(ms)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_millis(ms)
        }
    };
    for (secs, ms, text) in [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (0, 1, "1970-01-01T00:00:00.001Z"),
        (-1, 0, "1969-12-31T23:59:59.000Z"),
        (-1, 999, "1969-12-31T23:59:59.999Z"),
        // 2000 is a leap year (divisible by 400), 2100 is not (by 100), 2024 is (by 4).
        (951_782_400, 0, "2000-02-29T00:00:00.000Z"),
        (951_868_800, 0, "2000-03-01T00:00:00.000Z"),
        (1_709_251_199, 999, "2024-02-29T23:59:59.999Z"),
        (4_107_499_200, 500, "2100-02-28T12:00:00.500Z"),
        (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
        (-2_203_891_200, 0, "1900-03-01T00:00:00.000Z"),
        (1_796_542_863, 123, "2026-12-06T07:41:03.123Z"),
        (2_147_483_648, 0, "2038-01-19T03:14:08.000Z"),
    ] {
        assert_eq!(rfc3339_utc(at(secs, ms)), text, "{secs} s {ms} ms");
    }
    // Every day from 1970 to 2400, against a calendar counted day by day.
    let (mut y, mut m, mut d) = (1970u32, 1u32, 1u32);
    for day in 0..157_000 {
        assert_eq!(
            rfc3339_utc(at(day * 86_400 + 43_200, 0)),
            format!("{y:04}-{m:02}-{d:02}T12:00:00.000Z")
        );
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        d += 1;
        if d > days[m as usize - 1] {
            (d, m) = (1, m + 1);
        }
        if m > 12 {
            (m, y) = (1, y + 1);
        }
    }
    assert_eq!((y, m, d), (2399, 11, 8));
}
