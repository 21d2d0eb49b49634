//! Validation and parsing of one `[intake.<name>]` section. One pass does both, so `validate`
//! and `Source::build` can never disagree.

use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono_tz::Tz;
use http::HeaderName;
use revoke_core::ConfigIssue;
use serde_json::{Map, Value};

use crate::auth::{decode_whsec, sha256};
use crate::describe::describe;
use crate::kind::SourceKind;

pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 262_144;
const MAX_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
pub(crate) const DEFAULT_TOLERANCE_SECS: i64 = 300;
const MAX_TOLERANCE_SECS: u64 = 86_400;
/// Standard Webhooks senders list one signature per active secret; two or three during a
/// rotation. Sixteen leaves room and bounds what an unsigned request can make us decode.
pub(crate) const DEFAULT_MAX_SIGNATURES: usize = 16;
const MAX_MAX_SIGNATURES: u64 = 64;
/// Every signature or token header we read fits in far less (16 `v1,` entries are 768 bytes).
pub(crate) const DEFAULT_MAX_SIGNATURE_HEADER_BYTES: usize = 4096;
const MIN_MAX_SIGNATURE_HEADER_BYTES: u64 = 256;
const MAX_MAX_SIGNATURE_HEADER_BYTES: u64 = 65_536;

/// Settings every kind shares.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub max_body_bytes: usize,
    pub tz: Tz,
    pub tolerance_secs: i64,
    pub date_format: Option<String>,
    /// Most signatures one request may list (`webhook-signature`); more is refused unread.
    pub max_signatures: usize,
    /// Longest signature, timestamp, id or token header read for authentication.
    pub max_signature_header_bytes: usize,
}

/// Keys and token hashes; never printed (see `Source`'s Debug).
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    pub hmac_keys: Vec<Vec<u8>>,
    pub token_hashes: Vec<[u8; 32]>,
}

/// Event types mapped to a termination or a cancellation; any other type is ignored.
#[derive(Debug, Clone)]
pub(crate) struct EventSets {
    pub termination: Vec<String>,
    pub cancellation: Vec<String>,
}

/// Which subject field the SCIM resource id in the path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdIs {
    Username,
    EmployeeId,
    Email,
}

/// BambooHR field names (or aliases) to read, each a list of candidates tried in order.
#[derive(Debug, Clone)]
pub(crate) struct BambooFields {
    /// `None`: the employee entry's own `id`.
    pub employee_id: Option<String>,
    pub email: Vec<String>,
    pub username: Vec<String>,
    pub status: Vec<String>,
    pub employment_status: Vec<String>,
    pub termination_date: Vec<String>,
    pub termination_reason: Vec<String>,
    pub termination_type: Vec<String>,
    pub department: Vec<String>,
}

/// JSON Pointers of a generic source.
#[derive(Debug, Clone, Default)]
pub(crate) struct GenericSpec {
    pub event_id: Option<String>,
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub effective_at: Option<String>,
    pub reason: Option<String>,
    pub involuntary: Option<String>,
    pub high_risk: Option<String>,
    pub department: Option<String>,
    /// Where the event kind is (config key `event_kind`; `kind` is the source's own kind).
    pub event_kind: Option<String>,
    pub termination_values: Vec<String>,
    pub cancellation_values: Vec<String>,
}

/// What is specific to one kind.
#[derive(Debug, Clone)]
pub(crate) enum Spec {
    StandardWebhooks,
    BambooHr(Box<BambooFields>),
    HiBob(EventSets),
    Gusto(EventSets),
    Personio {
        signature_header: HeaderName,
    },
    Okta {
        header: HeaderName,
        events: EventSets,
    },
    Scim {
        id_is: IdIs,
    },
    Generic(Box<GenericSpec>),
}

/// A section that passed validation.
#[derive(Clone)]
pub(crate) struct Parsed {
    pub kind: SourceKind,
    pub common: Common,
    pub secrets: Secrets,
    pub spec: Spec,
}

/// Pure validation of one `[intake.<name>]` section (kind and params as JSON), before anything
/// is built: each issue names its key under `path`, what was expected and what was found.
pub fn validate(path: &str, kind: &str, params: &serde_json::Value) -> Vec<ConfigIssue> {
    match parse(path, kind, params) {
        Ok(_) => Vec::new(),
        Err(issues) => issues,
    }
}

