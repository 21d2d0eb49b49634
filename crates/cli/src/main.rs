//! `revokectl`: plan, apply, show and verify offboardings, embedded on a local store.

mod commands;
mod context;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "revokectl", version, about = "Find and remove every access a leaver holds, plan first", long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); default: $REVOKE_CONFIG, else ./revoke.toml
    #[arg(long, short = 'c', global = true, env = "REVOKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// A leaver's identifier (username, email or employee id); repeat for several
    #[arg(long = "user", short = 'u', value_name = "ID", required = true)]
    pub users: Vec<String>,
    /// The policy (from config) to plan under
    #[arg(long, default_value = revoke_config::DEFAULT_POLICY)]
    pub policy: String,
    /// Why the access goes
    #[arg(long, default_value = "offboarding")]
    pub reason: String,
    /// When the leaver's access ends (RFC 3339 or YYYY-MM-DD, UTC); default: now
    #[arg(long, value_name = "TIME")]
    pub effective: Option<String>,
    /// high: contain at once, whatever the effective time
    #[arg(long, value_enum, default_value = "standard")]
    pub risk: RiskArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RiskArg {
    Standard,
    High,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read-only discovery: what would be removed, by connector and phase
    Plan {
        #[command(flatten)]
        job: JobArgs,
        /// Save the plan to this file for `revokectl apply FILE` (also accepted as -out)
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Apply exactly a saved plan (refused if stale), or plan and apply with --user
    Apply {
        /// A plan saved by `revokectl plan -out FILE`
        #[arg(
            value_name = "PLAN",
            conflicts_with = "users",
            required_unless_present = "users"
        )]
        plan: Option<PathBuf>,
        /// Plan and apply in one step for these leavers
        #[arg(long = "user", short = 'u', value_name = "ID")]
        users: Vec<String>,
        #[arg(long, default_value = revoke_config::DEFAULT_POLICY)]
        policy: String,
        #[arg(long, default_value = "offboarding")]
        reason: String,
        #[arg(long, value_name = "TIME")]
        effective: Option<String>,
        #[arg(long, value_enum, default_value = "standard")]
        risk: RiskArg,
        /// Do not ask for confirmation (needed without a terminal)
        #[arg(long)]
        auto_approve: bool,
        /// table: a line per result as it happens; jsonl: one JSON object per action
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a saved plan file or a recorded job
    Show {
        /// A plan file or a job id
        target: String,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Jobs and where they stand, or one job's actions
    Status {
        job: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Results as JSON lines, one object per action
    Results { job: Option<String> },
    /// Re-check (read-only) that every applied action of a job still holds
    Verify { job: String },
    /// Acknowledge a manual action of a job as done
    Ack {
        job: String,
        action: String,
        /// Who did it; default: $USER
        #[arg(long)]
        by: Option<String>,
    },
    /// Run every action that has become due (for cron, without the daemon)
    Resume {
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// The audit log
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check the configuration without contacting anything
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: detects an altered or removed entry
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (no network)
    Check,
}

/// Terraform users type `-out FILE`; clap would read that as `-o ut`.
fn normalize_args() -> Vec<String> {
    std::env::args()
        .map(|a| {
            if a == "-out" {
                "--out".to_string()
            } else if let Some(rest) = a.strip_prefix("-out=") {
                format!("--out={rest}")
            } else {
                a
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args());
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
