//! A throwaway OpenLDAP slapd for tests

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::process::{poll, read_log, run, sh_quote, spawn_logged, tail, terminate, Watchdog};
use crate::{free_port, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL: usize = 40;

/// A throwaway OpenLDAP slapd on a free 127.0.0.1 port, so LDAP code is tested against the real server
///
/// What it runs (OpenLDAP 2.5, one `back_mdb` database in a temp dir, suffix [`Slapd::SUFFIX`]):
/// - schemas core, cosine, nis, inetorgperson; the ppolicy schema (pwdPolicy,
///   pwdAccountLockedTime, ...) is built into the 2.5 ppolicy overlay, there is no ppolicy.schema
/// - overlay `memberof` with `memberof-refint TRUE`: `memberOf` is kept on members of
///   groupOfNames/`member` only (not groupOfUniqueNames, not posixGroup memberUid)
/// - overlay `refint` on `member` and `uniqueMember`, with `refint_nothing` set to
///   [`Slapd::PLACEHOLDER`]: deleting or renaming an entry fixes every group that names it, and a
///   groupOfNames whose last member is deleted keeps the placeholder as its only member. refint
///   works in a background task after the DEL/MODRDN has answered, so poll (see
///   [`Slapd::search_until`]); its internal modifications are not logged as operations
/// - overlay `ppolicy` with the default policy [`Slapd::DEFAULT_POLICY`] (no lockout after failed
///   binds): `pwdAccountLockedTime: 000001010000Z` locks an account, its binds then fail with 49
/// - indexes: equality on objectClass, uid, mail, cn, employeeNumber, member, uniqueMember,
///   memberUid and entryUUID (what the LDAP connector searches by; entryUUID as for syncrepl)
/// - ACLs: userPassword is writable by self, usable for binds by anonymous, hidden from others;
///   everything else is readable by all; [`Slapd::ROOT_DN`] can do anything
/// - base entries loaded with slapadd before start (so no operation is logged for them): the
///   suffix, ou=people, ou=groups, ou=disabled, ou=policies with the default policy, and the
///   placeholder `cn=nobody,ou=people` (an organizationalRole, so it matches no user filter)
///
/// slapd runs with `-d 256` (stats) and its stderr goes to a log file in the temp dir; slapd writes
/// each request line before it answers, so the log is complete for every answered operation.
#[derive(Debug)]
pub struct Slapd {
    port: u16,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    dir: tempfile::TempDir,
}

/// Operations slapd received (successful or not), counted from its stats log, to assert how many calls code made
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// BIND requests (simple or SASL, anonymous included)
    pub bind: u64,
    /// SRCH requests
    pub search: u64,
    /// CMP requests
    pub compare: u64,
    /// ADD requests
    pub add: u64,
    /// MOD requests
    pub modify: u64,
    /// DEL requests
    pub delete: u64,
    /// MODRDN requests
    pub modrdn: u64,
    /// Entries sent back by searches (the `nentries` of each SEARCH RESULT), to measure what a
    /// search costs beyond its round trip
    pub entries: u64,
}

/// One `ldapmodify -c` run ([`Slapd::bulk_modify`])
#[derive(Debug, Clone, Copy)]
pub struct BulkRun {
    /// From the process's start to its exit
    pub wall: Duration,
    /// The process's peak resident set, in KiB (`None` without GNU time)
    pub max_rss_kib: Option<u64>,
    /// Changes the server refused (error lines on stderr)
    pub failed: usize,
    /// Whether ldapmodify exited 0 (every change applied)
    pub exit_ok: bool,
}

impl OpCounts {
    /// add + modify + delete + modrdn, because "did this change the directory" is the usual question
    pub fn mutations(&self) -> u64 {
        self.add + self.modify + self.delete + self.modrdn
    }

    /// The operations since an earlier reading, so helper calls made before do not count
    pub fn since(&self, earlier: &OpCounts) -> OpCounts {
        OpCounts {
            bind: self.bind.saturating_sub(earlier.bind),
            search: self.search.saturating_sub(earlier.search),
            compare: self.compare.saturating_sub(earlier.compare),
            add: self.add.saturating_sub(earlier.add),
            modify: self.modify.saturating_sub(earlier.modify),
            delete: self.delete.saturating_sub(earlier.delete),
            modrdn: self.modrdn.saturating_sub(earlier.modrdn),
            entries: self.entries.saturating_sub(earlier.entries),
        }
    }
}

