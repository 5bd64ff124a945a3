//! Dependencies log through `tracing`; the daemon's one sink is a `log` logger. With tracing's
//! `log` feature and no subscriber, their events must arrive at our sink, filtered like ours.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use intercom::logging::{rfc3339_utc, Filtered};

#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<(String, String, String)>>>);

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
        self.0
            .lock()
            .unwrap()
            .push((record.target().to_owned(), record.args().to_string(), kv));
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
    let messages: Vec<&str> = got.iter().map(|(_, m, _)| m.as_str()).collect();
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
    let fields = &got.iter().find(|(_, m, _)| m == "call ended").unwrap().2;
    assert_eq!(fields, "call_id=c1;room=!r;");
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
