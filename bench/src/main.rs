//! natter-bench: a one-thread load generator for line-based chat servers.
//! See `natter-bench --help` and `bench/README.md`.

mod args;
mod bench;
mod client;
mod connect;
mod floor;
mod json;
mod procstat;
mod reactor;
mod receive;
mod report;
mod rooms;
mod rxts;
mod senders;
mod sites;
mod slow;
mod tally;
mod timer;
mod tls;
mod token;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1).peekable();
    if argv.peek().is_some_and(|a| a == "floor-server") {
        return floor::main(argv.skip(1));
    }
    let opts = match args::parse(argv) {
        Ok(args::Parsed::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(args::Parsed::Run(o)) => *o,
        Err(e) => {
            eprintln!("natter-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = bench::Bench::new(opts).and_then(bench::Bench::run);
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("natter-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Progress and diagnostics go to stderr; stdout carries only the result.
fn log(msg: std::fmt::Arguments) {
    eprintln!("natter-bench: {msg}");
}
