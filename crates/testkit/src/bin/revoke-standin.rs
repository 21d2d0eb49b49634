//! Runs a stand-in outside of `cargo test`, for the demo script and benchmarks
//!
//! Usage: `revoke-standin ldap [--ldif FILE]`, or
//! `revoke-standin company --dir DIR [--people N] [--seed S] [--leavers L] [--github-spacing-ms MS]`
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
//! `company` starts every stand-in (slapd, moto, the GitHub, OneLogin, Okta and Entra ID
//! stand-ins, scim2-server)
//! seeded with one generated company (`revoke_testkit::company`; 60 people and seed 1 unless
//! told), writes into DIR (which must exist) `connectors.toml` (the `[connectors.*]` tables of
//! GitHub, AWS IAM, OneLogin, the SCIM app, Okta and Entra ID, with their secrets in files beside it; the
//! directory's own table is the caller's, it needs only the url), `leavers.jsonl` (the `data` of a
//! signed high-risk termination for each of L leavers, 5 unless told), `leavers.tsv` (their employee
//! id, email and username, tab-separated, for scripts) and `people.tsv` (everyone:
//! employee id, username, email, department, GitHub login, IAM user), then prints the same one line
//! `url=ldap://127.0.0.1:PORT`. A line `counts` on stdin prints what each stand-in received since
//! the seeding (one line per system, then `end`); EOF tears everything down.
//!
//! SIGTERM, SIGINT or SIGKILL also work: the process dies without running `Drop`, and slapd's
//! watchdog (which notices that this process is gone) stops slapd and removes its temp dir
//! within a second.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use revoke_testkit::{Company, CompanyStack, Slapd, DEMO_LDIF};

const USAGE: &str = "usage: revoke-standin ldap [--ldif FILE|demo] | revoke-standin company --dir DIR [--people N] [--seed S] [--leavers L] [--github-spacing-ms MS]";

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
    if args.first().map(String::as_str) == Some("company") {
        return company(&args[1..]);
    }
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

/// The `company` mode: every stand-in, one company
fn company(args: &[String]) -> Result<(), String> {
    let mut dir: Option<PathBuf> = None;
    let (mut people, mut seed, mut leavers, mut spacing) = (60usize, 1u64, 5usize, 1000u64);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("expected a value after {flag}, found none; {USAGE}"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("expected a number for {what}, found {value:?}"))
        };
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--people" => people = number("--people")? as usize,
            "--seed" => seed = number("--seed")?,
            "--leavers" => leavers = number("--leavers")? as usize,
            "--github-spacing-ms" => spacing = number("--github-spacing-ms")?,
            _ => return Err(format!("unknown option {flag:?}; {USAGE}")),
        }
    }
    let dir = dir.ok_or_else(|| format!("expected --dir DIR, found none; {USAGE}"))?;
    let stack = CompanyStack::start(Company::generate(people, seed)).map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("could not write {}: {e}", dir.join(name).display()))
    };
    write(
        "connectors.toml",
        &stack
            .connectors_toml(&dir, spacing)
            .map_err(|e| e.to_string())?,
    )?;
    let (mut lines, mut tsv) = (String::new(), String::new());
    for p in stack.company.leavers(leavers) {
        lines += &p.termination().to_string();
        lines.push('\n');
        tsv += &format!("{}\t{}\t{}\n", p.employee_id, p.email, p.username);
    }
    write("leavers.jsonl", &lines)?;
    write("leavers.tsv", &tsv)?;
    let mut table = String::from("employee_id\tusername\temail\tdepartment\tgithub\tiam\n");
    for p in &stack.company.people {
        table += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            p.employee_id,
            p.username,
            p.email,
            p.department,
            p.github.as_ref().map_or("-", |g| g.login.as_str()),
            p.iam.as_ref().map_or("-", |a| a.name.as_str()),
        );
    }
    write("people.tsv", &table)?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "url={}", stack.slapd.url())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("could not write the url to stdout: {e}"))?;
    drop(stdout);

    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let line = line.map_err(|e| format!("could not read stdin: {e}"))?;
        if line.trim() != "counts" {
            continue;
        }
        let counts = stack.counts().map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        for (system, r) in counts {
            writeln!(
                out,
                "{system}: {} reads, {} writes, {} throttled ({})",
                r.reads, r.writes, r.throttled, r.note
            )
            .map_err(|e| format!("could not write to stdout: {e}"))?;
        }
        writeln!(out, "end")
            .and_then(|()| out.flush())
            .map_err(|e| format!("could not write to stdout: {e}"))?;
    }
    drop(stack);
    Ok(())
}
