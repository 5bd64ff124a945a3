//! The `intercom` binary: parses the command line, runs the command, and — alone in the program —
//! chooses the exit code.

use std::process::ExitCode;

use clap::Parser;
use intercom::cli::Cli;
use intercom::Error;

/// sysexits.h: the configuration is unusable. systemd's unit does not restart on it.
const EX_CONFIG: u8 = 78;
/// sysexits.h: a service the command needs is unavailable.
const EX_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match intercom::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match &e {
                Error::Config(_) => EX_CONFIG,
                // A homeserver that is down or refuses is a service unavailable: systemd retries.
                Error::Unavailable(_) | Error::Matrix(_) => EX_UNAVAILABLE,
                Error::CheckFailed(_) | Error::Io { .. } => 1,
            };
            // After logging is up, this reaches the journal too; before, stderr is all there is.
            if log::log_enabled!(log::Level::Error) {
                log::error!("{e}");
            } else {
                eprintln!("intercom: {e}");
            }
            ExitCode::from(code)
        }
    }
}
