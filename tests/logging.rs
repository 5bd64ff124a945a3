//! Dependencies log through `tracing`; the daemon's one sink is a `log` logger. With tracing's
//! `log` feature and no subscriber, their events must arrive at our sink, filtered like ours.

use std::sync::{Arc, Mutex};

use intercom::logging::Filtered;

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
