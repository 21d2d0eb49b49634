//! Intake targets: one per source kind and one for the batch import.
//!
//! Each input is a mutated sample body, validly re-signed with the source's secret (or, for a
//! share of inputs, forged: wrong secret, stale timestamp, flipped or missing signature, a
//! signature of another body), handed to `Source::handle` twice. The oracles are in
//! [`judge`].

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use revoke_intake::{Intake, IntakeError, NormalizedEvent, Request, RiskRules, Source};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

use crate::mutate::{self, hostile_string, mutate_json, random_chars, Mutated};
use crate::rng::Rng;

/// The source kinds fuzzed, each a target, plus `import`.
pub const TARGETS: [&str; 9] = [
    "standard_webhooks",
    "bamboohr",
    "hibob",
    "gusto",
    "personio",
    "okta",
    "scim",
    "generic",
    "import",
];

const SW_KEYS: [&str; 2] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=",
];
/// A Standard Webhooks secret that no source is configured with.
const SW_FORGED: &str = "whsec_Zm9yZ2VkLWtleS1ub3QtY29uZmlndXJlZA==";
/// Secrets of the HMAC sources and tokens of the bearer sources (two each, for rotation).
const KEYS: [&str; 2] = ["fuzz-secret-one-7f3a", "fuzz-secret-two-91c2"];
const FORGED: &str = "fuzz-secret-forged-0000";
const TOLERANCE: i64 = 300;

/// What the oracles may expect of an input's authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// Validly signed (or carrying a configured token), within the time tolerance: never 401.
    Authentic,
    /// Unsigned, mis-signed, wrong token or stale: never accepted.
    Forged,
    /// Valid among many candidates or otherwise at a limit the code may set: no expectation.
    Either,
}

/// One generated input, as kept in a replay file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    /// The target (`hibob`, `import`).
    pub target: String,
    /// Which configured source of the target handles it.
    pub variant: usize,
    /// HTTP method; for `import`, unused.
    pub method: String,
    /// Path after `/intake/<name>`; for `import`, the file name.
    pub path: String,
    /// Header names and values, values base64 (they may hold bytes that are not UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body, base64.
    pub body_base64: String,
    /// The request time.
    pub now: DateTime<Utc>,
    /// What authentication the oracles expect.
    pub auth: Auth,
    /// How the input was made, one line per step.
    pub log: Vec<String>,
}

impl Input {
    /// The body bytes.
    pub fn body(&self) -> Vec<u8> {
        STANDARD.decode(&self.body_base64).unwrap_or_default()
    }

    /// The header map the daemon would hand over; values `http` refuses are left out.
    pub fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in &self.headers {
            let value = STANDARD.decode(v).unwrap_or_default();
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) {
                h.append(name, value);
            }
        }
        h
    }
}

/// What an input came to, when the oracles hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Events to schedule.
    Accepted,
    /// A challenge or look-up answer.
    Challenge,
    /// Authentic, nothing to do.
    Ignored,
    /// A set-up probe answered without authentication (HiBob ping, Gusto verification).
    Probe,
    /// Refused with this status (import errors count as 400).
    Refused(u16),
}

/// The configured sources of a target, and the samples its inputs grow from.
#[derive(Debug)]
pub struct Harness {
    /// Target name.
    pub target: &'static str,
    sources: Vec<Source>,
    seeds: Vec<Seed>,
    dict: Vec<String>,
}

#[derive(Debug, Clone)]
struct Seed {
    method: &'static str,
    path: String,
    body: Value,
}

macro_rules! sample {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../intake/tests/samples/",
            $name
        ))
    };
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn post(body: Value) -> Seed {
    Seed {
        method: "POST",
        path: String::new(),
        body,
    }
}

fn build(kind: &str, params: Value) -> Result<Source, String> {
    Source::build("fuzz", kind, &params, &RiskRules::default())
        .map_err(|e| format!("{kind}: the fuzz config does not build: {e}"))
}

fn token_sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

