//! The natter daemon: parse flags, bind (or take systemd's socket), run.

use std::process::ExitCode;

use log::{error, info, warn};
use natter::config::{Config, Invocation, USAGE, parse_args};
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
    let server = match start(config) {
        Ok(server) => server,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.run() {
        Ok(Exit::Graceful) => ExitCode::SUCCESS,
        Ok(Exit::Forced) => ExitCode::from(1),
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the descriptor limit, binds (or takes systemd's socket), installs
/// the signal handlers, and tells systemd it is ready.
fn start(config: Config) -> std::io::Result<Server> {
    match sys::raise_fd_limit() {
        Ok(l) => info!(
            "descriptor limit: soft {} (was {}), hard {}",
            l.soft, l.soft_before, l.hard
        ),
        Err(e) => warn!("cannot raise the descriptor limit: {e}"),
    }
    let mut server = match sys::inherited_listener()? {
        Some(listener) => {
            info!("using the listening socket passed by systemd (LISTEN_FDS)");
            Server::from_std(listener, config)?
        }
        None => Server::bind(config)?,
    };
    server.handle_signals().map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot install signal handlers: {e}"))
    })?;
    let listening = match (server.plain_addr(), server.tls_addr()) {
        (Some(plain), Some(tls)) => format!("{plain} and for TLS on {tls}"),
        (Some(plain), None) => plain.to_string(),
        (None, Some(tls)) => format!("{tls} for TLS only"),
        (None, None) => String::new(),
    };
    info!(
        "listening on {listening} (max {} clients)",
        server.max_clients()
    );
    let _ = sys::notify_systemd(&format!("READY=1\nSTATUS=listening on {listening}"));
    Ok(server)
}
