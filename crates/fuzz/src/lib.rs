//! Fuzzing of every intake source, the batch import and the escaping functions.
//!
//! Pure: no daemon, no network, no clock in the inputs. Each target makes inputs from a seed
//! and an index ([`intake::Harness::generate`], [`escape::generate`]), so a run is reproducible
//! and a failing input can be made again; it is also written to a replay file. The bin
//! `revoke-fuzz` runs for a chosen time; `tests/short.rs` runs a fixed number of inputs.

pub mod escape;
pub mod intake;
pub mod mutate;
pub mod rng;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::intake::{Handled, Harness, Input, Outcome};

/// Every target: the intake sources, `import`, then the escaping functions.
pub fn all_targets() -> Vec<&'static str> {
    intake::TARGETS
        .iter()
        .chain(escape::TARGETS.iter())
        .copied()
        .collect()
}

/// How a run is bounded and what it keeps.
#[derive(Debug, Clone)]
pub struct Options {
    /// Inputs slower than this fail (none in the test suite: no timing-dependent results).
    pub slow_limit: Option<Duration>,
    /// Where failing inputs are written, one JSON file each; none: not written.
    pub replay_dir: Option<PathBuf>,
    /// Replay files kept per target and kind of failure.
    pub keep_per_kind: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slow_limit: None,
            replay_dir: None,
            keep_per_kind: 3,
        }
    }
}

/// One oracle that did not hold.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input's index in the run.
    pub index: u64,
    /// What went wrong.
    pub message: String,
    /// The replay file, when one was written.
    pub replay: Option<PathBuf>,
}

/// What one target's run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The target.
    pub target: String,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs that gave events (intake) or passed (escaping).
    pub accepted: u64,
    /// Challenges and look-up answers.
    pub challenges: u64,
    /// Authentic inputs with nothing to act on.
    pub ignored: u64,
    /// Unauthenticated set-up probes answered (HiBob ping, Gusto verification).
    pub probes: u64,
    /// Refused inputs by status.
    pub refused: BTreeMap<u16, u64>,
    /// The slowest input: its index and how long both runs of it took.
    pub slowest: Option<(u64, Duration)>,
    /// Failures kept (with a message), at most a few per kind.
    pub failures: Vec<Failure>,
    /// All failures, kept or not, by kind.
    pub failure_kinds: BTreeMap<String, u64>,
}

impl Stats {
    /// How many inputs failed an oracle.
    pub fn failure_count(&self) -> u64 {
        self.failure_kinds.values().sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        write!(
            f,
            "{:<18} inputs {:>9}  accepted {:>8}  challenge {:>6}  ignored {:>7}  probe {:>5}  refused {{{}}}",
            self.target,
            self.inputs,
            self.accepted,
            self.challenges,
            self.ignored,
            self.probes,
            refused.join(", ")
        )?;
        if let Some((i, d)) = self.slowest {
            write!(f, "  slowest #{i} {:.1} ms", d.as_secs_f64() * 1000.0)?;
        }
        write!(f, "  failures {}", self.failure_count())?;
        for (kind, n) in &self.failure_kinds {
            write!(f, "\n    {n} x {kind}")?;
        }
        for fl in &self.failures {
            write!(f, "\n    #{}: {}", fl.index, fl.message)?;
            if let Some(p) = &fl.replay {
                write!(f, "\n      replay: {}", p.display())?;
            }
        }
        Ok(())
    }
}

/// A failing input as written to disk: enough to run it again with `--replay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    /// The target.
    pub target: String,
    /// The run's seed and the input's index (the generator makes the same input again).
    pub seed: u64,
    /// The input's index.
    pub index: u64,
    /// What failed when it was written.
    pub failure: String,
    /// An intake input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<Input>,
    /// An escaping input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<escape::EscInput>,
}