/// Validates and parses a section in one pass.
pub(crate) fn parse(path: &str, kind: &str, params: &Value) -> Result<Parsed, Vec<ConfigIssue>> {
    let mut c = Checker {
        path,
        issues: Vec::new(),
    };
    let Some(kind) = SourceKind::parse(kind) else {
        let known: Vec<String> = SourceKind::ALL
            .iter()
            .map(|k| format!("{:?}", k.as_str()))
            .collect();
        // `kind = "/action"` is the old name of a generic source's event-kind pointer; it took
        // the place of the source's own kind (or clashed with it as a duplicate TOML key).
        let hint = if kind.starts_with('/') {
            " (a JSON Pointer: a generic source's event-kind pointer is configured as event_kind, kind names the source kind)"
        } else {
            ""
        };
        c.issue(
            "kind",
            format!("expected one of {}, found {kind:?}{hint}", known.join(", ")),
        );
        return Err(c.issues);
    };
    let empty = Map::new();
    let params = match params {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            c.issues.push(ConfigIssue::new(
                path,
                format!("expected a table of parameters, found {}", describe(other)),
            ));
            return Err(c.issues);
        }
    };

    let common = Common {
        max_body_bytes: c
            .int(params, "max_body_bytes", 1, MAX_MAX_BODY_BYTES)
            .map_or(DEFAULT_MAX_BODY_BYTES, |v| v as usize),
        tz: c.timezone(params),
        tolerance_secs: c
            .int(params, "tolerance_secs", 1, MAX_TOLERANCE_SECS)
            .map_or(DEFAULT_TOLERANCE_SECS, |v| v as i64),
        date_format: c.date_format(params),
        max_signatures: c.max_signatures(kind, params),
        max_signature_header_bytes: c
            .int(
                params,
                "max_signature_header_bytes",
                MIN_MAX_SIGNATURE_HEADER_BYTES,
                MAX_MAX_SIGNATURE_HEADER_BYTES,
            )
            .map_or(DEFAULT_MAX_SIGNATURE_HEADER_BYTES, |v| v as usize),
    };
    let secrets = c.secrets(kind, params);
    let spec = match kind {
        SourceKind::StandardWebhooks => Spec::StandardWebhooks,
        SourceKind::BambooHr => Spec::BambooHr(Box::new(c.bamboo_fields(params))),
        SourceKind::HiBob => Spec::HiBob(c.event_sets(
            params,
            &["employee.left", "employee.inactivated"],
            &["employee.activated"],
        )),
        SourceKind::Gusto => Spec::Gusto(c.event_sets(
            params,
            &[
                "employee.terminated",
                "employee.terminated_effective",
                "employee.termination_effective",
            ],
            &[
                "employee.termination_cancelled",
                "employee.rehired",
                "employee.rehire_effective",
            ],
        )),
        SourceKind::Personio => Spec::Personio {
            signature_header: c.header_name(params, "signature_header", "x-personio-signature"),
        },
        SourceKind::Okta => Spec::Okta {
            header: c.header_name(params, "header", "authorization"),
            events: c.event_sets(
                params,
                &["user.lifecycle.deactivate", "user.lifecycle.suspend"],
                &["user.lifecycle.unsuspend", "user.lifecycle.reactivate"],
            ),
        },
        SourceKind::Scim => Spec::Scim {
            id_is: c.id_is(params),
        },
        SourceKind::Generic => Spec::Generic(Box::new(c.generic(params))),
    };
    if c.issues.is_empty() {
        Ok(Parsed {
            kind,
            common,
            secrets,
            spec,
        })
    } else {
        Err(c.issues)
    }
}

/// The shape of a secret-bearing value, never its content.
fn describe_secret(v: &Value) -> String {
    match v {
        Value::String(s) if s.trim().is_empty() => "an empty string".to_string(),
        Value::String(s) => format!("a string of {} characters", s.chars().count()),
        Value::Array(a) if a.is_empty() => "an empty list".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(_) => "a number".to_string(),
        Value::Object(_) => "a table".to_string(),
    }
}

