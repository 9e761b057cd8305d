//! The natter daemon: parse flags, bind (or take systemd's socket), run.

use std::process::ExitCode;

use log::{error, info, warn};
use natter::config::{Invocation, USAGE, parse_args};
use natter::{Exit, Server, sys};

fn main() -> ExitCode {
    let config = match parse_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Run(config)) => *config,
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("natter {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("natter: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    match sys::raise_fd_limit() {
        Ok(l) => info!(
            "descriptor limit: soft {} (was {}), hard {}",
            l.soft, l.soft_before, l.hard
        ),
        Err(e) => warn!("cannot raise the descriptor limit: {e}"),
    }
    let server = match sys::inherited_listener() {
        Ok(Some(listener)) => {
            info!("using the listening socket passed by systemd (LISTEN_FDS)");
            Server::from_std(listener, config)
        }
        Ok(None) => Server::bind(config),
        Err(e) => Err(e),
    };
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.handle_signals() {
        error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    info!(
        "listening on {} (max {} clients)",
        server.local_addr(),
        server.max_clients()
    );
    let _ = sys::notify_systemd(&format!(
        "READY=1\nSTATUS=listening on {}",
        server.local_addr()
    ));
    match server.run() {
        Ok(Exit::Graceful) => ExitCode::SUCCESS,
        Ok(Exit::Forced) => ExitCode::from(1),
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
