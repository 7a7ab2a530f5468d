//! `quiver`: the command line of the Quiver placement engine.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The server logs every request (with its request id) by default.
    let verbose = if matches!(args.command, cli::Command::Serve(_)) { args.verbose.max(1) } else { args.verbose };
    cli::init_logging(verbose);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
