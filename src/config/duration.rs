//! Durations are written with a unit: `"500ms"`, `"30s"`, `"5m"`, `"1h"`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration with a unit, like \"30s\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "expected a duration with a unit, like \"30s\", found the number {v} (write \"{v}s\" for seconds)"
            )))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            self.visit_i64(v as i64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "expected a duration with a unit, like \"1.5s\", found the number {v}"
            )))
        }
    }
    d.deserialize_any(V)
}

/// Parses `"250ms"`, `"30s"`, `"1.5s"`, `"5m"`, `"2h"`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "expected a duration with a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\", found {s:?}"
        )
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs > 365.0 * 86400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `d` as the file would write it, quoted, in the largest unit that keeps it whole: `"50ms"`,
/// `"45s"`, `"5m"`. [`parse`] reads it back as `d` (to the millisecond).
pub fn written(d: Duration) -> String {
    let ms = d.as_millis();
    let (n, unit) = if !ms.is_multiple_of(1000) {
        (ms, "ms")
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        (ms / 3_600_000, "h")
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        (ms / 60_000, "m")
    } else {
        (ms / 1000, "s")
    };
    format!("\"{n}{unit}\"")
}
