//! `revoked`: the offboarding daemon. See `revoked --help`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// The revoked daemon: takes signed terminations from HR and IdP webhooks and its API, schedules
/// them, and runs each offboarding plan with retries, idempotency keys and an audit trail.
#[derive(Debug, Parser)]
#[command(name = "revoked", version)]
struct Args {
    /// Configuration file (default: $REVOKE_CONFIG, else ./revoke.toml).
    #[arg(long, short = 'c', env = "REVOKE_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("revoked: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revoked: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(args: Args) -> anyhow::Result<()> {
    // Before anything else: a SIGTERM during start-up (a unit stopped while it migrates, a pod
    // deleted right after READY=1) must be a graceful stop, not the default action (death).
    let stop = shutdown_signal().context("installing the SIGTERM and SIGINT handlers")?;
    let path = args
        .config
        .or_else(|| Some(PathBuf::from("revoke.toml")).filter(|p| p.exists()));
    let config = revoke_config::load(path.as_deref()).context("loading the configuration")?;
    revoked::validate(&config).context("checking the configuration")?;
    if args.check_config {
        println!("configuration ok");
        return Ok(());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = revoke_telemetry::init(&revoke_telemetry::TelemetryConfig {
        service_name: "revoked".into(),
        json_logs: config.daemon.json_logs,
        filter: config.daemon.log_filter.clone(),
    })
    .context("setting up logs and traces")?;
    let metrics = revoke_telemetry::metrics().context("setting up metrics")?;
    let stopped = revoked::run(
        config,
        Some(metrics),
        |addr| {
            // The first line on stdout, for scripts and tests that chose port 0.
            println!("revoked listening on http://{addr}");
        },
        stop,
    )
    .await;
    telemetry.shutdown();
    stopped.map(|_| ())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives before `run` polls it is kept, not fatal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
