//! `revokectl`: plan, apply, show and verify offboardings, embedded on a local store, or talk to
//! a `revoked` daemon with `--server URL`.

#[macro_use]
mod out;

mod commands;
mod connector_check;
mod context;
mod due;
mod generate;
mod queue;
mod remote;
mod render;
mod tools;

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
    /// A revoked daemon (http://HOST:PORT): status, jobs, batches, show, approve, reject, cancel,
    /// ack, evidence and import go to its API instead of the local store
    #[arg(long, global = true, env = "REVOKE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The API token for --server
    #[arg(
        long,
        global = true,
        env = "REVOKE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Read the API token from this file (first line); wins over --token and REVOKE_TOKEN
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: aligned columns, a line per result as it happens
    Table,
    /// One JSON document
    Json,
    /// One JSON object a line (a stream of results, jobs or events)
    Jsonl,
    /// The same value as `json`, as YAML (a stream: one YAML document per item, like `jsonl`)
    Yaml,
}

/// The evidence export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvidenceArg {
    Json,
    Jsonl,
    Csv,
    Md,
    /// The JSON export as YAML
    Yaml,
}

impl EvidenceArg {
    pub fn format(self) -> revoke_engine::EvidenceFormat {
        match self {
            EvidenceArg::Json | EvidenceArg::Yaml => revoke_engine::EvidenceFormat::Json,
            EvidenceArg::Jsonl => revoke_engine::EvidenceFormat::Jsonl,
            EvidenceArg::Csv => revoke_engine::EvidenceFormat::Csv,
            EvidenceArg::Md => revoke_engine::EvidenceFormat::Md,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceArg::Json => "json",
            EvidenceArg::Jsonl => "jsonl",
            EvidenceArg::Csv => "csv",
            EvidenceArg::Md => "md",
            EvidenceArg::Yaml => "yaml",
        }
    }

    /// The format asked of the engine or the daemon (YAML is made here from the JSON).
    pub fn source(self) -> EvidenceArg {
        match self {
            EvidenceArg::Yaml => EvidenceArg::Json,
            other => other,
        }
    }
}

/// An RFC 3339 time given on the command line.
fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 time (2030-01-31T17:00:00Z), found {s:?} ({e})"))
}

/// Daemon job states, for `jobs --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum JobStateArg {
    Scheduled,
    AwaitingApproval,
    Planned,
    Failed,
    Cancelled,
    Rejected,
}

