//! `revokectl completions SHELL` and `revokectl man`: generated from the clap definitions, so
//! they name every subcommand, option and value the binary accepts, and no other.

use std::path::Path;

use anyhow::Context as _;
use clap::{CommandFactory, ValueEnum};

use crate::Cli;

/// The shells a completion script is generated for (and tested in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

impl ShellArg {
    fn shell(self) -> clap_complete::Shell {
        match self {
            ShellArg::Bash => clap_complete::Shell::Bash,
            ShellArg::Zsh => clap_complete::Shell::Zsh,
            ShellArg::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The command as the binary parses it: named `revokectl` whatever the file is called.
fn command() -> clap::Command {
    Cli::command().name("revokectl").bin_name("revokectl")
}

/// The completion script on stdout.
pub fn completions(shell: ShellArg) -> anyhow::Result<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell.shell(), &mut command(), "revokectl", &mut buf);
    let text = String::from_utf8(buf).context("the completion script is not UTF-8")?;
    out!("{text}");
    Ok(0)
}

/// The manual page on stdout, or one page per subcommand (`revokectl-apply.1`, ..., nested ones
/// `revokectl-token-new.1`) in `dir`.
pub fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    let cmd = command();
    match dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            let text = String::from_utf8(buf).context("the manual page is not UTF-8")?;
            out!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            let mut pages: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("revokectl") && n.ends_with(".1"))
                .collect();
            pages.sort();
            eprintln!(
                "wrote {} manual page(s) into {}: {}",
                pages.len(),
                dir.display(),
                pages.join(", ")
            );
        }
    }
    Ok(0)
}
