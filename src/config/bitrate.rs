//! Bitrates: a number of bits a second, or a string with a unit: `"1500kbit"`, `"1.5Mbit"`.

use std::fmt;

use serde::de::{self, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a bitrate, like \"1500kbit\" or 1500000")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
            parse(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v)
                .map_err(|_| E::custom(format!("expected a bitrate in bits a second, found {v}")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v)
                .map_err(|_| E::custom(format!("expected a bitrate in bits a second, found {v}")))
        }
    }
    d.deserialize_any(V)
}

/// Parses `"800000"`, `"800kbit"`, `"1.5Mbit"` (also `kbps`, `Mbps`, `k`, `M`).
pub fn parse(s: &str) -> Result<u32, String> {
    let bad = || format!("expected a bitrate like \"1500kbit\" or \"2Mbit\", found {s:?}");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "bit" | "bps" => 1.0,
        "k" | "kbit" | "kbps" => 1e3,
        "M" | "Mbit" | "Mbps" => 1e6,
        _ => return Err(bad()),
    };
    let bits = n * scale;
    if !(0.0..=f64::from(u32::MAX)).contains(&bits) {
        return Err(bad());
    }
    Ok(bits.round() as u32)
}

/// `bits` as the file would write it: `"2000kbit"` when a whole number of kbit, else the number.
/// [`parse`] reads it back as `bits`.
pub fn written(bits: u32) -> String {
    if bits.is_multiple_of(1000) && bits > 0 {
        format!("\"{}kbit\"", bits / 1000)
    } else {
        bits.to_string()
    }
}