impl Harness {
    /// The harness of one target; the error says which config did not build.
    pub fn new(target: &str) -> Result<Harness, String> {
        let (target, sources, seeds): (&'static str, Vec<Source>, Vec<Seed>) = match target {
            "standard_webhooks" => (
                "standard_webhooks",
                vec![
                    build("standard_webhooks", json!({ "secrets": SW_KEYS }))?,
                    build(
                        "standard_webhooks",
                        json!({ "secret": SW_KEYS[0], "timezone": "Pacific/Kiritimati" }),
                    )?,
                ],
                vec![
                    post(parse(sample!("standard_webhooks_terminated.json"))),
                    post(parse(sample!("standard_webhooks_cancelled.json"))),
                    post(json!({"type":"employee.terminated","data":{"employee_id":1042,"effective_at":1710503940}})),
                ],
            ),
            "bamboohr" => (
                "bamboohr",
                vec![
                    build("bamboohr", json!({ "secrets": KEYS }))?,
                    build(
                        "bamboohr",
                        json!({ "secret": KEYS[0], "timezone": "America/Havana", "date_format": "%m/%d/%Y", "fields": { "employee_id": "Employee #" } }),
                    )
                    .or_else(|_| build("bamboohr", json!({ "secret": KEYS[0], "timezone": "America/Havana", "date_format": "%m/%d/%Y" })))?,
                ],
                vec![
                    post(parse(sample!("bamboohr_field_based.json"))),
                    post(parse(sample!("bamboohr_batch.json"))),
                    post(parse(sample!("bamboohr_event_based.json"))),
                ],
            ),
            "hibob" => (
                "hibob",
                vec![build("hibob", json!({ "secrets": KEYS }))?],
                vec![
                    post(parse(sample!("hibob_employee_left.json"))),
                    post(parse(sample!("hibob_employee_updated.json"))),
                    post(json!({"type":"employee.left","triggeredAt":"2024-03-15T00:00:04","data":{"employee":{"id":3332883854254932743_u64,"email":"a@example.com"}}})),
                ],
            ),
            "gusto" => (
                "gusto",
                vec![build("gusto", json!({ "secrets": KEYS }))
                    .or_else(|_| build("gusto", json!({ "secret": KEYS })))?],
                vec![
                    post(parse(sample!("gusto_employee_terminated.json"))),
                    post(parse(sample!("gusto_termination_cancelled.json"))),
                    post(json!({"verification_token":"8ba3e5c2-6f7a-4a4e-b2c4-0d7f9b1e2a11"})),
                ],
            ),
            "personio" => (
                "personio",
                vec![
                    build("personio", json!({ "secrets": KEYS }))?,
                    build(
                        "personio",
                        json!({ "secret": KEYS[1], "signature_header": "X-Signature" }),
                    )
                    .or_else(|_| build("personio", json!({ "secret": KEYS[1] })))?,
                ],
                vec![
                    post(parse(sample!("personio_employment_terminated.json"))),
                    post(parse(sample!("personio_employment_updated.json"))),
                ],
            ),
            "okta" => (
                "okta",
                vec![build("okta", json!({ "secrets": KEYS }))?],
                vec![
                    post(parse(sample!("okta_event_hook.json"))),
                    Seed {
                        method: "GET",
                        path: String::new(),
                        body: Value::Null,
                    },
                ],
            ),
            "scim" => {
                let mut sources = Vec::new();
                for id_is in ["username", "employee_id", "email"] {
                    sources.push(build(
                        "scim",
                        json!({ "token_sha256": [token_sha(KEYS[0]), token_sha(KEYS[1])], "id_is": id_is }),
                    )
                    .or_else(|_| build("scim", json!({ "secrets": KEYS, "id_is": id_is })))?);
                }
                let seeds = vec![
                    Seed {
                        method: "PATCH",
                        path: "/scim/v2/Users/jane.doe%40example.com".to_string(),
                        body: parse(sample!("scim_patch_entra.json")),
                    },
                    Seed {
                        method: "PATCH",
                        path: "/Users/jdoe".to_string(),
                        body: parse(sample!("scim_patch_okta.json")),
                    },
                    Seed {
                        method: "PUT",
                        path: "/scim/v2/Users/2819c223".to_string(),
                        body: parse(sample!("scim_put_user.json")),
                    },
                    Seed {
                        method: "GET",
                        path: "/scim/v2/Users?filter=userName%20eq%20%22jdoe%22".to_string(),
                        body: Value::Null,
                    },
                    Seed {
                        method: "POST",
                        path: "/scim/v2/Users".to_string(),
                        body: json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"jdoe","active":true}),
                    },
                ];
                ("scim", sources, seeds)
            }
            "generic" => {
                let mut params = json!({
                    "secrets": KEYS,
                    "timezone": "Europe/Berlin",
                    "event_id": "/id",
                    "employee_id": "/person/worker_id",
                    "email": "/person/work_email",
                    "username": "/person/login",
                    "effective_at": "/offboarding/last_day",
                    "reason": "/offboarding/reason",
                    "involuntary": "/offboarding/involuntary",
                    "event_kind": "/action",
                    "termination_values": ["offboard"],
                    "cancellation_values": ["cancel_offboard"]
                });
                let with_kind = build("generic", params.clone());
                let src = match with_kind {
                    Ok(s) => s,
                    // Before the pointer was named event_kind, it could not be configured.
                    Err(_) => {
                        if let Some(m) = params.as_object_mut() {
                            for k in ["event_kind", "termination_values", "cancellation_values"] {
                                m.remove(k);
                            }
                        }
                        build("generic", params)?
                    }
                };
                (
                    "generic",
                    vec![src],
                    vec![post(parse(sample!("generic_offboarding.json")))],
                )
            }
            "import" => (
                "import",
                Vec::new(),
                vec![post(json!({
                    "employee_id": "E-10442",
                    "email": "jane.doe@example.com",
                    "username": "jdoe",
                    "effective_at": "2024-01-31",
                    "reason": "Gross misconduct",
                    "involuntary": "yes",
                    "high_risk": false,
                    "event_id": "imp-1"
                }))],
            ),
            other => return Err(format!("unknown intake target {other:?}")),
        };
        let mut dict: Vec<String> = [
            "employee.terminated",
            "employee.termination_cancelled",
            "employee.left",
            "employee.updated",
            "employee.rehired",
            "employment.terminated",
            "employment.updated",
            "user.lifecycle.deactivate",
            "user.lifecycle.reactivate",
            "offboard",
            "cancel_offboard",
            "Inactive",
            "Active",
            "Terminated",
            "Employee",
            "success",
            "FAILURE",
            "active",
            "replace",
            "remove",
            "add",
            "emails",
            "userName",
            "externalId",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "employeeNumber",
            "Termination Date",
            "Status",
            "Employment Status",
            "changedFields",
            "Deleted",
            "verification_token",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for s in &seeds {
            mutate::strings_of(&s.body, &mut dict);
        }
        dict.sort();
        dict.dedup();
        Ok(Harness {
            target,
            sources,
            seeds,
            dict,
        })
    }

    /// The input number `index` of a run with `seed`: the same pair gives the same input.
    pub fn generate(&self, seed: u64, index: u64) -> Input {
        let mut rng = Rng::new(crate::rng::mix(seed ^ crate::rng::mix(index)));
        if self.target == "import" {
            return self.generate_import(&mut rng);
        }
        let s = rng.pick(&self.seeds).clone();
        let variant = rng.below(self.sources.len());
        let now = base_now() + Duration::nanoseconds(rng.range(0, 999_999_999));
        let mut log = vec![format!("seed body of {} {}", s.method, s.path)];
        let (body, signed_body) = if s.body.is_null() {
            (Vec::new(), Vec::new())
        } else {
            let original = serde_json::to_vec_pretty(&s.body).unwrap_or_default();
            if rng.chance(1, 10) {
                (original.clone(), original)
            } else {
                let Mutated { body, log: steps } = mutate_json(&mut rng, &s.body, &self.dict);
                log.extend(steps);
                (body, original)
            }
        };
        let mut method = s.method.to_string();
        if rng.chance(1, 40) {
            method = rng
                .pick(&["GET", "PUT", "DELETE", "post", "OPTIONS", "", "PATCH"])
                .to_string();
            log.push(format!("method {method:?}"));
        }
        let path = if self.target == "scim" {
            scim_path(&mut rng, &s.path, &mut log)
        } else if rng.chance(1, 30) {
            let p = format!("/{}", random_chars(&mut rng, 12));
            log.push(format!("path {p:?}"));
            p
        } else {
            String::new()
        };
        let mut input = Input {
            target: self.target.to_string(),
            variant,
            method,
            path,
            headers: Vec::new(),
            body_base64: String::new(),
            now,
            auth: Auth::Authentic,
            log,
        };
        let forge = rng.chance(1, 4);
        sign(
            &mut rng,
            self.target,
            variant,
            &mut input,
            &body,
            &signed_body,
            forge,
        );
        input.body_base64 = STANDARD.encode(&body);
        input
    }

    fn generate_import(&self, rng: &mut Rng) -> Input {
        let csv = rng.chance(1, 2);
        let lines = 1 + rng.below(4);
        let mut log = Vec::new();
        let mut body = Vec::new();
        let columns = [
            "employee_id",
            "email",
            "username",
            "effective_at",
            "reason",
            "involuntary",
            "high_risk",
            "event_id",
        ];
        if csv {
            let mut cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            if rng.chance(1, 3) {
                let i = rng.below(cols.len());
                cols[i] = hostile_string(rng, &cols[i]);
                log.push(format!("header column {i} changed"));
            }
            if rng.chance(1, 4) {
                cols.truncate(1 + rng.below(cols.len()));
            }
            body.extend(csv_line(rng, &cols).into_bytes());
            for _ in 0..lines {
                let mut row: Vec<String> = Vec::new();
                for (i, c) in cols.iter().enumerate() {
                    let base = self.seeds[0].body.get(c.as_str()).map_or_else(
                        || format!("v{i}"),
                        |v| v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    );
                    row.push(if rng.chance(1, 3) {
                        hostile_string(rng, &base)
                    } else {
                        base
                    });
                }
                if rng.chance(1, 6) {
                    row.push("extra".to_string());
                }
                body.extend(csv_line(rng, &row).into_bytes());
            }
            log.push(format!("csv, {lines} line(s)"));
        } else {
            for _ in 0..lines {
                let m = mutate_json(rng, &self.seeds[0].body, &self.dict);
                log.extend(m.log);
                body.extend(m.body.iter().filter(|b| **b != b'\n'));
                body.push(b'\n');
            }
            log.push(format!("jsonl, {lines} line(s)"));
        }
        if rng.chance(1, 10) {
            body.splice(0..0, [0xEF, 0xBB, 0xBF]);
            log.push("bom".to_string());
        }
        let name = if csv { "leavers.CSV" } else { "leavers.ndjson" };
        Input {
            target: "import".to_string(),
            variant: 0,
            method: String::new(),
            path: name.to_string(),
            headers: Vec::new(),
            body_base64: STANDARD.encode(&body),
            now: base_now() + Duration::nanoseconds(rng.range(0, 999_999_999)),
            auth: Auth::Authentic,
            log,
        }
    }

    /// Runs an input through intake once; a panic is caught by the caller.
    pub fn handle(&self, input: &Input) -> Result<Vec<Handled>, String> {
        let body = input.body();
        if self.target == "import" {
            let tz: chrono_tz::Tz = chrono_tz::Europe::Berlin;
            return Ok(
                match revoke_intake::parse_import(
                    &input.path,
                    &body,
                    tz,
                    &RiskRules::default(),
                    input.now,
                ) {
                    Ok(events) => vec![Handled::Import(Ok(events))],
                    Err(e) => vec![Handled::Import(Err(e.to_string()))],
                },
            );
        }
        let src = self
            .sources
            .get(input.variant)
            .ok_or_else(|| format!("no source variant {}", input.variant))?;
        let headers = input.header_map();
        let req = Request {
            method: &input.method,
            path: &input.path,
            headers: &headers,
            body: &body,
            now: input.now,
        };
        Ok(vec![Handled::Intake(Box::new(src.handle(&req)))])
    }

    /// The largest body of the input's source.
    pub fn max_body(&self, input: &Input) -> usize {
        self.sources
            .get(input.variant)
            .map_or(usize::MAX, Source::max_body_bytes)
    }
}

