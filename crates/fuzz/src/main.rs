//! `revoke-fuzz`: runs the fuzz targets for a chosen time and prints what each did.
//!
//! `revoke-fuzz --seconds 600 [--target hibob|...|all] [--seed N] [--replay-dir DIR]
//! [--slow-ms 1000]`, or `revoke-fuzz --replay FILE...` to run kept inputs again. The exit
//! status is nonzero when any oracle failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use revoke_fuzz::{all_targets, replay, Options, Replay, Run, Target};

const USAGE: &str = "usage: revoke-fuzz [--seconds N] [--target NAME|all] [--seed N] [--replay-dir DIR] [--slow-ms N] | --replay FILE...";

struct Args {
    seconds: u64,
    targets: Vec<String>,
    seed: u64,
    replay_dir: PathBuf,
    slow_ms: u64,
    replays: Vec<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 60,
        targets: Vec::new(),
        seed: 1,
        replay_dir: PathBuf::from("target/fuzz-failures"),
        slow_ms: 1000,
        replays: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .with_context(|| format!("{name}: expected a value, found nothing; {USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .context("--seconds: expected whole seconds")?
            }
            "--seed" => {
                a.seed = value("--seed")?
                    .parse()
                    .context("--seed: expected an unsigned number")?
            }
            "--slow-ms" => {
                a.slow_ms = value("--slow-ms")?
                    .parse()
                    .context("--slow-ms: expected milliseconds")?
            }
            "--target" => a.targets.push(value("--target")?),
            "--replay-dir" => a.replay_dir = PathBuf::from(value("--replay-dir")?),
            "--replay" => {
                a.replays.push(PathBuf::from(value("--replay")?));
                a.replays.extend(it.by_ref().map(PathBuf::from));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("expected an option, found {other:?}; {USAGE}"),
        }
    }
    if a.targets.is_empty() || a.targets.iter().any(|t| t == "all") {
        a.targets = all_targets().into_iter().map(str::to_string).collect();
    }
    Ok(a)
}

fn run_replays(files: &[PathBuf]) -> Result<bool> {
    let mut ok = true;
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        let r: Replay = serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a replay file", f.display()))?;
        match replay(&r) {
            Ok(m) => println!("{}: holds: {m}", f.display()),
            Err(m) => {
                ok = false;
                println!("{}: FAILS: {m}", f.display());
            }
        }
    }
    Ok(ok)
}

fn main() -> Result<ExitCode> {
    let args = parse_args()?;
    if !args.replays.is_empty() {
        return Ok(if run_replays(&args.replays)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let opts = Options {
        slow_limit: Some(Duration::from_millis(args.slow_ms)),
        replay_dir: Some(args.replay_dir.clone()),
        keep_per_kind: 3,
    };
    let mut runs = Vec::new();
    for t in &args.targets {
        runs.push(Run::new(
            Target::new(t).map_err(anyhow::Error::msg)?,
            args.seed,
            opts.clone(),
        ));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    // Round robin in small batches, so every target gets its share of the time.
    let mut last_note = started;
    while Instant::now() < deadline {
        for run in &mut runs {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(50) {
                run.step(20);
            }
        }
        if last_note.elapsed() > Duration::from_secs(60) {
            last_note = Instant::now();
            let total: u64 = runs.iter().map(|r| r.stats.inputs).sum();
            let failed: u64 = runs.iter().map(|r| r.stats.failure_count()).sum();
            eprintln!(
                "{:>5} s: {total} inputs, {failed} failures",
                started.elapsed().as_secs()
            );
        }
    }
    let total: u64 = runs.iter().map(|r| r.stats.inputs).sum();
    let failed: u64 = runs.iter().map(|r| r.stats.failure_count()).sum();
    println!(
        "revoke-fuzz: seed {}, {:.0} s, {total} inputs, {failed} failures",
        args.seed,
        started.elapsed().as_secs_f64()
    );
    for run in &runs {
        println!("{}", run.stats);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