impl JobStateArg {
    pub fn state(self) -> revoke_store::JobState {
        use revoke_store::JobState;
        match self {
            JobStateArg::Scheduled => JobState::Scheduled,
            JobStateArg::AwaitingApproval => JobState::AwaitingApproval,
            JobStateArg::Planned => JobState::Planned,
            JobStateArg::Failed => JobState::Failed,
            JobStateArg::Cancelled => JobState::Cancelled,
            JobStateArg::Rejected => JobState::Rejected,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Read,
    Operator,
}

#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// A leaver's identifier (username, email or employee id); repeat for several
    #[arg(
        long = "user",
        short = 'u',
        value_name = "ID",
        required_unless_present = "client_domains"
    )]
    pub users: Vec<String>,
    /// A departing client's email domain (clientco.com): every share and collaborator of the
    /// domain, in the connectors that take client jobs; repeat for several
    #[arg(long = "client-domain", value_name = "DOMAIN")]
    pub client_domains: Vec<String>,
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
            conflicts_with_all = ["users", "client_domains"],
            required_unless_present_any = ["users", "client_domains"]
        )]
        plan: Option<PathBuf>,
        /// Plan and apply in one step for these leavers
        #[arg(long = "user", short = 'u', value_name = "ID")]
        users: Vec<String>,
        /// Plan and apply in one step for these departing clients' domains
        #[arg(long = "client-domain", value_name = "DOMAIN")]
        client_domains: Vec<String>,
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
    /// Jobs and where they stand, or one job's actions (with --server: the daemon's queue)
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
        /// The action id, or a manual step's id from config (collect-laptop)
        action: String,
        /// Who did it; default: $USER (with --server the token's name is recorded)
        #[arg(long)]
        by: Option<String>,
    },
    /// The daemon's jobs, newest first, every match page by page (embedded: the queue in the
    /// local store)
    Jobs {
        /// Only jobs in this state (repeat it, or separate states with commas: any of them)
        #[arg(long, value_enum, value_delimiter = ',')]
        state: Vec<JobStateArg>,
        /// Only the jobs of this person: employee id, email (any case) or username, exactly
        #[arg(long)]
        subject: Option<String>,
        /// Only jobs from this source (api, import, or an [intake.NAME] source)
        #[arg(long)]
        source: Option<String>,
        /// Only jobs received at or after this time (RFC 3339, 2030-01-31T17:00:00Z)
        #[arg(long, value_parser = parse_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only jobs received before this time (RFC 3339)
        #[arg(long, value_parser = parse_time)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many (the newest); default: every matching job
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Batches of jobs the blast-radius guard held together (an import, a burst of one HR
    /// source): the open ones, or what one contains; decide one with `approve --batch ID`
    Batches {
        /// Show this batch: counts by state, source, department, reason and risk, and a sample
        id: Option<String>,
        /// Every batch, decided ones too
        #[arg(long)]
        all: bool,
        /// How many of the batch's jobs to show (with ID)
        #[arg(long, default_value_t = 20)]
        sample: u32,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Approve a job the blast-radius guard holds, or every held job of a batch: scheduled again
    Approve {
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        job: Option<String>,
        /// Every job of this batch still awaiting approval, as one unit (`revokectl batches`)
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        /// Why (kept in the decision's audit entry and the job's note); one job only
        #[arg(long, conflicts_with = "batch")]
        reason: Option<String>,
        /// Decide the batch without asking (it is shown first; only the jobs shown are decided)
        #[arg(long, requires = "batch")]
        yes: bool,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Reject a job the blast-radius guard holds, or every held job of a batch: it never runs
    Reject {
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        job: Option<String>,
        /// Every job of this batch still awaiting approval, as one unit (`revokectl batches`)
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        /// Why (kept in the decision's audit entry and the job's note); one job only
        #[arg(long, conflicts_with = "batch")]
        reason: Option<String>,
        /// Decide the batch without asking (it is shown first; only the jobs shown are decided)
        #[arg(long, requires = "batch")]
        yes: bool,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Cancel an open job: actions that have not started never will
    Cancel {
        job: String,
        /// Why (recorded in the audit log)
        #[arg(long, required = true)]
        reason: String,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// A job's evidence for auditors: the event, plan, actions and audit trail
    Evidence {
        job: String,
        #[arg(long, short = 'o', value_enum, default_value = "json")]
        output: EvidenceArg,
        /// Write to this file instead of stdout
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Submit terminations from a CSV or JSONL file, one per line; importing again adds nothing
    Import {
        /// FILE.csv (header: employee_id,email,username,effective_at,reason,involuntary,high_risk,event_id) or FILE.jsonl
        file: PathBuf,
        /// The time zone of dates without a time (effective_at = 2026-12-01)
        #[arg(long, default_value = "UTC", value_name = "ZONE")]
        timezone: String,
        /// The policy the jobs are planned under
        #[arg(long, default_value = revoke_config::DEFAULT_POLICY)]
        policy: String,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// API tokens for the daemon
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Send a signed sample termination to a Standard Webhooks intake endpoint
    Send(tools::SendArgs),
    /// Run whatever has become due, for cron, without the daemon: queued jobs now due (imported,
    /// or approved) are planned as the daemon's scheduler plans them, then every due action runs
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
    /// HTTP connector definitions (kind = "http")
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Print a shell completion script (bash, zsh, fish), generated from these definitions
    Completions {
        #[arg(value_enum)]
        shell: generate::ShellArg,
    },
    /// Print the manual page (roff) to stdout, or write one page per subcommand into --dir
    Man {
        /// Write revokectl.1 and revokectl-SUBCOMMAND.1 pages into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Validate a definition file (no network); with --connect --subject X, dry-run its
    /// discovery read-only and print what matched and why
    Check(connector_check::CheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: detects an altered or removed entry
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a random API token: prints it once, and the config block with its hash
    New {
        /// The token's name: the acting identity in the audit log
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        scope: ScopeArg,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Format,
    },
    /// Read a token on stdin and print its SHA-256 (hex), as `[api.tokens.NAME] sha256` wants
    Hash,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (no network); with --connect, also run each connector's
    /// read-only preflight (credentials, reachability, writable destinations)
    Check {
        #[arg(long)]
        connect: bool,
    },
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
        .with_writer(out::LogLine::default)
        .with_ansi(out::stderr_colour())
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
        // The reader of our output went away (`| head`): end quietly.
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