/// What intake made of one input (once).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// `Source::handle`'s result.
    Intake(Box<Result<Intake, IntakeError>>),
    /// `parse_import`'s result, the error as text.
    Import(Result<Vec<NormalizedEvent>, String>),
}

/// The oracles of one input, given two runs' results: a failure says which oracle and why.
pub fn judge(
    h: &Harness,
    input: &Input,
    first: &Handled,
    second: &Handled,
) -> Result<Outcome, String> {
    if first != second {
        return Err(format!(
            "not deterministic: the same input gave {} and then {}",
            short(first),
            short(second)
        ));
    }
    let body = input.body();
    match first {
        Handled::Import(Ok(events)) => {
            // CSV quoting is lenient (text after a closing quote is kept): compare without quotes.
            let text = String::from_utf8_lossy(&body).replace('"', "");
            let mut known = candidates(&body, None);
            for line in body.split(|b| *b == b'\n') {
                known.extend(candidates(line, None));
            }
            for e in events {
                check_ids(e, &known, Some(&text))?;
            }
            Ok(Outcome::Accepted)
        }
        Handled::Import(Err(_)) => Ok(Outcome::Refused(400)),
        Handled::Intake(r) => judge_intake(h, input, &body, r),
    }
}

fn judge_intake(
    h: &Harness,
    input: &Input,
    body: &[u8],
    r: &Result<Intake, IntakeError>,
) -> Result<Outcome, String> {
    let max = h.max_body(input);
    match r {
        Err(e) => {
            let status = e.status();
            if let IntakeError::Config(m) = e {
                return Err(format!("a request raised a config error (500): {m}"));
            }
            if ![400, 401, 413, 422].contains(&status) {
                return Err(format!(
                    "refused with status {status}, expected 400, 401, 413 or 422: {e}"
                ));
            }
            if status == 413 && body.len() <= max {
                return Err(format!(
                    "413 for a body of {} bytes within the limit of {max}",
                    body.len()
                ));
            }
            if body.len() > max && status != 413 {
                return Err(format!(
                    "a body of {} bytes over the limit of {max} got {status}, expected 413",
                    body.len()
                ));
            }
            if status == 401 && input.auth == Auth::Authentic {
                return Err(format!(
                    "a validly signed input was refused as unauthenticated: {e}"
                ));
            }
            Ok(Outcome::Refused(status))
        }
        Ok(intake) => {
            if body.len() > max {
                return Err(format!(
                    "a body of {} bytes over the limit of {max} was accepted",
                    body.len()
                ));
            }
            let forged = input.auth == Auth::Forged;
            let as_authentic = || {
                format!(
                    "a forged or unsigned input was answered as authentic: {}",
                    short(&Handled::Intake(Box::new(Ok(intake.clone()))))
                )
            };
            match intake {
                Intake::Event(e) => {
                    if forged {
                        return Err(as_authentic());
                    }
                    check_event(input, body, e)?;
                    Ok(Outcome::Accepted)
                }
                Intake::Events(list) => {
                    if forged {
                        return Err(as_authentic());
                    }
                    if list.len() < 2 {
                        return Err(format!(
                            "Events with {} event(s), expected two or more",
                            list.len()
                        ));
                    }
                    for e in list {
                        check_event(input, body, e)?;
                    }
                    Ok(Outcome::Accepted)
                }
                Intake::Challenge(_) if forged => Err(as_authentic()),
                Intake::Challenge(_) => Ok(Outcome::Challenge),
                Intake::Ignored { .. } if forged && !unsigned_exempt(input, body) => {
                    Err(as_authentic())
                }
                Intake::Ignored { .. } => Ok(Outcome::Ignored),
                // A set-up probe answered without authentication (HiBob ping, Gusto
                // verification), where intake has such a variant: only for those bodies.
                _ if unsigned_exempt(input, body) => Ok(Outcome::Probe),
                _ => Err(format!(
                    "answered as an unauthenticated probe though the body is none: {}",
                    short(&Handled::Intake(Box::new(Ok(intake.clone()))))
                )),
            }
        }
    }
}