thread_local! {
    /// Set while a fuzz input runs: the panic hook keeps the message here instead of printing.
    static PANIC: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that is silent for fuzz inputs and the default elsewhere.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let caught = PANIC.with(|p| {
                let mut p = p.borrow_mut();
                match p.as_mut() {
                    Some(slot) => {
                        let place = info
                            .location()
                            .map(|l| format!(" at {}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        let msg = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".to_string());
                        *slot = Some(format!("{msg}{place}"));
                        true
                    }
                    None => false,
                }
            });
            if !caught {
                default(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into an error with its message and place.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    quiet_panics();
    PANIC.with(|p| *p.borrow_mut() = Some(None));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    let msg = PANIC.with(|p| p.borrow_mut().take()).flatten();
    r.map_err(|_| format!("panic: {}", msg.unwrap_or_else(|| "unknown".to_string())))
}

/// The kind of a failure message: quoted parts and numbers left out, at most 120 characters.
fn kind_of(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars();
    let mut last_digit = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Skip to the closing quote (escapes respected), keep a placeholder.
                let mut escaped = false;
                for d in chars.by_ref() {
                    match (escaped, d) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {}
                    }
                }
                out.push('…');
            }
            c if c.is_ascii_digit() => {
                if !last_digit {
                    out.push('#');
                }
            }
            c => out.push(c),
        }
        last_digit = c.is_ascii_digit();
        if out.chars().count() >= 120 {
            break;
        }
    }
    out
}

/// One target, ready to run inputs.
#[derive(Debug)]
pub enum Target {
    /// An intake source or the import.
    Intake(Box<Harness>),
    /// An escaping target.
    Escape(&'static str),
}

impl Target {
    /// The target of a name; the error lists the names known.
    pub fn new(name: &str) -> Result<Target, String> {
        if let Some(t) = escape::TARGETS.iter().find(|t| **t == name) {
            return Ok(Target::Escape(t));
        }
        if intake::TARGETS.contains(&name) {
            return Harness::new(name).map(|h| Target::Intake(Box::new(h)));
        }
        Err(format!(
            "expected a target among {}, found {name:?}",
            all_targets().join(", ")
        ))
    }

    /// The target's name.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Intake(h) => h.target,
            Target::Escape(t) => t,
        }
    }
}

/// A run over one target, fed inputs one at a time.
#[derive(Debug)]
pub struct Run {
    target: Target,
    seed: u64,
    next: u64,
    opts: Options,
    /// What the run did so far.
    pub stats: Stats,
}

impl Run {
    /// A run of `target` from input 0 with `seed`.
    pub fn new(target: Target, seed: u64, opts: Options) -> Run {
        let stats = Stats {
            target: target.name().to_string(),
            ..Stats::default()
        };
        Run {
            target,
            seed,
            next: 0,
            opts,
            stats,
        }
    }

    /// Runs the next `n` inputs.
    pub fn step(&mut self, n: u64) {
        for _ in 0..n {
            let index = self.next;
            self.next += 1;
            self.one(index);
        }
    }

    fn one(&mut self, index: u64) {
        // Only handling and judging are timed, not making the input.
        let (verdict, replay, took) = match &self.target {
            Target::Intake(h) => {
                let input = h.generate(self.seed, index);
                let started = Instant::now();
                let verdict = run_intake(h, &input);
                (verdict, ReplayInput::Intake(input), started.elapsed())
            }
            Target::Escape(t) => {
                let input = escape::generate(t, self.seed, index);
                let started = Instant::now();
                let verdict =
                    guarded(|| escape::check(&input)).and_then(|r| r.map(|()| Outcome::Accepted));
                (verdict, ReplayInput::Escape(input), started.elapsed())
            }
        };
        self.stats.inputs += 1;
        if self.stats.slowest.is_none_or(|(_, d)| took > d) {
            self.stats.slowest = Some((index, took));
        }
        let verdict = match (verdict, self.opts.slow_limit) {
            (Ok(_), Some(limit)) if took > limit => Err(format!(
                "slow: {:.0} ms to handle one input twice and judge it, limit {} ms",
                took.as_secs_f64() * 1000.0,
                limit.as_millis()
            )),
            (v, _) => v,
        };
        match verdict {
            Ok(Outcome::Accepted) => self.stats.accepted += 1,
            Ok(Outcome::Challenge) => self.stats.challenges += 1,
            Ok(Outcome::Ignored) => self.stats.ignored += 1,
            Ok(Outcome::Probe) => self.stats.probes += 1,
            Ok(Outcome::Refused(s)) => *self.stats.refused.entry(s).or_default() += 1,
            Err(message) => self.fail(index, message, replay),
        }
    }

