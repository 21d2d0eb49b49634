//! The operator console (`/ui/`) against the real `revoked` binary with its embedded SQLite store
//! and a real slapd: sign-in with API tokens, scopes, CSRF and origin checks, security headers,
//! escaping of hostile values; and a real browser (Debian's chromium driven by playwright-core,
//! tests/browser/console.mjs) approving a held job, watching it run, acknowledging a manual step
//! and downloading the evidence.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use revoke_testkit::{Slapd, DEMO_LDIF};
use serde_json::json;

/// The guard lets the first job through and holds every later one; one manual step per job.
const EXTRA: &str = r#"[guard]
max_jobs = 1
window_secs = 3600
[policies.default]
retention_days = 30
manual = [{ id = "collect-laptop", title = "Collect laptop and badge" }]
"#;

const HOSTILE_REASON: &str = "<script>alert(1)</script> leaver";
const HOSTILE_EVENT: &str = "\"><img src=x onerror=alert(2)>";

/// One HTTP answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

/// A client that keeps the console's cookies and follows no redirect, like a browser would
/// but visibly.
struct Agent {
    http: reqwest::blocking::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Agent {
    fn new(d: &Daemon) -> Agent {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Agent {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            base: d.base.clone(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: reqwest::blocking::Response) -> Answer {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for sc in headers.get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (pair, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Answer {
            status,
            headers,
            body: r.text().unwrap(),
        }
    }

    fn get(&mut self, path: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .unwrap();
        self.keep(r)
    }

    /// A form POST; `origin` None sends none, Some("") this console's own.
    fn post(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        match origin {
            Some("") => rb = rb.header("origin", self.base.clone()),
            Some(o) => rb = rb.header("origin", o),
            None => {}
        }
        let r = rb.send().unwrap();
        self.keep(r)
    }

    /// Signs in with `token` through the sign-in form; the session's CSRF token.
    fn sign_in(&mut self, token: &str) -> String {
        let page = self.get("/ui/login");
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = csrf_of(&page.body);
        let r = self.post(
            "/ui/login",
            &[("csrf", csrf.as_str()), ("token", token)],
            Some(""),
        );
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), "/ui/jobs");
        let jobs = self.get("/ui/jobs");
        assert_eq!(jobs.status, 200, "{}", jobs.body);
        csrf_of(&jobs.body)
    }
}

/// The first CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Submits a job through the API as the operator; its id.
fn submit(c: &Client, d: &Daemon, body: serde_json::Value) -> (String, String) {
    let (status, answer) = c.post(d, "/api/v1/jobs", Some(OPERATOR_TOKEN), body);
    assert_eq!(status, 202, "{answer}");
    (
        answer["job_id"].as_str().unwrap().to_string(),
        answer["state"].as_str().unwrap().to_string(),
    )
}

fn audit_of(c: &Client, d: &Daemon, job: &str) -> String {
    let (status, text) = c.get(
        d,
        &format!("/api/v1/jobs/{job}/evidence?format=json"),
        Some(READ_TOKEN),
    );
    assert_eq!(status, 200, "{text}");
    text
}

#[test]
fn sign_in_scopes_csrf_headers_and_escaping() {
    let slapd = Slapd::start().unwrap();
    slapd.add_ldif(DEMO_LDIF).unwrap();
    let setup = Setup::new(&slapd, None, EXTRA);
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    let (first, state) = submit(
        &c,
        &d,
        json!({ "employee_id": "1002", "email": "bob@example.org" }),
    );
    assert_eq!(state, "scheduled");
    let (held, state) = submit(
        &c,
        &d,
        json!({ "employee_id": "1001", "email": "alice@example.org", "reason": HOSTILE_REASON, "idempotency_key": HOSTILE_EVENT }),
    );
    assert_eq!(state, "awaiting_approval");

    // Not signed in: every page sends to the sign-in page; the sign-in page has the headers.
    let mut anon = Agent::new(&d);
    let r = anon.get("/ui/jobs");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/ui/login");
    let r = anon.get(&format!("/ui/jobs/{held}"));
    assert_eq!(
        (r.status, r.header("location").as_str()),
        (303, "/ui/login")
    );
    let login = anon.get("/ui/login");
    assert_eq!(login.status, 200);
    assert!(login.header("content-type").starts_with("text/html"));
    let csp = login.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(login.header("x-content-type-options"), "nosniff");
    assert_eq!(login.header("x-frame-options"), "DENY");
    assert_eq!(login.header("cache-control"), "no-store");
    assert!(!login.header("referrer-policy").is_empty());
    assert!(!login.body.contains("<script>"), "no inline script");
    assert!(!login.body.contains("style="), "no inline style");
    let set = login.header("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");

    // Sign-in refusals: an unknown token, no CSRF token, a foreign origin.
    let csrf = csrf_of(&login.body);
    let r = anon.post(
        "/ui/login",
        &[("csrf", &csrf), ("token", "rvk_nope")],
        Some(""),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.header("set-cookie").contains("revoked_session"));
    let r = anon.post("/ui/login", &[("token", OPERATOR_TOKEN)], Some(""));
    assert_eq!(r.status, 403, "{}", r.body);
    let r = anon.post(
        "/ui/login",
        &[("csrf", &csrf), ("token", OPERATOR_TOKEN)],
        Some("https://evil.example"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!anon.cookies.contains_key("revoked_session"));
    // Behind a proxy that rewrites Host: the origin matches the forwarded host instead.
    let csrf = csrf_of(&anon.get("/ui/login").body);
    let proxied = |forwarded: &str| {
        anon.http
            .post(format!("{}/ui/login", d.base))
            .header("cookie", anon.cookie_header())
            .header("origin", "https://console.example")
            .header("x-forwarded-host", forwarded)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&token={OPERATOR_TOKEN}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(proxied("elsewhere.example"), 403);
    assert_eq!(proxied("console.example"), 303);

    // Behind TLS (a proxy says so): the session cookie is Secure and HSTS is sent.
    let tls = anon
        .http
        .get(format!("{}/ui/login", d.base))
        .header("x-forwarded-proto", "https")
        .send()
        .unwrap();
    assert!(tls.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    assert!(tls.headers().contains_key("strict-transport-security"));

    // A read token sees the held job but no button, and its POST is refused.
    let mut viewer = Agent::new(&d);
    let vcsrf = viewer.sign_in(READ_TOKEN);
    let page = viewer.get("/ui/approvals");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&held), "{}", page.body);
    assert!(!page.body.contains("btn-approve"), "{}", page.body);
    assert!(!page.body.contains("btn-reject"), "{}", page.body);
    let job_page = viewer.get(&format!("/ui/jobs/{held}"));
    assert!(!job_page.body.contains("btn-approve"));
    assert!(!job_page.body.contains("btn-ack"));
    let r = viewer.post(
        &format!("/ui/jobs/{held}/approve"),
        &[("csrf", &vcsrf), ("reason", "viewer")],
        Some(""),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("operator scope"), "{}", r.body);
    assert_eq!(
        c.get_json(&d, &format!("/api/v1/jobs/{held}"))["state"],
        "awaiting_approval"
    );

    // The operator: hostile values are escaped wherever they appear.
    let mut ops = Agent::new(&d);
    let csrf = ops.sign_in(OPERATOR_TOKEN);
    assert!(ops.get("/ui/approvals").body.contains("btn-approve"));
    for path in [
        format!("/ui/jobs/{held}"),
        "/ui/approvals".to_string(),
        "/ui/jobs".to_string(),
    ] {
        let p = ops.get(&path);
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(!p.body.contains("<script>alert"), "{path}: {}", p.body);
        assert!(!p.body.contains("<img src=x"), "{path}: {}", p.body);
        assert!(
            p.body
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; leaver"),
            "{path}: {}",
            p.body
        );
    }
    assert!(ops
        .get(&format!("/ui/jobs/{held}"))
        .body
        .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));

    // The listing's filters are the store's query; a bad one is a 400 naming it.
    let held_row = format!("data-job=\"{held}\"");
    let first_row = format!("data-job=\"{first}\"");
    let p = ops.get("/ui/jobs?state=awaiting_approval");
    assert!(p.body.contains(&held_row) && !p.body.contains(&first_row));
    let p = ops.get("/ui/jobs?subject=bob%40example.org&source=api");
    assert!(!p.body.contains(&held_row) && p.body.contains(&first_row));
    // (a day either side: the test may run across midnight)
    let day = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).format("%Y-%m-%d");
    let p = ops.get(&format!("/ui/jobs?since={}&until={}", day(-1), day(1)));
    assert!(p.body.contains(&held_row) && p.body.contains(&first_row));
    let p = ops.get("/ui/jobs?since=2000-01-01&until=2000-01-02");
    assert!(p.body.contains("No job matches"), "{}", p.body);
    let p = ops.get("/ui/jobs?since=yesterday");
    assert_eq!(p.status, 400);
    assert!(p.body.contains("since: expected a date"), "{}", p.body);

    // A job whose access removal is past the SLA (effective years ago, still held) is flagged.
    let (late, _) = submit(
        &c,
        &d,
        json!({ "employee_id": "1003", "email": "carol@example.org", "effective_at": "2020-01-01T00:00:00Z" }),
    );
    let p = ops.get("/ui/jobs");
    assert!(
        p.body
            .contains(&format!("<tr class=\"breach\" data-job=\"{late}\"")),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(&format!("<tr data-job=\"{held}\"")),
        "{}",
        p.body
    );
    assert!(ops
        .get(&format!("/ui/jobs/{late}"))
        .body
        .contains("past it: access not removed yet"));
    assert!(ops
        .get(&format!("/ui/jobs/{held}"))
        .body
        .contains("none past it"));

    // CSRF: missing, forged, or a foreign origin with the right token: refused, nothing changes.
    let path = format!("/ui/jobs/{held}/approve");
    for (what, form, origin) in [
        ("no token", vec![("reason", "ok")], Some("")),
        (
            "forged token",
            vec![("csrf", "0000"), ("reason", "ok")],
            Some(""),
        ),
        (
            "another session's token",
            vec![("csrf", vcsrf.as_str()), ("reason", "ok")],
            Some(""),
        ),
        (
            "foreign origin",
            vec![("csrf", csrf.as_str()), ("reason", "ok")],
            Some("http://evil.example"),
        ),
    ] {
        let r = ops.post(&path, &form, origin);
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.header("content-type").starts_with("text/html"), "{what}");
        assert!(!r.header("content-security-policy").is_empty(), "{what}");
    }
    let r = ops.post(&path, &[("csrf", &csrf), ("reason", "  ")], Some(""));
    assert_eq!(r.status, 400, "a decision needs a reason: {}", r.body);
    assert_eq!(
        c.get_json(&d, &format!("/api/v1/jobs/{held}"))["state"],
        "awaiting_approval"
    );