/// HiBob's connection test and Gusto's subscription verification are answered unsigned by
/// design (docs/intake.md); nothing else is.
fn unsigned_exempt(input: &Input, body: &[u8]) -> bool {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    match input.target.as_str() {
        "hibob" => {
            let text = String::from_utf8_lossy(body);
            text.trim().eq_ignore_ascii_case("ping test")
                || serde_json::from_str::<Value>(text.trim())
                    .ok()
                    .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
                    .is_some_and(|t| t.eq_ignore_ascii_case("ping test"))
        }
        "gusto" => {
            !input
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("x-gusto-signature"))
                && matches!(&json, Some(Value::Object(m)) if m.len() == 1
                    && m.get("verification_token").is_some_and(Value::is_string))
        }
        _ => false,
    }
}

fn check_event(input: &Input, body: &[u8], e: &NormalizedEvent) -> Result<(), String> {
    if e.source != "fuzz" || e.source_kind != input.target {
        return Err(format!(
            "event of source {:?} kind {:?}, expected \"fuzz\" and {:?}",
            e.source, e.source_kind, input.target
        ));
    }
    let sha = hex::encode(Sha256::digest(body));
    // Okta and BambooHR batch events in one body and hash each event on its own (intake's
    // tests check which); here it must still be a SHA-256 in hex.
    let batched = matches!(input.target.as_str(), "okta" | "bamboohr");
    let is_hex_sha = e.body_sha256.len() == 64
        && e.body_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if (batched && !is_hex_sha) || (!batched && e.body_sha256 != sha) {
        return Err(format!(
            "body_sha256 {} is not the body's {sha}",
            e.body_sha256
        ));
    }
    if e.received_at != input.now {
        return Err("received_at is not the request's now".to_string());
    }
    let segment = (input.target == "scim")
        .then(|| scim_id(&input.path))
        .flatten();
    let known = candidates(body, segment);
    check_ids(e, &known, None)
}

