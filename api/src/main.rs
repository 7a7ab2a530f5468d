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
            // a regression found by `quiver bench compare` is an answer,
            // not a failure to run: status 1, as diff and cmp use it
            if e.downcast_ref::<cli::bench_compare::Regressions>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