    // Rejected with a hostile reason: the store's decision, audited under the token's name.
    let r = ops.post(
        &format!("/ui/jobs/{held}/reject"),
        &[
            ("csrf", &csrf),
            ("reason", "<script>alert(3)</script>"),
            ("back", "/ui/approvals"),
        ],
        None,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), "/ui/approvals");
    assert_eq!(
        c.get_json(&d, &format!("/api/v1/jobs/{held}"))["state"],
        "rejected"
    );
    let evidence = audit_of(&c, &d, &held);
    let ev: serde_json::Value = serde_json::from_str(&evidence).unwrap();
    let audit = ev["audit"].as_array().unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "job.rejected" && e["actor"] == "token:ops"),
        "{evidence}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "job.rejected"
                && e["data"]["reason"] == "<script>alert(3)</script>"),
        "the reason is in the decision's own entry: {evidence}"
    );
    let p = ops.get(&format!("/ui/jobs/{held}"));
    assert!(!p.body.contains("<script>alert(3)"), "{}", p.body);
    assert!(p.body.contains("intact"), "the audit chain verifies");

    // Cancel a job from its page: the store's cancellation, as the token, with the reason.
    let r = ops.post(
        &format!("/ui/jobs/{first}/cancel"),
        &[
            ("csrf", &csrf),
            ("reason", "rehired: \"><b>x</b>"),
            ("back", "/ui/x\r\nset-cookie: a=b"),
        ],
        Some(""),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), format!("/ui/jobs/{first}"));
    let job = c.get_json(&d, &format!("/api/v1/jobs/{first}"));
    assert_eq!(job["state"], "cancelled", "{job}");
    let p = ops.get(&format!("/ui/jobs/{first}"));
    assert!(
        p.body.contains("rehired: &quot;&gt;&lt;b&gt;x&lt;/b&gt;"),
        "{}",
        p.body
    );
    let ev: serde_json::Value = serde_json::from_str(&audit_of(&c, &d, &first)).unwrap();
    assert!(
        ev["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "job.cancelled" && e["actor"] == "token:ops"),
        "{ev}"
    );

    // Deciding again conflicts (the store says why); unknown jobs and pages are HTML 404s.
    let r = ops.post(
        &format!("/ui/jobs/{held}/approve"),
        &[("csrf", &csrf), ("reason", "again")],
        Some(""),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = ops.get("/ui/jobs/no-such-job");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.header("content-type").starts_with("text/html"));
    assert!(!r.header("content-security-policy").is_empty());
    let r = ops.post(
        "/ui/jobs/no-such-job/cancel",
        &[("csrf", &csrf), ("reason", "x")],
        Some(""),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = ops.get("/ui/nothing-here");
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").starts_with("text/html"));
    // The API is untouched: its unknown routes still answer JSON.
    let (status, body) = c.get(&d, "/api/v1/nothing", Some(READ_TOKEN));
    assert_eq!(status, 404);
    assert!(body.starts_with("{\"error\""), "{body}");
    // The evidence download is an attachment.
    let r = ops.get(&format!("/ui/jobs/{held}/evidence?format=md"));
    assert_eq!(r.status, 200);
    assert!(r.header("content-disposition").starts_with("attachment;"));
    assert!(r.body.contains(&held));

    // No page carries a token or its hash.
    for path in ["/ui/jobs", "/ui/approvals", "/ui/manual", "/ui/connectors"] {
        let p = ops.get(path);
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        for secret in [
            OPERATOR_TOKEN,
            READ_TOKEN,
            &sha256_hex(OPERATOR_TOKEN),
            &sha256_hex(READ_TOKEN),
            BIND_PASSWORD,
        ] {
            assert!(!p.body.contains(secret), "{path} shows a secret");
        }
    }

    // Signing out ends the session on the server: the old cookie no longer works.
    let old = ops.cookies.clone();
    let r = ops.post("/ui/logout", &[("csrf", &csrf)], Some(""));
    assert_eq!(r.status, 303);
    ops.cookies = old;
    assert_eq!(ops.get("/ui/jobs").status, 303);
    let log = audit_of(&c, &d, &held);
    assert!(!log.contains(OPERATOR_TOKEN));
    assert!(d.terminate().success());
}

/// The row of `instance` in the connectors page.
fn row_of<'a>(html: &'a str, instance: &str) -> &'a str {
    let at = html
        .find(&format!("data-instance=\"{instance}\""))
        .unwrap_or_else(|| panic!("no row for {instance}: {html}"));
    let end = html[at..].find("</tr>").unwrap() + at;
    &html[at..end]
}