/// The event's identifiers must each be a value of the body (trimmed), a number as written
/// in it, or the SCIM path's id: intake invents none.
fn check_ids(
    e: &NormalizedEvent,
    known: &HashSet<String>,
    text: Option<&str>,
) -> Result<(), String> {
    for (name, v) in [
        ("employee_id", &e.employee_id),
        ("email", &e.email),
        ("username", &e.username),
    ] {
        let Some(v) = v else { continue };
        // The identifier rule of revoke_core (NFKC-stable, one script, no controls or spaces).
        if let Err(e) = revoke_core::identifier::check(name, v) {
            return Err(format!(
                "{name} breaks the identifier rule and was accepted: {e}"
            ));
        }
        let found = known.contains(v.as_str())
            || text.is_some_and(|t| !v.is_empty() && t.contains(&v.replace('"', "")));
        if !found {
            return Err(format!(
                "{name} {:?} is not exactly in the input (invented or altered identifier)",
                v.chars().take(80).collect::<String>()
            ));
        }
    }
    if e.employee_id.is_none() && e.email.is_none() && e.username.is_none() {
        return Err("an accepted event carries no identifier".to_string());
    }
    Ok(())
}

/// Every string value of the body (trimmed), every number token as written, and `extra`.
fn candidates(body: &[u8], extra: Option<String>) -> HashSet<String> {
    let mut out = HashSet::new();
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let mut all = Vec::new();
        mutate::strings_of(&v, &mut all);
        out.extend(all.into_iter().map(|s| s.trim().to_string()));
    }
    out.extend(number_tokens(body));
    out.extend(extra.map(|s| s.trim().to_string()));
    out
}

