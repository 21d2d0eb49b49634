//! Batch import for `revokectl import FILE.csv|FILE.jsonl`: one termination per line, read
//! with the same rules as webhooks. Pure: the caller reads the file.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::auth::sha256_hex;
use crate::describe::describe;
use crate::error::{ImportError, IntakeError};
use crate::event::{EventKind, NormalizedEvent, RiskRules};
use crate::norm::{build_event, exact_numbers, parse_bool, Draft};
use crate::time::{from_unix, parse_effective, EFFECTIVE_EXPECTED};

/// The columns (CSV) or keys (JSONL) an import line may have.
const COLUMNS: [&str; 10] = [
    "employee_id",
    "email",
    "username",
    "client_domain",
    "effective_at",
    "reason",
    "department",
    "involuntary",
    "high_risk",
    "event_id",
];

/// The source name and kind of imported events.
pub(crate) const IMPORT_SOURCE: &str = "import";

struct Ctx<'a> {
    file: &'a str,
    tz: Tz,
    rules: &'a RiskRules,
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    fn err(&self, line: u64, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::Line {
            file: self.file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn string(
        &self,
        line: u64,
        field: &str,
        v: Option<&Value>,
    ) -> Result<Option<String>, ImportError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.err(
                line,
                field,
                format!("expected a string, found {}", describe(other)),
            )),
        }
    }

    fn boolean(
        &self,
        line: u64,
        field: &str,
        v: Option<&Value>,
    ) -> Result<Option<bool>, ImportError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => parse_bool(s).map(Some).ok_or_else(|| {
                self.err(
                    line,
                    field,
                    format!(
                        "expected true/false, yes/no or 1/0, found {}",
                        describe(&Value::String(s.clone()))
                    ),
                )
            }),
            Some(other) => Err(self.err(
                line,
                field,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    /// One line as an event; `get` looks a column up, `raw` is the line's bytes.
    fn event(
        &self,
        line: u64,
        get: &dyn Fn(&str) -> Option<Value>,
        raw: &[u8],
    ) -> Result<NormalizedEvent, ImportError> {
        let line_sha = sha256_hex(raw);
        let event_id = self
            .string(line, "event_id", get("event_id").as_ref())?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| line_sha.clone());
        let mut d = Draft::new(EventKind::Termination, event_id);
        d.employee_id = self.string(line, "employee_id", get("employee_id").as_ref())?;
        d.email = self.string(line, "email", get("email").as_ref())?;
        d.username = self.string(line, "username", get("username").as_ref())?;
        for (field, value) in [
            ("employee_id", &d.employee_id),
            ("email", &d.email),
            ("username", &d.username),
        ] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                revoke_core::identifier::check(field, v)
                    .map_err(|e| self.err(line, field, e.problem.to_string()))?;
            }
        }
        d.client_domain = self.string(line, "client_domain", get("client_domain").as_ref())?;
        if let Some(v) = d
            .client_domain
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            revoke_core::ClientDomain::parse(v).map_err(|e| {
                self.err(
                    line,
                    "client_domain",
                    format!("expected {}, found {:?}", e.expected, e.found),
                )
            })?;
            if [&d.employee_id, &d.email, &d.username]
                .iter()
                .any(|f| f.as_deref().is_some_and(|v| !v.trim().is_empty()))
            {
                return Err(self.err(
                    line,
                    "client_domain",
                    "expected either a person (employee_id, email, username) or a client_domain, found both".to_string(),
                ));
            }
        }
        d.reason = self.string(line, "reason", get("reason").as_ref())?;
        d.department = self.string(line, "department", get("department").as_ref())?;
        d.involuntary = self
            .boolean(line, "involuntary", get("involuntary").as_ref())?
            .unwrap_or(false);
        d.high_risk = self.boolean(line, "high_risk", get("high_risk").as_ref())?;
        d.effective_at = match get("effective_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                Some(parse_effective(&s, self.tz, None).ok_or_else(|| {
                    self.err(
                        line,
                        "effective_at",
                        format!(
                            "expected {EFFECTIVE_EXPECTED}, found {}",
                            describe(&Value::String(s.clone()))
                        ),
                    )
                })?)
            }
            Some(Value::Number(n)) => Some(n.as_i64().and_then(from_unix).ok_or_else(|| {
                self.err(
                    line,
                    "effective_at",
                    format!("expected unix seconds, found {n}"),
                )
            })?),
            Some(other) => {
                return Err(self.err(
                    line,
                    "effective_at",
                    format!("expected {EFFECTIVE_EXPECTED}, found {}", describe(&other)),
                ))
            }
        };
        build_event(
            IMPORT_SOURCE,
            IMPORT_SOURCE,
            self.rules,
            self.now,
            &line_sha,
            d,
        )
        .map_err(|e| {
            let message = match e {
                IntakeError::Unprocessable(_) => {
                    "expected an employee_id, email, username or client_domain, found none"
                        .to_string()
                }
                other => other.to_string(),
            };
            self.err(line, "employee_id", message)
        })
    }
}