struct Checker<'a> {
    path: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Checker<'_> {
    fn issue(&mut self, key: &str, message: impl Into<String>) {
        self.issues
            .push(ConfigIssue::new(format!("{}.{key}", self.path), message));
    }

    fn int(&mut self, p: &Map<String, Value>, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = p.get(key)?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.issue(
                    key,
                    format!(
                        "expected a whole number from {min} to {max}, found {}",
                        describe(v)
                    ),
                );
                None
            }
        }
    }

    fn string(&mut self, p: &Map<String, Value>, key: &str) -> Option<String> {
        let v = p.get(key)?;
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => {
                self.issue(
                    key,
                    format!("expected a non-empty string, found {}", describe(v)),
                );
                None
            }
        }
    }

    fn string_list(&mut self, p: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
        let v = p.get(key)?;
        let list = match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::trim).filter(|s| !s.is_empty()))
                .collect::<Option<Vec<&str>>>(),
            _ => None,
        };
        match list {
            Some(l) => Some(l.into_iter().map(str::to_string).collect()),
            None => {
                self.issue(
                    key,
                    format!(
                        "expected a list of non-empty strings, found {}",
                        describe(v)
                    ),
                );
                None
            }
        }
    }

    fn timezone(&mut self, p: &Map<String, Value>) -> Tz {
        let Some(v) = p.get("timezone") else {
            return Tz::UTC;
        };
        match v.as_str().map(|s| Tz::from_str(s.trim())) {
            Some(Ok(tz)) => tz,
            _ => {
                self.issue(
                    "timezone",
                    format!(
                        "expected an IANA time zone like \"Europe/Berlin\" or \"UTC\", found {}",
                        describe(v)
                    ),
                );
                Tz::UTC
            }
        }
    }

    /// Only Standard Webhooks lists several signatures; other kinds carry exactly one.
    fn max_signatures(&mut self, kind: SourceKind, p: &Map<String, Value>) -> usize {
        if kind != SourceKind::StandardWebhooks {
            if let Some(v) = p.get("max_signatures") {
                self.issue(
                    "max_signatures",
                    format!(
                        "expected no max_signatures for kind {:?} (it carries one signature or token per request; max_signature_header_bytes bounds it), found {}",
                        kind.as_str(),
                        describe(v)
                    ),
                );
            }
            return 1;
        }
        self.int(p, "max_signatures", 1, MAX_MAX_SIGNATURES)
            .map_or(DEFAULT_MAX_SIGNATURES, |v| v as usize)
    }

    fn date_format(&mut self, p: &Map<String, Value>) -> Option<String> {
        let fmt = self.string(p, "date_format")?;
        let items: Vec<Item<'_>> = StrftimeItems::new(&fmt).collect();
        let valid = !items.iter().any(|i| matches!(i, Item::Error));
        let has_day = fmt.contains("%d") || fmt.contains("%e") || fmt.contains("%j");
        if valid && has_day && (fmt.contains("%Y") || fmt.contains("%y")) {
            Some(fmt)
        } else {
            self.issue(
                "date_format",
                format!(
                    "expected a strftime date format with a year and a day like \"%d/%m/%Y\", found {fmt:?}"
                ),
            );
            None
        }
    }

    /// String or list of strings, each non-empty; the issue never shows the values.
    fn secret_values(&mut self, p: &Map<String, Value>, key: &str) -> Vec<String> {
        let Some(v) = p.get(key) else {
            return Vec::new();
        };
        let values = match v {
            Value::String(s) if !s.trim().is_empty() => Some(vec![s.trim().to_string()]),
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
                .collect(),
            _ => None,
        };
        match values {
            Some(v) => v,
            None => {
                self.issue(
                    key,
                    format!(
                        "expected a non-empty string or a list of non-empty strings, found {}",
                        describe_secret(v)
                    ),
                );
                Vec::new()
            }
        }
    }

    fn secrets(&mut self, kind: SourceKind, p: &Map<String, Value>) -> Secrets {
        let mut plain = self.secret_values(p, "secret");
        plain.extend(self.secret_values(p, "secrets"));
        let hashed = self.secret_values(p, "token_sha256");
        let mut out = Secrets::default();
        match kind {
            SourceKind::StandardWebhooks => {
                for (i, s) in plain.iter().enumerate() {
                    match decode_whsec(s) {
                        Ok(k) => out.hmac_keys.push(k),
                        Err(m) => self.issue(&secret_key_name(p, i), m),
                    }
                }
            }
            SourceKind::BambooHr | SourceKind::HiBob | SourceKind::Gusto | SourceKind::Personio => {
                out.hmac_keys = plain.iter().map(|s| s.as_bytes().to_vec()).collect();
            }
            SourceKind::Okta | SourceKind::Scim | SourceKind::Generic => {
                out.token_hashes = plain.iter().map(|s| sha256(s.as_bytes())).collect();
                for h in &hashed {
                    match hex::decode(h) {
                        Ok(b) if b.len() == 32 => {
                            let mut a = [0u8; 32];
                            a.copy_from_slice(&b);
                            out.token_hashes.push(a);
                        }
                        _ => self.issue(
                            "token_sha256",
                            format!(
                                "expected 64 hex characters (the SHA-256 of the token), found a string of {} characters",
                                h.chars().count()
                            ),
                        ),
                    }
                }
            }
        }
        let uses_tokens = matches!(
            kind,
            SourceKind::Okta | SourceKind::Scim | SourceKind::Generic
        );
        if !uses_tokens && !hashed.is_empty() {
            self.issue(
                "token_sha256",
                format!(
                    "expected no token_sha256 for kind {:?} (it verifies an HMAC, so it needs the secret itself in secret or secrets), found one",
                    kind.as_str()
                ),
            );
        }
        let have_any = !plain.is_empty() || !hashed.is_empty();
        let already_reported = self.issues.iter().any(|i| {
            i.path.starts_with(&format!("{}.secret", self.path))
                || i.path.ends_with(".token_sha256")
        });
        if !have_any && !already_reported {
            if uses_tokens {
                self.issue(
                    "token_sha256",
                    "expected token_sha256 (hex SHA-256 of the token) or secret (the token itself), found neither",
                );
            } else if kind == SourceKind::StandardWebhooks {
                self.issue(
                    "secret",
                    "expected a \"whsec_...\" secret (or a list of them in secrets), found none",
                );
            } else {
                self.issue(
                    "secret",
                    "expected the shared signing secret (or a list of them in secrets), found none",
                );
            }
        }
        out
    }

    fn event_sets(
        &mut self,
        p: &Map<String, Value>,
        termination: &[&str],
        cancellation: &[&str],
    ) -> EventSets {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = self
            .string_list(p, "termination_events")
            .unwrap_or_else(|| own(termination));
        let c = self
            .string_list(p, "cancellation_events")
            .unwrap_or_else(|| own(cancellation));
        if t.is_empty() {
            self.issue(
                "termination_events",
                "expected at least one event type, found an empty list",
            );
        }
        if let Some(both) = t.iter().find(|e| c.contains(e)) {
            self.issue(
                "cancellation_events",
                format!(
                    "expected event types not also in termination_events, found {both:?} in both"
                ),
            );
        }
        EventSets {
            termination: t,
            cancellation: c,
        }
    }

    fn header_name(&mut self, p: &Map<String, Value>, key: &str, default: &str) -> HeaderName {
        let fallback = HeaderName::from_static("authorization");
        let name = self.string(p, key).unwrap_or_else(|| default.to_string());
        match HeaderName::from_str(&name) {
            Ok(h) => h,
            Err(_) => {
                self.issue(
                    key,
                    format!("expected an HTTP header name like \"X-Signature\", found {name:?}"),
                );
                fallback
            }
        }
    }

    fn id_is(&mut self, p: &Map<String, Value>) -> IdIs {
        let Some(v) = p.get("id_is") else {
            return IdIs::Username;
        };
        match v.as_str() {
            Some("username") => IdIs::Username,
            Some("employee_id") => IdIs::EmployeeId,
            Some("email") => IdIs::Email,
            _ => {
                self.issue(
                    "id_is",
                    format!(
                        "expected one of \"username\", \"employee_id\", \"email\", found {}",
                        describe(v)
                    ),
                );
                IdIs::Username
            }
        }
    }

    fn bamboo_fields(&mut self, p: &Map<String, Value>) -> BambooFields {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut f = BambooFields {
            employee_id: None,
            email: own(&["Work Email", "workEmail"]),
            username: Vec::new(),
            status: own(&["Status", "status"]),
            employment_status: own(&[
                "Employment Status",
                "employmentStatus",
                "employmentHistoryStatus",
            ]),
            termination_date: own(&["Termination Date", "terminationDate"]),
            termination_reason: own(&[
                "Termination Reason",
                "terminationReason",
                "terminationReasonId",
            ]),
            termination_type: own(&["Termination Type", "terminationType", "terminationTypeId"]),
            department: own(&["Department", "department"]),
        };
        let Some(v) = p.get("fields") else {
            return f;
        };
        let Some(map) = v.as_object() else {
            self.issue(
                "fields",
                format!(
                    "expected a table of role = \"BambooHR field name\", found {}",
                    describe(v)
                ),
            );
            return f;
        };
        const ROLES: [&str; 9] = [
            "employee_id",
            "email",
            "username",
            "status",
            "employment_status",
            "termination_date",
            "termination_reason",
            "termination_type",
            "department",
        ];
        for (role, name) in map {
            let Some(name) = name.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
                self.issue(
                    &format!("fields.{role}"),
                    format!("expected a BambooHR field name, found {}", describe(name)),
                );
                continue;
            };
            let name = name.to_string();
            match role.as_str() {
                "employee_id" => f.employee_id = Some(name),
                "email" => f.email = vec![name],
                "username" => f.username = vec![name],
                "status" => f.status = vec![name],
                "employment_status" => f.employment_status = vec![name],
                "termination_date" => f.termination_date = vec![name],
                "termination_reason" => f.termination_reason = vec![name],
                "termination_type" => f.termination_type = vec![name],
                "department" => f.department = vec![name],
                other => self.issue(
                    &format!("fields.{other}"),
                    format!(
                        "expected one of the roles {}, found {other:?}",
                        ROLES.map(|r| format!("{r:?}")).join(", ")
                    ),
                ),
            }
        }
        f
    }

    fn pointer(&mut self, p: &Map<String, Value>, key: &str) -> Option<String> {
        let v = p.get(key)?;
        let Some(s) = v.as_str() else {
            self.issue(
                key,
                format!(
                    "expected a JSON Pointer (RFC 6901) like \"/data/email\", found {}",
                    describe(v)
                ),
            );
            return None;
        };
        if valid_pointer(s) {
            Some(s.to_string())
        } else {
            self.issue(
                key,
                format!(
                    "expected a JSON Pointer (RFC 6901) like \"/data/email\": \"/\" first and \"~\" only as ~0 or ~1, found {s:?}"
                ),
            );
            None
        }
    }

    fn generic(&mut self, p: &Map<String, Value>) -> GenericSpec {
        let mut g = GenericSpec {
            event_id: self.pointer(p, "event_id"),
            employee_id: self.pointer(p, "employee_id"),
            email: self.pointer(p, "email"),
            username: self.pointer(p, "username"),
            effective_at: self.pointer(p, "effective_at"),
            reason: self.pointer(p, "reason"),
            involuntary: self.pointer(p, "involuntary"),
            high_risk: self.pointer(p, "high_risk"),
            department: self.pointer(p, "department"),
            event_kind: self.pointer(p, "event_kind"),
            ..GenericSpec::default()
        };
        // The daemon takes `kind` for the source's own kind, so it reaches us only from callers
        // that hand over the whole table; then it is the old name of the event-kind pointer.
        if p.contains_key("kind") {
            self.issue(
                "kind",
                "expected the event-kind JSON Pointer under event_kind (kind names the source kind, \"generic\"), found a kind key among the pointers",
            );
        }
        let id_keys_present = ["employee_id", "email", "username"]
            .iter()
            .any(|k| p.contains_key(*k));
        if !id_keys_present {
            self.issue(
                "employee_id",
                "expected at least one of the pointers employee_id, email or username, found none",
            );
        }
        let termination_values = self.string_list(p, "termination_values");
        g.cancellation_values = self
            .string_list(p, "cancellation_values")
            .unwrap_or_default();
        if g.event_kind.is_some() {
            match &termination_values {
                Some(v) if v.is_empty() => self.issue(
                    "termination_values",
                    "expected at least one value of the event_kind pointer that means a termination, found an empty list",
                ),
                None if !p.contains_key("termination_values") => self.issue(
                    "termination_values",
                    "expected the values of the event_kind pointer that mean a termination (the event_kind pointer is set), found none",
                ),
                _ => {}
            }
        }
        g.termination_values = termination_values.unwrap_or_default();
        if g.event_kind.is_none()
            && (p.contains_key("termination_values") || p.contains_key("cancellation_values"))
        {
            self.issue(
                "event_kind",
                "expected an event_kind pointer (termination_values or cancellation_values are set), found none",
            );
        }
        g
    }
}

/// Which key a secret at this list position came from, for the issue path.
fn secret_key_name(p: &Map<String, Value>, index: usize) -> String {
    let from_secret = match p.get("secret") {
        Some(Value::String(_)) => 1,
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    if index < from_secret {
        if matches!(p.get("secret"), Some(Value::Array(_))) {
            format!("secret[{index}]")
        } else {
            "secret".to_string()
        }
    } else if matches!(p.get("secrets"), Some(Value::Array(_))) {
        format!("secrets[{}]", index - from_secret)
    } else {
        "secrets".to_string()
    }
}

/// RFC 6901: empty, or `/`-separated tokens where `~` is only `~0` or `~1`.
pub(crate) fn valid_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'~' || matches!(b.get(i + 1), Some(b'0') | Some(b'1')))
}
