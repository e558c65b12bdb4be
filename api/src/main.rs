//! `aurum-api` binary: serve the gold API, or hash a password.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use aurum_api::config::{Cli, Command, HashPasswordArgs};
use aurum_api::users::{Role, hash_password};
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

fn hash_password_cmd(args: &HashPasswordArgs) -> anyhow::Result<()> {
    let role: Option<Role> = match &args.username {
        Some(_) => Some(args.role.parse()?),
        None => None,
    };
    if let Some(u) = &args.username
        && (u.is_empty() || u.contains(':') || u.contains(char::is_whitespace))
    {
        anyhow::bail!("the username must be non-empty, without `:` or white space");
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (read from stdin, echoed): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!(
            "empty password: pipe the password on stdin, e.g. `printf %s \"$PW\" | aurum-api hash-password`"
        );
    }
    let hash = hash_password(password, None).context("hashing the password")?;
    match (&args.username, role) {
        (Some(u), Some(r)) => println!("{u}:{hash}:{r}"),
        _ => println!("{hash}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Some(Command::HashPassword(args)) => match hash_password_cmd(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aurum-api hash-password: {e:#}");
                ExitCode::from(1)
            }
        },
        None => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("aurum-api: {e:#}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(aurum_api::serve(cli.serve)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let code = if e.is_config() { 2 } else { 1 };
                    eprintln!("aurum-api: {e}; check the flags and environment (aurum-api --help)");
                    ExitCode::from(code)
                }
            }
        }
    }
}
