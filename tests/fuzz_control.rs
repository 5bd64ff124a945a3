//! Property test of the control socket's line parser (`control::read_command`, what the daemon
//! runs on every connection): the bytes a client sends — the real commands, mutated (bytes
//! flipped, inserted, cut, duplicated), with stray newlines, NULs, invalid UTF-8, multi-byte
//! characters across the length limit, lines past the limit — delivered in chunks of random
//! sizes, never panic the parser; it reads no more than `MAX_LINE` bytes; it accepts a command
//! exactly when the first line (trimmed) is `ring` or `status`; and every refusal is one short
//! line (what the client sent is quoted, its control characters escaped, so a client cannot
//! forge a second answer line).
//!
//! `INTERCOM_FUZZ_CASES` sets the number of cases (default 100 000, about a second; 1 000 000
//! for a long run by hand: `INTERCOM_FUZZ_CASES=1000000 cargo test --test fuzz_control --
//! --nocapture`); `INTERCOM_FUZZ_SEED` the first seed, to replay a failure.

use std::pin::Pin;
use std::task::{Context, Poll};

use intercom::control::{read_command, Command, MAX_LINE};
use tokio::io::{AsyncRead, ReadBuf};

#[path = "harness/rng.rs"]
mod rng;

use rng::Rng;

/// What a client may send, before mutation.
const SEEDS: &[&[u8]] = &[
    b"ring\n",
    b"status\n",
    b"ring",
    b"status",
    b"  ring \r\n",
    b"\tstatus\t\n",
    b"ring\nstatus\n",
    b"RING\n",
    b"rin\n",
    b"ringg\n",
    b"\n",
    b"",
    b"ring\0\n",
    b"st\xffatus\n",
    b"status \xe2\x80\xae\n",
    b"\xef\xbb\xbfring\n",
    "🚪 open\n".as_bytes(),
    b"error busy\n",
    b"ok pressed\n",
];

fn input(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = SEEDS[rng.below(SEEDS.len() as u64) as usize].to_vec();
    // Sometimes padded up to around the limit, where a line is cut.
    if rng.chance(15) {
        let pad = [b' ', b'x', b'\n', 0xC3, 0xA9, 0xF0][rng.below(6) as usize];
        let len = MAX_LINE as usize - 8 + rng.below(16) as usize;
        let at = rng.below(bytes.len() as u64 + 1) as usize;
        while bytes.len() < len {
            bytes.insert(at.min(bytes.len()), pad);
        }
    }
    if rng.chance(3) {
        bytes.extend((0..rng.below(4096)).map(|_| rng.byte()));
    }
    for _ in 0..rng.below(4) {
        let at = rng.below(bytes.len() as u64 + 1) as usize;
        match rng.below(7) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.insert(at, rng.byte()),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            4 => bytes.insert(at, b"\n\r\0 \t"[rng.below(5) as usize]),
            5 => {
                let copy = bytes[at..].to_vec();
                bytes.extend(copy);
            }
            _ => {
                bytes.splice(at..at, *b"ring");
            }
        }
    }
    bytes
}

/// `data` in chunks of random sizes, as a socket may deliver it.
struct Chunks<'a> {
    data: &'a [u8],
    pos: usize,
    rng: Rng,
}

impl AsyncRead for Chunks<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let chunk = 1 + self.rng.below(64) as usize;
        let end = (self.pos + chunk).min(self.data.len());
        let n = (end - self.pos).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// What the parser must make of `bytes`, worked out another way.
fn expected(bytes: &[u8]) -> Option<Command> {
    let window = &bytes[..bytes.len().min(MAX_LINE as usize)];
    let line = match window.iter().position(|&b| b == b'\n') {
        Some(end) => &window[..=end],
        None if window.len() == MAX_LINE as usize => return None,
        None => window,
    };
    match String::from_utf8_lossy(line).trim() {
        "ring" => Some(Command::Ring),
        "status" => Some(Command::Status),
        _ => None,
    }
}

/// Names the case that panicked, so it can be replayed.
struct Case(u64);

impl Drop for Case {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failing case: INTERCOM_FUZZ_SEED={} (one case)", self.0);
        }
    }
}

#[test]
fn mutated_command_lines_never_panic_the_parser() {
    let cases: u64 = std::env::var("INTERCOM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let first: u64 = std::env::var("INTERCOM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xC0DE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let (mut accepted, mut refused) = (0u64, 0u64);
    runtime.block_on(async {
        for seed in first..first + cases {
            let case = Case(seed);
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let bytes = input(&mut rng);
            let mut chunks = Chunks {
                data: &bytes,
                pos: 0,
                rng: Rng(rng.next() | 1),
            };
            let answer = read_command(&mut chunks).await;
            assert!(
                chunks.pos as u64 <= MAX_LINE,
                "read {} bytes of {bytes:?}",
                chunks.pos
            );
            match answer {
                Ok(command) => {
                    assert_eq!(Some(command), expected(&bytes), "{bytes:?}");
                    accepted += 1;
                }
                Err(e) => {
                    assert_eq!(expected(&bytes), None, "{bytes:?} refused: {e}");
                    assert!(
                        !e.chars().any(char::is_control) && e.len() <= 1024,
                        "not one short line: {e:?} for {bytes:?}"
                    );
                    refused += 1;
                }
            }
            drop(case);
        }
    });
    println!(
        "{cases} cases: {accepted} commands accepted, {refused} refused, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Both ways are taken, or the mutations miss half the parser.
    assert!(accepted * 20 > cases, "only {accepted} of {cases} accepted");
    assert!(refused * 20 > cases, "only {refused} of {cases} refused");
}