/// The connectors page shows each instance's own rate budget: an HTTP-kind instance's
/// `rate_limit` in words, and none for LDAP; the HTTP instance's check fails (its port was
/// closed) and the page says so and still renders every row.
#[test]
fn connectors_page_shows_each_instances_rate_budget() {
    let slapd = Slapd::start().unwrap();
    slapd.add_ldif(DEMO_LDIF).unwrap();
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!(
        r#"[connectors.budgeted]
kind = "http"
system = "Budgeted"
base_url = "http://127.0.0.1:{closed}/api"
rate_limit = {{ requests = 8, per_secs = 1 }}
[connectors.budgeted.resources.user]
id = "$.id"
discover = [{{ path = "/users", query = {{ email = "{{{{subject.email}}}}" }}, items = "$.users[*]" }}]
match = [{{ path = "$.email", equals = "{{{{subject.email}}}}", case = "insensitive" }}]
[connectors.slow]
kind = "http"
system = "Slow"
base_url = "http://127.0.0.1:{closed}/api"
rate_limit = {{ requests = 600, per_secs = 60 }}
[connectors.slow.resources.user]
id = "$.id"
discover = [{{ path = "/users", query = {{ email = "{{{{subject.email}}}}" }}, items = "$.users[*]" }}]
match = [{{ path = "$.email", equals = "{{{{subject.email}}}}", case = "insensitive" }}]
"#
    );
    let setup = Setup::new(&slapd, None, &extra);
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let mut viewer = Agent::new(&d);
    viewer.sign_in(READ_TOKEN);
    let p = viewer.get("/ui/connectors");
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("<th>Rate budget</th>"), "{}", p.body);
    assert!(!p
        .body
        .contains("Not shown yet: a connector's own rate budget"));
    let http = row_of(&p.body, "budgeted");
    assert!(http.contains("at most 8 requests a second"), "{http}");
    assert!(http.contains("failing"), "{http}");
    let slow = row_of(&p.body, "slow");
    assert!(slow.contains("at most 600 requests per 60 s"), "{slow}");
    let ldap = row_of(&p.body, "corp-ldap");
    assert!(ldap.contains("none of its own"), "{ldap}");
    assert!(ldap.contains("ok-flag"), "{ldap}");
    assert!(d.terminate().success());
}

