//! What a panic does: it ends the daemon, at once, and systemd starts it again
//! (`Restart=on-failure`).
//!
//! The release build aborts on panic (`panic = "abort"`): unwinding, which would let a panic in
//! a call end only that call, made the stripped arm64 binary 22.6 MB against the 20 MB it must
//! stay within (its unwinding tables and landing pads; ARCHITECTURE.md, "Panics"). [`install`]
//! makes test builds, which unwind, do the same, so that the tests see what ships: a panic is
//! never caught and never ends one task quietly (a sync loop that died would leave a door that
//! runs and never rings).

/// Makes every panic end the process, after the usual message, in every build.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("a panic: the daemon ends here, to be restarted");
        std::process::abort();
    }));
}

/// Test builds only: `INTERCOM_TEST_PANIC=<place>` makes the first pass through `place`
/// ("camera": the test pattern's next frame, on the call's encoder thread; "call": a call's task
/// as it starts; "sync": the sync loop after its first response) panic, once a process, so that
/// tests can see that a panic anywhere ends the daemon. Release builds have no such hook.
#[cfg(debug_assertions)]
pub fn test_panic(place: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if std::env::var("INTERCOM_TEST_PANIC").is_ok_and(|p| p == place)
        && !DONE.swap(true, Ordering::Relaxed)
    {
        panic!("a test panic in {place}, as INTERCOM_TEST_PANIC asks");
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_panic(_place: &str) {}
