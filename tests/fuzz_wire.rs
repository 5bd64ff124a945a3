//! Property test of the wire decoder (`matrix::wire::from_wire`): the raw JSON of every
//! `m.call.*` event as matrix-js-sdk 43 sent it (tests/fixtures/js-sdk-43), mutated — keys
//! removed, values of the wrong type, huge or empty strings, numbers out of range, deep nesting,
//! bytes of the serialised text flipped, inserted or cut — never panics; what it accepts has a
//! call id, names its sender, and is bounded; and what it accepts translates back to the wire
//! without a panic either.
//!
//! `INTERCOM_FUZZ_CASES` sets the number of cases (default 100 000, about 14 s in a debug build;
//! 1 000 000 for a long run by hand: `INTERCOM_FUZZ_CASES=1000000 cargo test --test fuzz_wire`,
//! which took 141 s and accepted 332 617 of them, with no panic);
//! `INTERCOM_FUZZ_SEED` the first seed, to replay a failure.

use intercom::call::{CallEventBody, RoomId};
use intercom::matrix::wire::{from_wire, to_wire, MAX_EVENT_BYTES};
use serde_json::{json, Map, Value};

#[path = "harness/rng.rs"]
mod rng;

use rng::Rng;

fn fixtures() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/js-sdk-43");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
        }
    }
    assert!(out.len() >= 9, "only {} fixtures", out.len());
    out
}

/// A value of some other kind than JSON usually carries there.
fn weird_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(14) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1.5e300),
        6 => json!(""),
        7 => json!("x".repeat(if rng.chance(5) { 70_000 } else { 300 })),
        8 => json!("\u{0}\u{202e}\u{fffd}🚪"),
        9 => json!("1"),
        10 => json!([]),
        11 => json!({}),
        12 if depth < 6 => {
            let n = rng.below(4);
            Value::Array((0..n).map(|_| weird_value(rng, depth + 1)).collect())
        }
        _ if depth < 6 => {
            let mut m = Map::new();
            for key in [
                "sdp",
                "type",
                "candidate",
                "call_id",
                "party_id",
                "version",
                "x",
            ] {
                if rng.chance(30) {
                    m.insert(key.into(), weird_value(rng, depth + 1));
                }
            }
            Value::Object(m)
        }
        _ => json!(0),
    }
}

/// Changes one place somewhere inside `v`.
fn mutate(rng: &mut Rng, v: &mut Value, depth: u32) {
    match v {
        Value::Object(m) if !m.is_empty() && (depth < 8) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = keys[rng.below(keys.len() as u64) as usize].clone();
            match rng.below(6) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(key, weird_value(rng, depth));
                }
                2 => {
                    m.insert(format!("{key}_"), weird_value(rng, depth));
                }
                _ => mutate(rng, m.get_mut(&key).unwrap(), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 8 => {
            let i = rng.below(a.len() as u64) as usize;
            match rng.below(5) {
                0 => {
                    a.remove(i);
                }
                1 => a.push(weird_value(rng, depth)),
                2 => {
                    // Many of one element: a flood of candidates or streams.
                    let item = a[i].clone();
                    a.extend(std::iter::repeat_n(item, 1 + rng.below(400) as usize));
                }
                _ => mutate(rng, &mut a[i], depth + 1),
            }
        }
        Value::String(s) => {
            *s = match rng.below(6) {
                0 => String::new(),
                1 => s.repeat(1 + rng.below(50) as usize),
                2 => s.chars().rev().collect(),
                3 if !s.is_empty() => {
                    let cut = rng.below(s.len() as u64) as usize;
                    s.char_indices()
                        .take_while(|(i, _)| *i < cut)
                        .map(|(_, c)| c)
                        .collect()
                }
                _ => return *v = weird_value(rng, depth),
            }
        }
        _ => *v = weird_value(rng, depth),
    }
}

/// Flips, inserts or removes bytes of the serialised event; `None` if it is no longer JSON.
fn mutate_text(rng: &mut Rng, v: &Value) -> Option<Value> {
    let mut bytes = serde_json::to_vec(v).unwrap();
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.below(bytes.len() as u64) as usize;
        match rng.below(3) {
            0 => bytes[i] = rng.next() as u8,
            1 => {
                const SPECIAL: &[u8] = b"{}[]\",:0-e\\u";
                bytes.insert(i, SPECIAL[rng.below(SPECIAL.len() as u64) as usize]);
            }
            _ => {
                bytes.remove(i);
            }
        }
    }
    serde_json::from_slice(&bytes).ok()
}

/// Runs one case; returns whether the decoder accepted the event.
fn run_case(seed: u64, fixtures: &[Value]) -> bool {
    let mut rng = Rng(seed | 1);
    let mut event = fixtures[rng.below(fixtures.len() as u64) as usize].clone();
    if rng.chance(20) {
        // An event type the content was not written for.
        let types = [
            "m.call.invite",
            "m.call.answer",
            "m.call.candidates",
            "m.call.hangup",
            "m.call.reject",
            "m.call.select_answer",
            "m.call.negotiate",
            "m.call.sdp_stream_metadata_changed",
            "org.matrix.call.sdp_stream_metadata_changed",
        ];
        event["type"] = json!(types[rng.below(types.len() as u64) as usize]);
    }
    for _ in 0..1 + rng.below(5) {
        mutate(&mut rng, &mut event, 0);
    }
    if rng.chance(15) {
        match mutate_text(&mut rng, &event) {
            Some(v) => event = v,
            None => return false,
        }
    }
    let room = RoomId("!room:hs".into());
    let encrypted = rng.chance(50);
    let decoded = std::panic::catch_unwind(|| from_wire(&room, &event, encrypted));
    let decoded = match decoded {
        Ok(d) => d,
        Err(_) => panic!("seed {seed}: the decoder panicked on {}", clip(&event)),
    };
    let Ok(Some(received)) = decoded else {
        return false;
    };
    assert!(
        !received.event.call_id.0.is_empty(),
        "seed {seed}: empty call id"
    );
    assert_eq!(
        Some(received.sender.0.as_str()),
        event["sender"].as_str(),
        "seed {seed}"
    );
    assert!(
        serde_json::to_vec(&event).unwrap().len() <= MAX_EVENT_BYTES + 4096,
        "seed {seed}: accepted an event larger than a Matrix event can be"
    );
    if let CallEventBody::Candidates { candidates } = &received.event.body {
        assert!(
            candidates.len() <= 10_000,
            "seed {seed}: {} candidates",
            candidates.len()
        );
    }
    let again = std::panic::catch_unwind(|| to_wire(&received.event));
    assert!(
        again.is_ok(),
        "seed {seed}: to_wire panicked on {:?}",
        received.event
    );
    true
}

fn clip(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(600).collect()
}

#[test]
fn mutated_call_events_never_panic_the_decoder() {
    let cases: u64 = std::env::var("INTERCOM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let first: u64 = std::env::var("INTERCOM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xD00D);
    let fixtures = fixtures();
    let mut accepted = 0u64;
    for seed in first..first + cases {
        if run_case(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), &fixtures) {
            accepted += 1;
        }
    }
    println!("{cases} cases, {accepted} accepted");
    // A fuzz that only ever produces garbage tests the error paths alone.
    assert!(
        accepted * 20 > cases,
        "only {accepted} of {cases} mutated events were accepted: the mutations are too blunt"
    );
    assert!(
        accepted * 10 < cases * 9,
        "{accepted} of {cases} accepted: the mutations do not reach the error paths"
    );
}