/// Reads a CSV (header line of column names) or JSONL (one JSON object a line) file of
/// terminations. Columns: employee_id, email, username, effective_at (RFC 3339, or a date
/// read in `tz` that ends at the next day's 00:00), reason, department, involuntary, high_risk
/// and event_id (default: the hex SHA-256 of the line). A missing effective_at means `now`. The
/// first bad line stops the import; the error names its line and field.
pub fn parse_import(
    file_name: &str,
    bytes: &[u8],
    tz: Tz,
    rules: &RiskRules,
    now: DateTime<Utc>,
) -> Result<Vec<NormalizedEvent>, ImportError> {
    let ctx = Ctx {
        file: file_name,
        tz,
        rules,
        now,
    };
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        parse_csv(&ctx, bytes)
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        parse_jsonl(&ctx, bytes)
    } else {
        Err(ImportError::UnknownFormat {
            file: file_name.to_string(),
            found: lower
                .rsplit_once('.')
                .map_or_else(|| "no extension".to_string(), |(_, ext)| format!(".{ext}")),
        })
    }
}

fn unknown_column(ctx: &Ctx<'_>, line: u64, name: &str) -> ImportError {
    ctx.err(
        line,
        name,
        format!(
            "expected one of the columns {}, found an unknown column",
            COLUMNS.join(", ")
        ),
    )
}

fn parse_csv(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<Vec<NormalizedEvent>, ImportError> {
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        ctx.err(
            line,
            "csv",
            format!("expected well-formed CSV, found an error ({e})"),
        )
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let mut columns: Vec<String> = Vec::new();
    for h in headers.iter() {
        let name = h.trim().to_ascii_lowercase();
        if !COLUMNS.contains(&name.as_str()) {
            return Err(unknown_column(ctx, 1, h));
        }
        if columns.contains(&name) {
            return Err(ctx.err(1, h, "expected each column once, found it twice"));
        }
        columns.push(name);
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let start = rdr.position().byte() as usize;
        if !rdr.read_record(&mut record).map_err(csv_err)? {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        let start = record.position().map_or(start, |p| p.byte() as usize);
        let end = (rdr.position().byte() as usize).min(bytes.len());
        let raw = bytes.get(start..end).unwrap_or_default();
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |name: &str| -> Option<Value> {
            let i = columns.iter().position(|c| c == name)?;
            record
                .get(i)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_string()))
        };
        out.push(ctx.event(line, &get, raw)?);
    }
    Ok(out)
}

fn parse_jsonl(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<Vec<NormalizedEvent>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = serde_json::from_slice::<Value>(raw).map(|v| exact_numbers(raw, v));
        let obj = match parsed {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(ctx.err(
                    line,
                    "json",
                    format!("expected a JSON object, found {}", describe(&other)),
                ))
            }
            Err(e) => {
                return Err(ctx.err(
                    line,
                    "json",
                    format!("expected a JSON object, found invalid JSON ({e})"),
                ))
            }
        };
        if let Some(k) = obj.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
            return Err(unknown_column(ctx, line, k));
        }
        let get = |name: &str| obj.get(name).cloned();
        out.push(ctx.event(line, &get, raw)?);
    }
    Ok(out)
}