    fn fail(&mut self, index: u64, message: String, input: ReplayInput) {
        let kind = kind_of(&message);
        let seen = self.stats.failure_kinds.entry(kind).or_default();
        *seen += 1;
        if *seen as usize > self.opts.keep_per_kind {
            return;
        }
        let replay = self.opts.replay_dir.as_ref().and_then(|dir| {
            let r = Replay {
                target: self.stats.target.clone(),
                seed: self.seed,
                index,
                failure: message.clone(),
                intake: match &input {
                    ReplayInput::Intake(i) => Some(i.clone()),
                    ReplayInput::Escape(_) => None,
                },
                escape: match input {
                    ReplayInput::Escape(e) => Some(e),
                    ReplayInput::Intake(_) => None,
                },
            };
            write_replay(dir, &r).ok()
        });
        self.stats.failures.push(Failure {
            index,
            message: message.chars().take(600).collect(),
            replay,
        });
    }
}

enum ReplayInput {
    Intake(Input),
    Escape(escape::EscInput),
}

/// Runs an intake input twice (each guarded against panics) and judges the results.
fn run_intake(h: &Harness, input: &Input) -> Result<Outcome, String> {
    let first = guarded(|| h.handle(input))??;
    let second = guarded(|| h.handle(input))??;
    match (first.first(), second.first()) {
        (Some(a), Some(b)) => intake::judge(h, input, a, b),
        _ => Err("intake gave no result".to_string()),
    }
}

fn write_replay(dir: &Path, r: &Replay) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}-{}-{}.json", r.target, r.seed, r.index));
    let text = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs a replay file's input again: what the oracles say now.
pub fn replay(r: &Replay) -> Result<String, String> {
    if let Some(input) = &r.intake {
        let h = Harness::new(&input.target)?;
        let first: Vec<Handled> = guarded(|| h.handle(input))??;
        let shown = format!("{first:?}");
        return run_intake(&h, input).map(|o| {
            format!(
                "{o:?}; result {}",
                shown.chars().take(2000).collect::<String>()
            )
        });
    }
    if let Some(input) = &r.escape {
        return guarded(|| escape::check(input))?.map(|()| "oracles hold".to_string());
    }
    Err("the replay file holds no input".to_string())
}

/// Runs `per_target` inputs of each target with `seed`; used by the short test pass.
pub fn run_counted(
    targets: &[&str],
    seed: u64,
    per_target: u64,
    opts: &Options,
) -> Result<Vec<Stats>, String> {
    targets
        .iter()
        .map(|t| {
            let mut run = Run::new(Target::new(t)?, seed, opts.clone());
            run.step(per_target);
            Ok(run.stats)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors_quietly() {
        let r: Result<(), String> = guarded(|| panic!("boom {}", 7));
        let m = r.expect_err("a panic");
        assert!(m.starts_with("panic: boom 7 at "), "{m}");
        assert_eq!(guarded(|| 3), Ok(3));
    }

    #[test]
    fn kinds_drop_the_details() {
        assert_eq!(
            kind_of("email \"x\\\"y\" is not exactly in the input"),
            "email … is not exactly in the input"
        );
        assert_eq!(kind_of("took 120 ms, limit 1000"), "took # ms, limit #");
    }
}