/// Number tokens of JSON text as written (outside strings).
pub fn number_tokens(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < body.len()
                    && matches!(body[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(String::from_utf8_lossy(&body[start..i]).into_owned());
            }
            _ => i += 1,
        }
    }
    out
}

/// The percent-decoded id of a SCIM `/Users/{id}` path, as intake reads it.
fn scim_id(path: &str) -> Option<String> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let seg = path.trim_end_matches('/').rsplit('/').next()?;
    let b = seg.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = seg.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn short(h: &Handled) -> String {
    let s = match h {
        Handled::Intake(r) => match r.as_ref() {
            Ok(Intake::Event(e)) => format!("event {:?}", e.source_event_id),
            Ok(Intake::Events(v)) => format!("{} events", v.len()),
            Ok(Intake::Challenge(_)) => "challenge".to_string(),
            Ok(Intake::Ignored { reason, .. }) => format!("ignored ({reason})"),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("{} {e}", e.status()),
        },
        Handled::Import(Ok(v)) => format!("{} imported", v.len()),
        Handled::Import(Err(e)) => e.clone(),
    };
    s.chars().take(300).collect()
}

/// 2024-03-15T12:00:00Z, the base of every input's `now` (a sub-second part is added).
pub fn base_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn csv_line(rng: &mut Rng, fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if rng.chance(1, 30) {
                format!("\"{f}")
            } else if f.contains([',', '"', '\n', '\r']) || rng.chance(1, 5) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    let end = if rng.chance(1, 4) { "\r\n" } else { "\n" };
    format!("{}{end}", quoted.join(","))
}

fn scim_path(rng: &mut Rng, seed_path: &str, log: &mut Vec<String>) -> String {
    if rng.chance(1, 2) {
        return seed_path.to_string();
    }
    let raw_id = match rng.below(3) {
        0 => rng
            .pick(&["jdoe", "jane.doe@example.com", "2819c223", "E-10442"])
            .to_string(),
        _ => hostile_string(rng, "jdoe"),
    };
    let id = match rng.below(4) {
        0 => raw_id.clone(),
        1 => raw_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    pct(&c.to_string())
                }
            })
            .collect(),
        2 => pct(&raw_id),
        _ => rng.pick(crate::mutate::INJECTIONS).to_string(),
    };
    let prefix = rng.pick(&["/scim/v2", "", "/scim/v2/", "/SCIM/v2", "/scim/v1"]);
    let p = match rng.below(6) {
        0 => format!(
            "{prefix}/Users?filter=userName%20eq%20%22{}%22",
            pct(&raw_id)
        ),
        1 => format!(
            "{prefix}/Users?filter={}",
            pct(&format!("userName eq \"{raw_id}\""))
        ),
        2 => format!("{prefix}/Groups/{id}"),
        3 => format!("{prefix}/Users/{id}/"),
        _ => format!("{prefix}/Users/{id}"),
    };
    log.push(format!("path {:?}", p.chars().take(80).collect::<String>()));
    p
}

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

fn hmac512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let Ok(mut m) = <Hmac<Sha512> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

fn whsec_key(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap_or_default()
}

/// A string with one character changed (hex and base64 stay well-formed).
fn flip_char(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.is_empty() {
        return "A".to_string();
    }
    let i = c.len() / 2;
    c[i] = if c[i] == 'a' { 'b' } else { 'a' };
    c.into_iter().collect()
}

