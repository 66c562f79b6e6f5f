//! `clusterm`: the cluster manager daemon. Reads a TOML config (`--config`, or
//! `CLUSTERM_CONFIG`) with `CLUSTERM_*` environment overrides, then serves the REST API
//! v1 and the Contiv-compatible API until SIGTERM.
//!
//! ```sh
//! cargo run -p clusterm-examples --bin clusterm            # defaults: 127.0.0.1:9007
//! cargo run -p clusterm-examples --bin clusterm -- --print-config
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clusterm_examples::config::{DaemonConfig, LogFormat};

/// The clusterm daemon.
#[derive(Debug, Parser)]
#[command(name = "clusterm", version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "CLUSTERM_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as JSON (secrets hidden) and exit.
    #[arg(long)]
    print_config: bool,
}

fn init_tracing(config: &DaemonConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match DaemonConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clusterm: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        let mut shown = config.clone();
        if shown.api.token.expose().is_some() {
            shown.api.token =
                serde_json::from_value(serde_json::json!("<redacted>")).unwrap_or_default();
        }
        match json_text(&shown) {
            Ok(text) => {
                println!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("clusterm: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clusterm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(clusterm_examples::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "clusterm failed");
            eprintln!("clusterm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn json_text(config: &DaemonConfig) -> Result<String, String> {
    serde_json::to_string_pretty(config).map_err(|e| e.to_string())
}
