//! `aurum-dashboard` binary: serve the dashboard on `--listen`, reading `--api-url`.

use std::io::IsTerminal;
use std::process::ExitCode;

use aurum_dashboard::config::Config;
use clap::Parser;

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AURUM_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on bad usage, 0 for --help.
    let config = Config::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aurum-dashboard: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(aurum_dashboard::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.is_config() { 2 } else { 1 };
            eprintln!(
                "aurum-dashboard: {e}; check the flags and environment (aurum-dashboard --help)"
            );
            ExitCode::from(code)
        }
    }
}
