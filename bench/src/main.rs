//! natter-bench: a one-thread load generator for line-based chat servers.
//! See `natter-bench --help` and `bench/README.md`.

mod args;
mod engine;
mod json;
mod procstat;
mod rxts;
mod token;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match args::parse(std::env::args_os().skip(1)) {
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
    let result = engine::Bench::new(opts).and_then(engine::Bench::run);
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