/// Where the browser test writes its screenshots (kept after the test for people to look at).
fn shots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn a_browser_signs_in_approves_watches_acknowledges_and_downloads() {
    let root = repo_root();
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "expected Debian's chromium at {chromium}, found none: apt-get install chromium (scripts/test installs it)"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "expected playwright-core in {}, found none: run `npm ci` there (scripts/test does)",
        browser_dir.display()
    );
    let slapd = Slapd::start().unwrap();
    slapd.add_ldif(DEMO_LDIF).unwrap();
    let setup = Setup::new(&slapd, None, EXTRA);
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    submit(
        &c,
        &d,
        json!({ "employee_id": "1002", "email": "bob@example.org", "reason": "resigned" }),
    );
    let (held, state) = submit(
        &c,
        &d,
        json!({ "employee_id": "1001", "email": "alice@example.org", "reason": "terminated <b>for cause</b>" }),
    );
    assert_eq!(state, "awaiting_approval");
    let (other, state) = submit(
        &c,
        &d,
        json!({ "employee_id": "1003", "email": "carol@example.org" }),
    );
    assert_eq!(state, "awaiting_approval");

    let shots = shots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .arg(&d.base)
        .current_dir(&browser_dir)
        .env("OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("READ_TOKEN", READ_TOKEN)
        .env("HELD_JOB", &held)
        .env("OTHER_HELD_JOB", &other)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\ndaemon log:\n{}",
        d.log_text()
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["ok"], true, "{stdout}");
    eprintln!("browser steps: {}", result["steps"]);

    // What the browser did is what the store says.
    let job = c.get_json(&d, &format!("/api/v1/jobs/{held}"));
    assert_eq!(job["state"], "planned", "{job}");
    let actions = job["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["phase"] == "manual" && a["outcome"] == "acknowledged"),
        "{job}"
    );
    assert!(
        actions
            .iter()
            .filter(|a| a["phase"] == "contain" || a["phase"] == "revoke")
            .all(|a| a["outcome"] == "done" || a["outcome"] == "already_done"),
        "{job}"
    );
    let ev: serde_json::Value = serde_json::from_str(&audit_of(&c, &d, &held)).unwrap();
    let audit = ev["audit"].as_array().unwrap();
    assert!(
        audit.iter().any(|e| e["kind"] == "job.approved"
            && e["data"]["reason"] == "ticket HR-42: confirmed with HR"),
        "{ev}"
    );
    for kind in ["job.approved", "action.acknowledged"] {
        assert!(
            audit
                .iter()
                .any(|e| e["kind"] == kind && e["actor"] == "token:ops"),
            "{kind} by token:ops: {ev}"
        );
    }
    assert_eq!(
        c.get_json(&d, &format!("/api/v1/jobs/{other}"))["state"],
        "awaiting_approval",
        "the read token's POST changed nothing"
    );
    for name in [
        "01-sign-in",
        "02-jobs",
        "03-approvals",
        "04-job-run",
        "05-manual-steps",
        "06-job-evidence",
        "07-connectors",
        "08-jobs-after",
        "09-approvals-read-token",
    ] {
        let f = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&f)
            .unwrap_or_else(|_| panic!("no screenshot {}", f.display()))
            .len();
        assert!(len > 1000, "{} is {len} bytes", f.display());
    }
    assert!(d.terminate().success());
}