impl Slapd {
    /// The database suffix, shared by all test directories
    pub const SUFFIX: &'static str = "dc=example,dc=org";
    /// The rootdn, which bypasses ACLs and limits
    pub const ROOT_DN: &'static str = "cn=admin,dc=example,dc=org";
    /// The rootdn's password
    pub const ROOT_PW: &'static str = "secret";
    /// Where users live
    pub const PEOPLE: &'static str = "ou=people,dc=example,dc=org";
    /// Where groups live
    pub const GROUPS: &'static str = "ou=groups,dc=example,dc=org";
    /// Where disabled users are moved to
    pub const DISABLED: &'static str = "ou=disabled,dc=example,dc=org";
    /// The refint_nothing value: the member a groupOfNames keeps when its last member is deleted
    pub const PLACEHOLDER: &'static str = "cn=nobody,ou=people,dc=example,dc=org";
    /// The ppolicy default policy entry, so pwdAccountLockedTime locks accounts
    pub const DEFAULT_POLICY: &'static str = "cn=default,ou=policies,dc=example,dc=org";

    /// Starts slapd on a free port with the configuration described on [`Slapd`], retrying on a port race
    pub fn start() -> Result<Slapd, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("revoke-slapd-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for slapd", e))?;
        let root = dir.path();
        let db = root.join("db");
        std::fs::create_dir(&db)
            .map_err(|e| TestkitError::io(format!("create {}", db.display()), e))?;
        let conf = root.join("slapd.conf");
        write(&conf, &config(root))?;
        let base = root.join("base.ldif");
        write(&base, &base_ldif())?;

        let mut slapadd = Command::new(sbin("slapadd"));
        slapadd.arg("-f").arg(&conf).arg("-l").arg(&base);
        run(slapadd, "slapadd (loading the base entries)", None)?;

        let log_path = root.join("slapd.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut child = spawn_slapd(&conf, &log_path, port)?;
            match wait_ready(&mut child, &log_path, port) {
                Ok(()) => {
                    let watchdog = Watchdog::spawn(&format!(
                        // A zombie (killed, not yet reaped by whoever inherited it) counts as gone.
                        "kill -TERM {pid} 2>/dev/null; i=0; \
                         while [ $i -lt 50 ] && [ -e /proc/{pid} ] && ! grep -q '^State:[[:space:]]*Z' /proc/{pid}/status 2>/dev/null; \
                         do sleep 0.1; i=$((i+1)); done; \
                         kill -KILL {pid} 2>/dev/null; rm -rf {dir}",
                        pid = child.id(),
                        dir = sh_quote(&root.to_string_lossy()),
                    ));
                    let watchdog = match watchdog {
                        Ok(w) => w,
                        Err(e) => {
                            terminate(&mut child, Duration::from_secs(5));
                            return Err(e);
                        }
                    };
                    return Ok(Slapd {
                        port,
                        child,
                        watchdog,
                        log_path,
                        dir,
                    });
                }
                Err(Attempt::PortTaken(log)) => last_log = log,
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(TestkitError::PortRace {
            what: "slapd".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    /// The LDAP URL to connect to, e.g. `ldap://127.0.0.1:41234`
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The port slapd listens on (on 127.0.0.1)
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds entries as the rootdn with ldapadd, to seed a directory (e.g. with [`crate::DEMO_LDIF`])
    pub fn add_ldif(&self, ldif: &str) -> Result<(), TestkitError> {
        run(self.tool("ldapadd"), "ldapadd", Some(ldif)).map(|_| ())
    }

    /// Applies changes (LDIF with changetype) as the rootdn with ldapmodify, to set up a test case
    pub fn modify_ldif(&self, ldif: &str) -> Result<(), TestkitError> {
        run(self.tool("ldapmodify"), "ldapmodify", Some(ldif)).map(|_| ())
    }

    /// Runs one `ldapmodify -c` (continue after errors) of an LDIF of changes as the rootdn, the
    /// way an admin applies a prepared bulk change, and measures it: for benches that compare
    /// against it
    ///
    /// The LDIF is written to a file first (not timed); the wall time covers the ldapmodify
    /// process from start to exit. Its peak RSS comes from GNU time (`/usr/bin/time -f %M`) where
    /// that is installed. Errors of single changes do not fail the call (that is what `-c` is
    /// for): they are counted in [`BulkRun::failed`] from ldapmodify's stderr.
    pub fn bulk_modify(&self, ldif: &str) -> Result<BulkRun, TestkitError> {
        let file = self.dir.path().join("bulk.ldif");
        write(&file, ldif)?;
        let rss_file = self.dir.path().join("bulk.rss");
        let time = Path::new("/usr/bin/time");
        let mut cmd = if time.exists() {
            let mut c = Command::new(time);
            c.args(["-f", "%M", "-o"]).arg(&rss_file).arg("ldapmodify");
            c
        } else {
            Command::new("ldapmodify")
        };
        cmd.args(["-x", "-c", "-D", Self::ROOT_DN, "-w", Self::ROOT_PW, "-H"])
            .arg(self.url())
            .arg("-f")
            .arg(&file)
            .stdin(std::process::Stdio::null());
        let start = std::time::Instant::now();
        let out = cmd
            .output()
            .map_err(|e| TestkitError::io("run ldapmodify -c", e))?;
        let wall = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let max_rss_kib = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
        let _ = std::fs::remove_file(&file);
        Ok(BulkRun {
            wall,
            max_rss_kib,
            failed: stderr.matches("ldap_").count(),
            exit_ok: out.status.success(),
        })
    }

    /// `ldapsearch -LLL` output (unwrapped lines) as the rootdn, subtree scope, for assertions; "+" asks for operational attributes
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String, TestkitError> {
        let mut cmd = self.tool("ldapsearch");
        cmd.args([
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-s",
            "sub",
            "-b",
            base,
            filter,
        ])
        .args(attrs);
        run(cmd, &format!("ldapsearch -b {base:?} {filter:?}"), None)
    }

    /// Repeats [`Slapd::search`] until `done` accepts its output, because refint updates groups asynchronously
    pub fn search_until(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, TestkitError> {
        let mut last = String::new();
        let mut error = None;
        let found = poll(timeout, || match self.search(base, filter, attrs) {
            Ok(out) if done(&out) => Some(out),
            Ok(out) => {
                last = out;
                None
            }
            Err(e) => {
                error = Some(e);
                Some(String::new())
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        found.ok_or_else(|| TestkitError::Timeout {
            what: format!("the expected result of searching {base:?} for {filter:?}"),
            waited: timeout,
            last,
        })
    }

    /// Counts of operations received so far, from the stats log; compare two readings with [`OpCounts::since`]
    ///
    /// Helper calls ([`Slapd::add_ldif`], [`Slapd::search`], ...) are operations too (a BIND and
    /// their request), so take a reading right before the code under test runs. slapd logs a
    /// search's RESULT line (which carries `entries`) just after it has sent the result, so a
    /// reading waits up to [`RESULT_LAG`] until every search request has its RESULT line.
    pub fn op_counts(&self) -> Result<OpCounts, TestkitError> {
        let mut last = Ok((OpCounts::default(), 0));
        // A search still running (or abandoned) has no RESULT line: after the wait, the reading
        // counts what is there.
        let _ = poll(RESULT_LAG, || {
            last = self.read_log().map(|log| count_ops(&log));
            match &last {
                Ok((_, unanswered)) if *unanswered > 0 => None,
                _ => Some(()),
            }
        });
        last.map(|(c, _)| c)
    }

    /// Every MOD, DEL and MODRDN request so far, in order, as "MOD uid=alice,ou=people,dc=example,dc=org"
    ///
    /// The DN is the one the client sent (MODRDN shows the old DN); ADDs are not listed; failed
    /// requests are listed too.
    pub fn mutations(&self) -> Result<Vec<String>, TestkitError> {
        let log = self.read_log()?;
        Ok(log
            .lines()
            .filter_map(parse_op)
            .filter(|(verb, _)| matches!(*verb, "MOD" | "DEL" | "MODRDN"))
            .filter_map(|(verb, rest)| {
                let dn = rest.strip_prefix("dn=\"")?;
                let dn = dn.strip_suffix('"').unwrap_or(dn);
                Some(format!("{verb} {dn}"))
            })
            .collect())
    }

    /// Every MOD, DEL and MODRDN request so far with the result code slapd answered it with, in
    /// order, as ("MOD uid=alice,ou=people,dc=example,dc=org", 0); a request not answered yet
    /// has `None`
    ///
    /// Tells a write that changed the directory (0) from one the server refused (122
    /// assertionFailed, 32 noSuchObject, 16 noSuchAttribute, ...), which changed nothing.
    ///
    /// slapd logs a RESULT line just after it has sent the answer, so a reading waits up to
    /// [`RESULT_LAG`] until every request has its result.
    pub fn mutation_results(&self) -> Result<Vec<(String, Option<u32>)>, TestkitError> {
        let mut last = Ok(Vec::new());
        let _ = poll(RESULT_LAG, || {
            last = self.read_log().map(|log| results_of(&log));
            match &last {
                Ok(r) if r.iter().any(|(_, rc)| rc.is_none()) => None,
                _ => Some(()),
            }
        });
        last
    }

    /// The MOD, DEL and MODRDN requests so far that succeeded (answered 0): what changed the
    /// directory, as [`Slapd::mutations`] lists them
    pub fn changes(&self) -> Result<Vec<String>, TestkitError> {
        Ok(self
            .mutation_results()?
            .into_iter()
            .filter(|(_, rc)| *rc == Some(0))
            .map(|(m, _)| m)
            .collect())
    }

    /// slapd's whole log so far, to print when a test fails
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    fn read_log(&self) -> Result<String, TestkitError> {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| TestkitError::io(format!("read {}", self.log_path.display()), e))
    }

    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(name);
        cmd.args(["-x", "-D", Self::ROOT_DN, "-w", Self::ROOT_PW, "-H"])
            .arg(self.url());
        cmd
    }

    /// The temp dir holding slapd.conf, the database and the log
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// How long a reading of the op counts waits for the RESULT lines of answered searches.
pub const RESULT_LAG: Duration = Duration::from_secs(2);

/// The counts in a stats log, and how many search requests have no RESULT line yet.
fn count_ops(log: &str) -> (OpCounts, u64) {
    let mut c = OpCounts::default();
    let mut results = 0u64;
    for (verb, rest) in log.lines().filter_map(parse_op) {
        match verb {
            "BIND"
                if rest
                    .rsplit(' ')
                    .next()
                    .is_some_and(|m| m.starts_with("method=")) =>
            {
                c.bind += 1
            }
            "SRCH" if rest.starts_with("base=") => c.search += 1,
            "CMP" if rest.starts_with("dn=") => c.compare += 1,
            "ADD" if rest.starts_with("dn=") => c.add += 1,
            "MOD" if rest.starts_with("dn=") => c.modify += 1,
            "DEL" if rest.starts_with("dn=") => c.delete += 1,
            "MODRDN" if rest.starts_with("dn=") => c.modrdn += 1,
            "SEARCH" if rest.starts_with("RESULT ") => {
                results += 1;
                c.entries += rest
                    .split(' ')
                    .find_map(|f| f.strip_prefix("nentries="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            }
            _ => {}
        }
    }
    (c, c.search.saturating_sub(results))
}

/// Every MOD, DEL and MODRDN request of a stats log with the result code it was answered with.
fn results_of(log: &str) -> Vec<(String, Option<u32>)> {
    let mut out: Vec<(String, Option<u32>)> = Vec::new();
    let mut open: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    for line in log.lines() {
        let Some(at) = line.find("conn=") else {
            continue;
        };
        let mut words = line[at..].splitn(4, ' ');
        let (Some(conn), Some(op), Some(verb)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let rest = words.next().unwrap_or("");
        let key = (conn.to_string(), op.to_string());
        match verb {
            "MOD" | "DEL" | "MODRDN" => {
                if let Some(dn) = rest.strip_prefix("dn=\"") {
                    let dn = dn.strip_suffix('"').unwrap_or(dn);
                    open.insert(key, out.len());
                    out.push((format!("{verb} {dn}"), None));
                }
            }
            "RESULT" => {
                if let Some(i) = open.remove(&key) {
                    out[i].1 = rest
                        .split(' ')
                        .find_map(|f| f.strip_prefix("err="))
                        .and_then(|n| n.parse().ok());
                }
            }
            _ => {}
        }
    }
    out
}

/// (verb, rest) of a stats line such as `... conn=1001 op=2 MOD dn="..."`
fn parse_op(line: &str) -> Option<(&str, &str)> {
    let s = &line[line.find("conn=")?..];
    let (_conn, s) = s.split_once(' ')?;
    let (op, s) = s.split_once(' ')?;
    if !op.starts_with("op=") || op.ends_with(':') {
        return None;
    }
    s.split_once(' ')
}

enum Attempt {
    PortTaken(String),
    Failed(TestkitError),
}

fn spawn_slapd(conf: &Path, log_path: &Path, port: u16) -> Result<Child, TestkitError> {
    let mut cmd = Command::new(sbin("slapd"));
    cmd.arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .arg("-f")
        .arg(conf)
        .args(["-d", "256"]);
    spawn_logged(cmd, log_path, &sbin("slapd").display().to_string())
}

fn wait_ready(child: &mut Child, log_path: &Path, port: u16) -> Result<(), Attempt> {
    let addr = format!("127.0.0.1:{port}");
    let outcome = poll(READY_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(status));
        }
        // "slapd starting" is logged once the listener is bound; connect to be sure it is ours.
        let started = read_log(log_path).contains("slapd starting");
        (started && TcpStream::connect(&addr).is_ok()).then_some(Ok(()))
    });
    let log = read_log(log_path);
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(_)) if log.contains("Address already in use") => {
            Err(Attempt::PortTaken(tail(&log, LOG_TAIL)))
        }
        Some(Err(status)) => Err(Attempt::Failed(TestkitError::Exited {
            what: format!("slapd on {addr}"),
            status,
            log: tail(&log, LOG_TAIL),
        })),
        None => {
            terminate(child, Duration::from_secs(5));
            Err(Attempt::Failed(TestkitError::NotReady {
                what: "slapd".into(),
                addr,
                waited: READY_TIMEOUT,
                log: tail(&log, LOG_TAIL),
            }))
        }
    }
}

/// /usr/sbin/NAME when it exists (it is not on a normal user's PATH), else NAME
fn sbin(name: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

fn write(path: &Path, text: &str) -> Result<(), TestkitError> {
    std::fs::write(path, text).map_err(|e| TestkitError::io(format!("write {}", path.display()), e))
}

fn config(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
sizelimit unlimited
timelimit unlimited

database mdb
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {root}/db
maxsize 1073741824
dbnosync
index objectClass eq
index uid,mail,cn,employeeNumber eq
index member,uniqueMember,memberUid eq
index entryUUID eq
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by * read

overlay memberof
memberof-refint TRUE

overlay refint
refint_attributes member uniqueMember
refint_nothing "{placeholder}"

overlay ppolicy
ppolicy_default "{policy}"
"#,
        suffix = Slapd::SUFFIX,
        rootdn = Slapd::ROOT_DN,
        rootpw = Slapd::ROOT_PW,
        placeholder = Slapd::PLACEHOLDER,
        policy = Slapd::DEFAULT_POLICY,
    )
}

fn base_ldif() -> String {
    format!(
        "dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {people}
objectClass: organizationalUnit
ou: people

dn: {groups}
objectClass: organizationalUnit
ou: groups

dn: {disabled}
objectClass: organizationalUnit
ou: disabled

dn: ou=policies,{suffix}
objectClass: organizationalUnit
ou: policies

dn: {policy}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0

dn: {placeholder}
objectClass: organizationalRole
cn: nobody
description: placeholder member that refint leaves in a groupOfNames whose last member was deleted
",
        suffix = Slapd::SUFFIX,
        people = Slapd::PEOPLE,
        groups = Slapd::GROUPS,
        disabled = Slapd::DISABLED,
        policy = Slapd::DEFAULT_POLICY,
        placeholder = Slapd::PLACEHOLDER,
    )
}
