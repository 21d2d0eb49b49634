//! Runs a stand-in outside of `cargo test`, for the demo script and benchmarks
//!
//! Usage: `revoke-standin ldap [--ldif FILE]`
//!
//! Starts a throwaway slapd (see `revoke_testkit::Slapd`), adds FILE with ldapadd when given,
//! prints exactly one line `url=ldap://127.0.0.1:PORT` to stdout, then runs until its stdin
//! reaches EOF, and tears slapd down (stops it, removes its temp dir). `--ldif demo` loads the
//! built-in sample directory (`revoke_testkit::DEMO_LDIF`).
//!
//! Keep its stdin open for as long as the stand-in should live, and close it to stop it. From bash:
//!
//! ```text
//! coproc STANDIN { revoke-standin ldap --ldif demo; }
//! read -r line <&"${STANDIN[0]}"          # url=ldap://127.0.0.1:PORT
//! LDAP_URL=${line#url=}
//! ...                                     # use the directory
//! exec {STANDIN[1]}>&-; wait "$STANDIN_PID"   # close its stdin: clean teardown
//! ```
//!
//! SIGTERM, SIGINT or SIGKILL also work: the process dies without running `Drop`, and slapd's
//! watchdog (which notices that this process is gone) stops slapd and removes its temp dir
//! within a second.

use std::io::{Read, Write};
use std::process::ExitCode;

use revoke_testkit::{Slapd, DEMO_LDIF};

const USAGE: &str = "usage: revoke-standin ldap [--ldif FILE|demo]";

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revoke-standin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ldif = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ldap"] => None,
        ["ldap", "--ldif", "demo"] => Some(DEMO_LDIF.to_owned()),
        ["ldap", "--ldif", file] => Some(
            std::fs::read_to_string(file)
                .map_err(|e| format!("could not read ldif file {file}: {e}"))?,
        ),
        _ => {
            return Err(format!(
                "expected `ldap [--ldif FILE]`, found {args:?}; {USAGE}"
            ))
        }
    };

    let slapd = Slapd::start().map_err(|e| e.to_string())?;
    if let Some(ldif) = ldif {
        slapd.add_ldif(&ldif).map_err(|e| e.to_string())?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "url={}", slapd.url())
        .map_err(|e| format!("could not write the url to stdout: {e}"))?;
    stdout
        .flush()
        .map_err(|e| format!("could not flush stdout: {e}"))?;
    drop(stdout);

    // Wait for EOF on stdin; the content is ignored.
    let mut sink = [0u8; 4096];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("could not read stdin: {e}")),
        }
    }
    drop(slapd);
    Ok(())
}