fn header(input: &mut Input, name: &str, value: &str) {
    input
        .headers
        .push((name.to_string(), STANDARD.encode(value.as_bytes())));
}

/// How a forged input is forged.
#[derive(Debug, Clone, Copy)]
enum Forge {
    WrongSecret,
    OtherBody,
    Flipped,
    Missing,
    Stale,
    Junk,
}

/// Signs (or forges) the input the way the target's sender does.
fn sign(
    rng: &mut Rng,
    target: &str,
    variant: usize,
    input: &mut Input,
    body: &[u8],
    signed_body: &[u8],
    forge: bool,
) {
    let mut how = if forge {
        Some(*rng.pick(&[
            Forge::WrongSecret,
            Forge::OtherBody,
            Forge::Flipped,
            Forge::Missing,
            Forge::Stale,
            Forge::Junk,
        ]))
    } else {
        None
    };
    if matches!(how, Some(Forge::OtherBody)) && body == signed_body {
        how = Some(Forge::WrongSecret);
    }
    let bearer_like = matches!(target, "okta" | "scim" | "generic");
    if bearer_like && matches!(how, Some(Forge::OtherBody | Forge::Stale)) {
        how = Some(Forge::WrongSecret);
    }
    if matches!(target, "hibob" | "gusto" | "personio") && matches!(how, Some(Forge::Stale)) {
        how = Some(Forge::Flipped);
    }
    input.auth = if how.is_some() {
        Auth::Forged
    } else {
        Auth::Authentic
    };
    if let Some(h) = how {
        input.log.push(format!("forged: {h:?}"));
    }
    // The second variants of BambooHR and Personio are configured with one key only.
    let key = match (target, variant) {
        ("bamboohr", 1) => KEYS[0],
        ("personio", 1) => KEYS[1],
        _ => *rng.pick(&KEYS),
    };
    let key = if matches!(how, Some(Forge::WrongSecret)) {
        FORGED
    } else {
        key
    };
    let mac_body = if matches!(how, Some(Forge::OtherBody)) {
        signed_body
    } else {
        body
    };
    let now = input.now.timestamp();
    let offset = if matches!(how, Some(Forge::Stale)) {
        // Half of them one or two seconds past the edge, where sub-second rounding matters.
        let far = if rng.chance(1, 2) {
            TOLERANCE + rng.range(1, 2)
        } else {
            rng.range(TOLERANCE + 1, TOLERANCE + 1_000_000)
        };
        if rng.chance(1, 2) {
            far
        } else {
            -far
        }
    } else {
        rng.range(-(TOLERANCE - 1), TOLERANCE - 1)
    };
    let ts = now + offset;
    let missing = matches!(how, Some(Forge::Missing));
    let flip = |s: String| {
        if matches!(how, Some(Forge::Flipped)) {
            flip_char(&s)
        } else {
            s
        }
    };
    match target {
        "standard_webhooks" => {
            let id = if rng.chance(1, 5) {
                random_chars(rng, 20)
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .collect::<String>()
            } else {
                format!("msg_{}", rng.next_u64())
            };
            let id = if id.is_empty() { "m".to_string() } else { id };
            let secret = if matches!(how, Some(Forge::WrongSecret)) {
                SW_FORGED
            } else {
                SW_KEYS[if variant == 1 { 0 } else { rng.below(2) }]
            };
            let ts_text = ts.to_string();
            let mac = hmac256(
                &whsec_key(secret),
                &[id.as_bytes(), b".", ts_text.as_bytes(), b".", mac_body],
            );
            let mut sig = flip(format!("v1,{}", STANDARD.encode(mac)));
            if matches!(how, Some(Forge::Junk)) {
                sig = rng
                    .pick(&[
                        "v1,",
                        "v1,!!!",
                        "v2,AAAA",
                        "v1a,abc",
                        "",
                        "v1 ,x",
                        "v1,AAAA v1,BBBB",
                    ])
                    .to_string();
            } else if rng.chance(1, 10) {
                // Extra candidates around the real one; many of them may be capped.
                let n = *rng.pick(&[1usize, 3, 10, 100, 2_000]);
                let junk = rng.pick(&["v1,", "v1,AAAA", "v2,xyz", "v1a,q"]);
                let mut parts = vec![*junk; n];
                let at = rng.below(n + 1);
                parts.insert(at, sig.as_str());
                sig = parts.join(" ");
                if n > 10 && input.auth == Auth::Authentic {
                    input.auth = Auth::Either;
                }
                input.log.push(format!("{n} extra signature candidates"));
            }
            header(input, "webhook-id", &id);
            header(input, "webhook-timestamp", &ts_text);
            header(input, "webhook-signature", &sig);
            if missing {
                let at = input.headers.len() - 1 - rng.below(3);
                input.headers.remove(at);
            }
        }
        "bamboohr" => {
            let ts_text = match rng.below(4) {
                0 => DateTime::from_timestamp(ts, 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%S%z")
                    .to_string(),
                1 => DateTime::from_timestamp(ts, 0)
                    .unwrap_or_default()
                    .to_rfc3339(),
                _ => ts.to_string(),
            };
            let mac = hmac256(key.as_bytes(), &[mac_body, ts_text.as_bytes()]);
            let mut sig = flip(hex::encode(mac));
            if rng.chance(1, 10) {
                sig = sig.to_uppercase();
            }
            if matches!(how, Some(Forge::Junk)) {
                sig = rng.pick(&["", "zz", "sha256=00", "0"]).to_string();
            }
            if !missing || rng.chance(1, 2) {
                header(input, "X-BambooHR-Timestamp", &ts_text);
            }
            if !missing {
                header(input, "X-BambooHR-Signature", &sig);
            }
        }
        "hibob" => {
            let mut sig = flip(STANDARD.encode(hmac512(key.as_bytes(), &[mac_body])));
            if matches!(how, Some(Forge::Junk)) {
                sig = rng.pick(&["", "====", "AAAA", "not base64!"]).to_string();
            }
            if !missing {
                header(input, "Bob-Signature", &sig);
            }
        }
        "gusto" | "personio" => {
            let mut sig = flip(hex::encode(hmac256(key.as_bytes(), &[mac_body])));
            if target == "personio" && rng.chance(1, 3) {
                sig = format!("sha256={sig}");
            }
            if matches!(how, Some(Forge::Junk)) {
                sig = rng.pick(&["", "sha256=", "xyz", "00"]).to_string();
            }
            let name = match (target, variant) {
                ("gusto", _) => "X-Gusto-Signature",
                ("personio", 1) => "X-Signature",
                _ => "X-Personio-Signature",
            };
            if !missing {
                header(input, name, &sig);
            }
        }
        "okta" => {
            let mut token = flip(key.to_string());
            if matches!(how, Some(Forge::Junk)) {
                token = rng
                    .pick(&[
                        "",
                        "Bearer fuzz-secret-one-7f3a",
                        "fuzz-secret-one-7f3",
                        "FUZZ-SECRET-ONE-7F3A",
                    ])
                    .to_string();
            }
            if !missing {
                header(input, "Authorization", &token);
            }
            if input.method.eq_ignore_ascii_case("GET") && rng.chance(4, 5) {
                let c = random_chars(rng, 30)
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .collect::<String>();
                header(input, "X-Okta-Verification-Challenge", &c);
            }
        }
        _ => {
            let scheme = *rng.pick(&["Bearer", "bearer", "BEARER"]);
            let mut value = format!("{scheme} {}", flip(key.to_string()));
            if matches!(how, Some(Forge::Junk)) {
                value = rng
                    .pick(&[
                        "Basic fuzz-secret-one-7f3a",
                        "Bearer",
                        "Bearer ",
                        "fuzz-secret-one-7f3a",
                        "Bearer fuzz-secret-one-7f3",
                        "Bearer FUZZ-SECRET-ONE-7F3A",
                        "Bearerfuzz-secret-one-7f3a",
                    ])
                    .to_string();
            }
            if !missing {
                header(input, "Authorization", &value);
            }
        }
    }
    // Headers at the byte level: a value that is not visible ASCII.
    if rng.chance(1, 50) {
        input
            .headers
            .push(("X-Fuzz".to_string(), STANDARD.encode([0x80u8, 0xFF, b'a'])));
    }
    if forge && rng.chance(1, 10) {
        // Obs-text bytes in the authentication header itself.
        if let Some(last) = input.headers.last_mut() {
            let mut v = STANDARD.decode(&last.1).unwrap_or_default();
            v.push(0xE9);
            last.1 = STANDARD.encode(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_written() {
        assert_eq!(
            number_tokens(br#"{"a":"12","b":123456789012345678901234567890,"c":[-1.5e3]}"#),
            vec!["123456789012345678901234567890", "-1.5e3"]
        );
    }

    #[test]
    fn scim_ids_are_decoded() {
        assert_eq!(scim_id("/scim/v2/Users/a%40b").as_deref(), Some("a@b"));
        assert_eq!(scim_id("/Users/x/").as_deref(), Some("x"));
        assert_eq!(scim_id("/Users/%zz"), None);
    }
}
