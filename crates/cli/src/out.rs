//! Standard output that a closed pipe ends quietly: `revokectl plan -o json | head -1` prints
//! what the reader takes and no panic. After the first broken pipe nothing more is written; the
//! command itself carries on (an `apply` whose output nobody reads still finishes its work).

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a broken pipe closes it for the rest of the run, silently. While a
/// progress bar is drawn on stderr, it is taken down for the line and drawn again below it.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    match progress_bar() {
        Some(bar) => bar.suspend(|| write_stdout(args, newline)),
        None => write_stdout(args, newline),
    }
}

fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let r = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = r {
        if e.kind() == ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether stderr gets ANSI colour: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>); a file or pipe gets plain text.
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// A line on stderr (a note, not a result), below any progress bar.
pub fn note(args: std::fmt::Arguments<'_>) {
    let line = format!("{args}\n");
    match progress_bar() {
        Some(bar) => bar.suspend(|| {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }),
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// The log's writer: each log line goes to stderr whole, below any progress bar.
#[derive(Default)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        match progress_bar() {
            Some(bar) => bar.suspend(|| {
                let _ = err.write_all(&self.0);
            }),
            None => {
                let _ = err.write_all(&self.0);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Progress on a terminal

/// The bar being drawn on stderr, if any: [`write`], [`note`] and the log take it down for
/// their lines.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn progress_bar() -> Option<ProgressBar> {
    BAR.lock().ok().and_then(|b| b.clone())
}

/// Progress of `apply`, `resume` and `import`: a bar on stderr when stderr is a terminal,
/// nothing otherwise (the per-item lines on stdout are the plain record then).
pub struct Progress {
    bar: Option<ProgressBar>,
    done: &'static str,
}

impl Progress {
    /// Whether a bar would be drawn: stderr is a terminal (and not `TERM=dumb`).
    pub fn wanted() -> bool {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
    }

    /// No bar (stderr is no terminal): every call is a no-op.
    pub fn none() -> Progress {
        Progress {
            bar: None,
            done: "",
        }
    }

    /// A bar of `len` steps of `unit`, shown only when [`Progress::wanted`]; `doing` is its
    /// word while it runs, `done` once finished.
    pub fn start(len: usize, doing: &'static str, done: &'static str, unit: &str) -> Progress {
        if len == 0 || !Progress::wanted() {
            return Progress::none();
        }
        let bar =
            ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(bar_style(stderr_colour(), unit));
        bar.set_message(doing);
        if let Ok(mut slot) = BAR.lock() {
            *slot = Some(bar.clone());
        }
        bar.tick();
        Progress {
            bar: Some(bar),
            done,
        }
    }

    /// One more step finished.
    pub fn inc(&self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
    }

    /// Leaves the bar on the terminal at where it stopped, with the closing word.
    pub fn finish(mut self) {
        if let Some(bar) = self.bar.take() {
            clear_slot();
            bar.finish_with_message(self.done);
            // The bar's line stays; what follows starts below it.
            let _ = std::io::stderr().write_all(b"\n");
        }
    }
}

impl Drop for Progress {
    /// A command that fails midway takes its bar down (the error follows on a clean line).
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            clear_slot();
            bar.finish_and_clear();
        }
    }
}

fn clear_slot() {
    if let Ok(mut slot) = BAR.lock() {
        *slot = None;
    }
}

/// The bar's look: coloured only where [`stderr_colour`] allows (`NO_COLOR`).
fn bar_style(colour: bool, unit: &str) -> ProgressStyle {
    let template = if colour {
        format!("{{msg:>9.cyan.bold}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} ({{elapsed}})")
    } else {
        format!("{{msg:>9}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})")
    };
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

// ---------------------------------------------------------------------------------------------
// Machine formats

/// A value as the machine format asks: pretty JSON (`json`, and `jsonl` where the value is one
/// whole answer), or YAML. YAML says the same value as the JSON: strings a YAML 1.1 reader
/// would take for something else (`no`, `on`, `0123`, `1e3`, `2026-12-05`, `*x`) are quoted.
pub fn document(value: &impl serde::Serialize, output: crate::Format) -> anyhow::Result<()> {
    match output {
        crate::Format::Yaml => {
            let text = yaml(value)?;
            write(format_args!("{}", text.trim_end_matches('\n')), true);
        }
        _ => write(
            format_args!("{}", serde_json::to_string_pretty(value)?),
            true,
        ),
    }
    Ok(())
}

/// One item of a stream (a result of `apply`, an imported event): a JSON line (`jsonl`), or a
/// YAML document of its own (`yaml`, each begun with `---`).
pub fn item(value: &impl serde::Serialize, output: crate::Format) -> anyhow::Result<()> {
    match output {
        crate::Format::Yaml => {
            let text = yaml(value)?;
            write(format_args!("---\n{}", text.trim_end_matches('\n')), true);
        }
        _ => write(format_args!("{}", serde_json::to_string(value)?), true),
    }
    Ok(())
}

/// The YAML text of a value (block style; long strings stay on one line, multi-line ones are
/// literal blocks).
pub fn yaml(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Folding a long line at spaces reads back the same in a YAML reader, but a reader of the
    // text (grep) would find the line cut: keep it whole.
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options)
        .map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))
}

/// The rule of [`stderr_colour`]: a terminal, and `NO_COLOR` absent or empty.
pub fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether an error is the reader of stdout going away (ends the command quietly).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// `println!` on [`write`].
macro_rules! outln {
    () => { $crate::out::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), true) };
}

/// `print!` on [`write`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), false) };
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(true, Some(OsStr::new("false"))), "any value counts");
        assert!(!colour(false, None));
    }
}
