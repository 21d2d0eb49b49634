//! The definition of an HTTP connector (`kind = "http"`), and its pure validation.
//!
//! A definition is one table: written whole under `[connectors.<instance>]`, or a shipped recipe
//! (`recipes/<name>.toml`, compiled in) that the instance names with `recipe = "<name>"` and whose
//! top-level keys the instance's replace. The format, field by field, is in
//! docs/connectors/http.md. Validation makes no I/O: the structure is checked by serde (the
//! first problem, with its field path), then every semantic problem is reported, each with its
//! full path (`connectors.mm.resources.user.actions[1].outcomes[0].result`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use revoke_core::keys::url_problem;
use revoke_core::{ConfigIssue, Phase};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::jsonpath::JsonPath;
use crate::template::{Template, Var};

/// One whole definition; build it only after [`validate`] passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// The shipped recipe this definition started from (already merged in).
    #[serde(default)]
    pub recipe: Option<String>,
    /// The file this definition was read from (`.toml`, `.yaml` or `.yml`), already merged in.
    #[serde(default)]
    pub definition_file: Option<String>,
    /// The system's name, for summaries and notes (`Mattermost`).
    pub system: String,
    pub base_url: String,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The header carrying the action's key on every mutating request.
    #[serde(default)]
    pub idempotency_header: Option<String>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Whether the definition handles departing-client subjects.
    #[serde(default)]
    pub client_jobs: bool,
    /// Values of the instance the templates name as `{{vars.<name>}}` (WordPress's
    /// `reassign = {{vars.reassign_to}}`), escaped by position like every value.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The executor reads back a run's actions together (`verify_many`: a verify request that
    /// renders the same for several actions is sent once); default false (each right after it
    /// succeeds).
    #[serde(default)]
    pub batch_verify: bool,
    pub resources: BTreeMap<String, Resource>,
}

fn default_timeout_secs() -> u64 {
    30
}

/// How the connector proves who it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    #[default]
    None,
    Bearer {
        token: SecretString,
    },
    Basic {
        username: String,
        password: SecretString,
    },
    ApiKey {
        header: String,
        token: SecretString,
        #[serde(default)]
        prefix: String,
    },
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// A secret exchanged for a short-lived token by a JSON POST (Docker Hub's
    /// `POST /v2/auth/token {"identifier": ORG, "secret": PAT}`).
    TokenExchange {
        /// The exchange endpoint.
        url: String,
        /// The body's other fields (`{identifier = "myorg"}`).
        #[serde(default)]
        json: serde_json::Map<String, Value>,
        /// The body field the secret goes in.
        secret_field: String,
        secret: SecretString,
        /// JSONPath to the token in the answer (`$.access_token`).
        token_path: String,
        /// How long a token is used (a minute less, at least one second).
        #[serde(default = "default_ttl")]
        ttl_secs: u64,
        /// The header the token goes in, and its prefix.
        #[serde(default = "default_auth_header")]
        header: String,
        #[serde(default = "default_bearer")]
        prefix: String,
    },
}

fn default_ttl() -> u64 {
    300
}
fn default_auth_header() -> String {
    "Authorization".to_string()
}
fn default_bearer() -> String {
    "Bearer ".to_string()
}

/// How the client secret goes to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    #[default]
    Basic,
    /// In the form body (`client_secret_post`).
    Body,
}

/// A client-side budget: `requests` per `per_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u64,
    #[serde(default = "one")]
    pub per_secs: u64,
}

fn one() -> u64 {
    1
}

/// One kind of thing the system holds (users, channel memberships, agents).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// The parent resource: discovery runs once per parent item.
    #[serde(default)]
    pub within: Option<String>,
    /// JSONPath to the item's immutable id.
    pub id: String,
    #[serde(default = "default_id_kind")]
    pub id_kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub identifiers: Vec<String>,
    pub discover: Vec<DiscoverRequest>,
    #[serde(default, rename = "match")]
    pub match_rules: Vec<MatchRule>,
    #[serde(default)]
    pub state: BTreeMap<String, Predicate>,
    /// Body predicates an item must meet to be considered at all (all must hold): a listing's
    /// other kinds (open channels beside private ones) are left out without a finding.
    #[serde(default)]
    pub keep: Vec<Predicate>,
    #[serde(default)]
    pub read: Option<ReadRequest>,
    #[serde(default)]
    pub actions: Vec<ActionDef>,
}

fn default_id_kind() -> String {
    "id".to_string()
}

/// A request template: method, path, query, headers and a body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
}

fn get() -> String {
    "GET".to_string()
}

/// A read-only request of discovery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSONPath to the items in the answer (`$`: the answer is one item).
    #[serde(default = "root")]
    pub items: String,
    /// Statuses meaning "no items here" (a lookup by name answering 404).
    #[serde(default)]
    pub absent: Vec<u16>,
    /// Body predicates meaning the answer is an error even with a 2xx status.
    #[serde(default)]
    pub error_if: Vec<Predicate>,
    /// Body predicates meaning "no items here" (a 200 `{"ok": false, "error": "users_not_found"}`);
    /// checked before `error_if`.
    #[serde(default)]
    pub absent_if: Vec<Predicate>,
    #[serde(default)]
    pub paginate: Option<Paginate>,
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
}

fn root() -> String {
    "$".to_string()
}
fn default_max_pages() -> u64 {
    100
}

/// How discovery reads the next page.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paginate {
    Cursor {
        next: String,
        param: String,
    },
    Page {
        param: String,
        #[serde(default = "one")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default = "hundred")]
        size: u64,
    },
    Offset {
        param: String,
        #[serde(default = "one")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default = "hundred")]
        size: u64,
        #[serde(default)]
        total: Option<String>,
    },
    Link,
}

fn hundred() -> u64 {
    100
}

/// The request reading one item by its id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSONPath to the item in the answer.
    #[serde(default = "root")]
    pub item: String,
    /// Statuses meaning the item is gone.
    #[serde(default)]
    pub gone: Vec<u16>,
}

impl ReadRequest {
    pub fn as_request(&self) -> RequestDef {
        RequestDef {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            json: None,
            form: None,
        }
    }
}

impl DiscoverRequest {
    pub fn as_request(&self) -> RequestDef {
        RequestDef {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            json: None,
            form: None,
        }
    }
}

/// Why an item is the subject's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    pub path: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub case: Case,
    #[serde(default)]
    pub client_domain: Option<DomainForm>,
}

/// How strings compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    #[default]
    Exact,
    Insensitive,
}

/// What the value a client-domain rule reads is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainForm {
    Email,
    Domain,
}

/// A fact about a JSON answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub path: String,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub not_equals: Option<Value>,
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<Value>>,
    /// Every value at the path is one of these, and there is at least one.
    #[serde(default)]
    pub all_in: Option<Vec<Value>>,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub case: Case,
}

/// One action on each matched item.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    pub name: String,
    pub phase: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub unless: Option<String>,
    #[serde(default)]
    pub delay_days: u64,
    /// A read sent before the write, on every attempt: when it shows the effect already there
    /// (the membership gone, the invite id no longer the one discovery saw), nothing is sent.
    #[serde(default)]
    pub before: Option<BeforeDef>,
    #[serde(default)]
    pub request: Option<RequestDef>,
    #[serde(default)]
    pub outcomes: Vec<OutcomeRule>,
    #[serde(default)]
    pub verify: Option<VerifyDef>,
}

/// The read before an action's write: a GET (every page of it) whose items say whether the
/// thing the write removes is still there.
///
/// - an `absent` status or an `absent_if` body: not there, so already done (nothing sent);
/// - otherwise the items at `items`, every page: one meeting all of `refuse` makes the action
///   the permanent `identity_changed` (the thing is now someone else's; nothing sent); one
///   meeting all of `present` (any item when `present` is empty) means still there: the write
///   is sent; none: already done, nothing sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeDef {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "root")]
    pub items: String,
    #[serde(default)]
    pub absent: Vec<u16>,
    #[serde(default)]
    pub absent_if: Vec<Predicate>,
    #[serde(default)]
    pub error_if: Vec<Predicate>,
    #[serde(default)]
    pub paginate: Option<Paginate>,
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
    /// Predicates an item must all meet to be the thing still there (`{path = "$", equals =
    /// "{{parent.id}}"}` among a channel's member ids); empty: any item is.
    #[serde(default)]
    pub present: Vec<Predicate>,
    /// Predicates meaning the item is now someone else's (`{path = "$.user_id", not_equals =
    /// "{{parent.id}}"}`): the action is refused, nothing sent.
    #[serde(default)]
    pub refuse: Vec<Predicate>,
}

impl BeforeDef {
    /// The read as a discovery request (the same paging, absent and error rules).
    pub fn as_discover(&self) -> DiscoverRequest {
        DiscoverRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            items: self.items.clone(),
            absent: self.absent.clone(),
            error_if: self.error_if.clone(),
            absent_if: self.absent_if.clone(),
            paginate: self.paginate.clone(),
            max_pages: self.max_pages,
        }
    }
}

/// Which answers mean what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRule {
    #[serde(default)]
    pub status: Option<Vec<u16>>,
    #[serde(default)]
    pub body: Vec<Predicate>,
    pub result: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

/// How an action's effect is read back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyDef {
    #[serde(default)]
    pub request: Option<RequestDef>,
    pub confirmed: Vec<StatusRule>,
}

/// A status (any when omitted) and body predicates, all of which must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRule {
    #[serde(default)]
    pub status: Option<Vec<u16>>,
    #[serde(default)]
    pub body: Vec<Predicate>,
}

/// What an outcome rule concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result_ {
    Done,
    AlreadyDone,
    Retry,
    RateLimited,
    Permanent,
    Auth,
    Conflict,
}

pub const RESULTS: &[&str] = &[
    "done",
    "already_done",
    "retry",
    "rate_limited",
    "permanent",
    "auth",
    "conflict",
];

impl Result_ {
    pub fn parse(s: &str) -> Option<Result_> {
        Some(match s {
            "done" => Result_::Done,
            "already_done" => Result_::AlreadyDone,
            "retry" => Result_::Retry,
            "rate_limited" => Result_::RateLimited,
            "permanent" => Result_::Permanent,
            "auth" => Result_::Auth,
            "conflict" => Result_::Conflict,
            _ => return None,
        })
    }
}

/// The phase an action name's `phase` gives.
pub fn phase(s: &str) -> Option<Phase> {
    Some(match s {
        "contain" => Phase::Contain,
        "transfer" => Phase::Transfer,
        "revoke" => Phase::Revoke,
        "delete" => Phase::Delete,
        "manual" => Phase::Manual,
        _ => return None,
    })
}

fn phase_rank(p: Phase) -> u8 {
    match p {
        Phase::Contain => 0,
        Phase::Transfer => 1,
        Phase::Revoke => 2,
        Phase::Delete => 3,
        Phase::Manual | Phase::Verify => 4,
    }
}

impl Definition {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_path_to_error::deserialize(params.clone()).map_err(|e| {
            let p = e.path().to_string();
            if p == "." {
                e.inner().to_string()
            } else {
                format!("{p}: {}", e.inner())
            }
        })
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// Resources parents first (then by name), so a child's discovery sees its parents' items.
    pub fn resource_order(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut left: Vec<&str> = self.resources.keys().map(String::as_str).collect();
        while !left.is_empty() {
            let before = left.len();
            left.retain(|r| {
                let ready = match &self.resources[*r].within {
                    None => true,
                    Some(p) => out.contains(&p.as_str()),
                };
                if ready {
                    out.push(r);
                }
                !ready
            });
            if left.len() == before {
                // A cycle (refused by validation): keep the rest in name order.
                out.append(&mut left);
            }
        }
        out
    }

    /// The chain of a resource's ancestors, nearest first.
    pub fn ancestors(&self, resource: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = resource;
        while let Some(p) = self.resources.get(cur).and_then(|r| r.within.as_deref()) {
            if out.contains(&p) || out.len() > 16 {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }
}

/// The recipe text compiled in under `name`, if one is shipped.
pub fn recipe_text(name: &str) -> Option<&'static str> {
    crate::recipes::RECIPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// The names of the shipped recipes.
pub fn recipe_names() -> Vec<&'static str> {
    crate::recipes::RECIPES.iter().map(|(n, _)| *n).collect()
}

/// Parses a definition file's TOML text into the table a definition is checked from.
pub fn parse_toml(text: &str) -> Result<Value, String> {
    let t: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// The largest definition file read (YAML or TOML text), in bytes.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;

/// Parses a definition file's YAML text (serde-saphyr) into the table a definition is checked
/// from: the same table TOML gives, checked by the same code, with the same field paths.
///
/// YAML's type traps never change a value silently: only YAML 1.2 core booleans (`true`,
/// `false`) are booleans (`no`, `on`, `yes`, `off` stay the strings written); a number written
/// with leading zeros (`0123`) or underscores (`1_000`) stays a string; there is no legacy octal,
/// no timestamp type (`2024-01-01` stays a string) and no sexagesimal (`1:20` stays a string);
/// a value that is a number or `null` where the definition wants a string (`1e3` as a query
/// value) is refused by the definition's own types, not converted. Duplicate keys, merge keys
/// (`<<`), several documents and unknown tags are refused; aliases are allowed within a budget
/// (an alias bomb is refused, not expanded).
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    use serde_saphyr::{Budget, DuplicateKeyPolicy, MergeKeyPolicy, Options};
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(format!(
            "expected a definition of at most {MAX_DEFINITION_BYTES} bytes, found {}",
            text.len()
        ));
    }
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(MAX_DEFINITION_BYTES);
    budget.max_events = 200_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = 100_000;
    budget.max_documents = 1;
    budget.max_depth = 32;
    budget.max_total_scalar_bytes = MAX_DEFINITION_BYTES;
    budget.max_recorded_anchor_bytes = MAX_DEFINITION_BYTES;
    let mut opts = Options::default();
    opts.budget = Some(budget);
    opts.duplicate_keys = DuplicateKeyPolicy::Error;
    opts.merge_keys = MergeKeyPolicy::Error;
    opts.alias_limits.max_total_replayed_events = 100_000;
    opts.strict_booleans = true;
    opts.legacy_octal_numbers = false;
    opts.leading_zero_numbers_as_strings = true;
    opts.underscored_numbers_as_strings = true;
    opts.reject_unsupported_tags = true;
    opts.with_snippet = false;
    let v: Value = serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
        // The library's hint to its own callers is no advice for the file's author.
        e.to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
            .replace(" by configured policy", "")
    })?;
    if !v.is_object() {
        return Err("expected a mapping (the definition's keys) at the top".into());
    }
    Ok(v)
}

/// A definition file's text parsed by its extension: `.toml`, or `.yaml`/`.yml`.
pub fn parse_definition(file: &str, text: &str) -> Result<Value, String> {
    let ext = std::path::Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("toml") => parse_toml(text).map_err(|e| format!("{file}: not TOML: {e}")),
        Some("yaml") | Some("yml") => {
            parse_yaml(text).map_err(|e| format!("{file}: not a YAML definition: {e}"))
        }
        _ => Err(format!(
            "expected a definition file ending in .toml, .yaml or .yml, found {file:?}"
        )),
    }
}

/// The instance table with its recipe's (or definition file's) keys under it (the instance's
/// win); the table as it is without either. Pure: recipes are compiled in, and a
/// `definition_file`'s text was read by the config layer at load into `definition`.
pub fn merged(path: &str, params: &Value) -> Result<Value, ConfigIssue> {
    let from_file = params.get("definition_file");
    let Some(name) = params.get("recipe") else {
        let Some(file) = from_file else {
            if params.get("definition").is_some() {
                return Err(ConfigIssue::new(
                    format!("{path}.definition"),
                    "expected definition_file = \"/path/to/definition.yaml\" (the config layer reads it into definition); a definition's text is not written inline",
                ));
            }
            return Ok(params.clone());
        };
        let Some(file) = file.as_str() else {
            return Err(ConfigIssue::new(
                format!("{path}.definition_file"),
                "expected a file path (a string)",
            ));
        };
        let Some(text) = params.get("definition").and_then(Value::as_str) else {
            return Err(ConfigIssue::new(
                format!("{path}.definition_file"),
                format!("expected the text of {file:?} read at load by the config layer (into `definition`), found none: this configuration was not loaded through revoke-config"),
            ));
        };
        let mut base = parse_definition(file, text)
            .map_err(|e| ConfigIssue::new(format!("{path}.definition_file"), e))?;
        if let Some(issue) = check_file_secrets(&format!("{path}.definition_file"), &base)
            .into_iter()
            .next()
        {
            return Err(issue);
        }
        if base.get("definition_file").is_some() || base.get("recipe").is_some() {
            return Err(ConfigIssue::new(
                format!("{path}.definition_file"),
                format!("expected a whole definition in {file:?}, found a recipe or definition_file key in it"),
            ));
        }
        let file_secret = base
            .get("auth")
            .and_then(Value::as_object)
            .and_then(|a| a.keys().find(|k| k.ends_with("_file")).cloned());
        if let (Some(k), None) = (file_secret, params.get("auth")) {
            return Err(ConfigIssue::new(
                format!("{path}.definition_file"),
                format!("expected auth in the instance table (revoked.toml), where the config layer reads {k}; found it only in {file:?}, whose *_file keys nothing reads"),
            ));
        }
        if let (Some(b), Some(over)) = (base.as_object_mut(), params.as_object()) {
            for (k, v) in over {
                if k != "definition" {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        return Ok(base);
    };
    if from_file.is_some() {
        return Err(ConfigIssue::new(
            format!("{path}.definition_file"),
            "expected one of recipe or definition_file, found both",
        ));
    }
    let Some(name) = name.as_str() else {
        return Err(ConfigIssue::new(
            format!("{path}.recipe"),
            "expected the name of a shipped recipe (a string)",
        ));
    };
    let Some(text) = recipe_text(name) else {
        return Err(ConfigIssue::new(
            format!("{path}.recipe"),
            format!(
                "expected one of the shipped recipes ({}), found {name:?}",
                recipe_names().join(", ")
            ),
        ));
    };
    let mut base = parse_toml(text).map_err(|e| {
        ConfigIssue::new(
            format!("{path}.recipe"),
            format!("the shipped recipe {name:?} does not parse: {e}"),
        )
    })?;
    if let (Some(b), Some(over)) = (base.as_object_mut(), params.as_object()) {
        for (k, v) in over {
            b.insert(k.clone(), v.clone());
        }
    }
    Ok(base)
}

/// The secret keys a definition file (a recipe) must not hold.
const SECRET_KEYS: &[&str] = &["token", "password", "client_secret", "secret"];

/// Checks a definition file's table (a recipe or a whole definition read by
/// `revokectl connector check`): no secret may be written in it, only `*_file` keys.
pub fn check_file_secrets(path: &str, params: &Value) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    if let Some(auth) = params.get("auth").and_then(Value::as_object) {
        for k in SECRET_KEYS {
            if auth.contains_key(*k) {
                out.push(ConfigIssue::new(
                    format!("{path}.auth.{k}"),
                    format!("expected the secret through {k}_file (a definition file holds no secret), found it written in the file"),
                ));
            }
        }
    }
    out
}

/// Checks a definition without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let merged = merged(path, params).map_err(|e| vec![e])?;
    let def = match Definition::from_value(&merged) {
        Ok(d) => d,
        Err(e) => return Err(structural(path, &merged, e)),
    };
    let issues = check(path, &def);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// One serde problem as an issue: its field path under `at`.
fn shape_issue<T: serde::de::DeserializeOwned>(at: &str, v: &Value) -> Option<ConfigIssue> {
    let e = serde_path_to_error::deserialize::<_, T>(v.clone()).err()?;
    let p = e.path().to_string();
    let field = if p == "." {
        at.to_string()
    } else if p.starts_with('[') {
        format!("{at}{p}")
    } else {
        format!("{at}.{p}")
    };
    Some(ConfigIssue::new(field, e.inner().to_string()))
}

/// Every structural problem, not only serde's first: the top level with each resource's
/// discovery requests and actions set aside, then `auth`, then each discovery request and each
/// action on its own, each named by its field path.
fn structural(path: &str, merged: &Value, first: String) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut top = merged.clone();
    let mut parts: Vec<(String, Value, bool)> = Vec::new();
    if let Some(t) = top.as_object_mut() {
        if let Some(a) = t.get("auth").cloned() {
            parts.push((format!("{path}.auth"), a, false));
            t.insert("auth".into(), serde_json::json!({"type": "none"}));
        }
        if let Some(res) = t.get_mut("resources").and_then(Value::as_object_mut) {
            for (rn, r) in res.iter_mut() {
                let Some(r) = r.as_object_mut() else { continue };
                for (k, is_action) in [("discover", false), ("actions", true)] {
                    if let Some(Value::Array(list)) = r.get(k) {
                        for (i, x) in list.iter().enumerate() {
                            parts.push((
                                format!("{path}.resources.{rn}.{k}[{i}]"),
                                x.clone(),
                                is_action,
                            ));
                        }
                        r.insert(k.into(), Value::Array(Vec::new()));
                    }
                }
            }
        }
    }
    issues.extend(shape_issue::<Definition>(path, &top));
    for (at, v, is_action) in parts {
        let issue = if at.ends_with(".auth") {
            shape_issue::<Auth>(&at, &v)
        } else if is_action {
            shape_issue::<ActionDef>(&at, &v)
        } else {
            shape_issue::<DiscoverRequest>(&at, &v)
        };
        issues.extend(issue);
    }
    if issues.is_empty() {
        issues.push(ConfigIssue::new(path, first));
    }
    issues
}

fn is_snake(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && s.len() <= 64
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The template variables each place may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Discovery of a top-level resource: the subject.
    Discover,
    /// Discovery of a child: the subject and the parent.
    DiscoverChild,
    /// Actions, reads, verify, summaries: the subject, the item, the parent, the account, the key.
    Act { child: bool },
    /// A match rule's value: the subject.
    Match,
}

fn allowed(place: Place, v: &Var) -> Result<(), String> {
    let ok = match (place, v) {
        (_, Var::Subject(_)) => true,
        (Place::DiscoverChild, Var::Parent(_)) => true,
        (Place::Act { child }, Var::Parent(_)) => child,
        (Place::Act { .. }, Var::Item(_) | Var::AccountId | Var::ActionKey) => true,
        (_, Var::Vars(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{{{{{}}}}} cannot be used here ({})",
            v.name(),
            match place {
                Place::Discover => "discovery of a top-level resource knows only subject.*",
                Place::DiscoverChild => "discovery knows subject.* and parent.*",
                Place::Act { child: false } =>
                    "an action of a top-level resource knows subject.*, item.*, account.id and action.key",
                Place::Act { child: true } => "unexpected",
                Place::Match => "a match rule knows only subject.*",
            }
        ))
    }
}

struct Checker<'a> {
    issues: Vec<ConfigIssue>,
    def: &'a Definition,
}

impl Checker<'_> {
    fn push(&mut self, at: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(ConfigIssue::new(at, msg));
    }

    fn jsonpath(&mut self, at: &str, p: &str) {
        if let Err(e) = JsonPath::parse(p) {
            self.push(at, e);
        }
    }

    fn template(&mut self, at: &str, text: &str, place: Place) -> Option<Template> {
        let t = self.template_any(at, text, place)?;
        if t.has_filter() {
            self.push(
                at,
                "expected | number or | bool only in a json value that is one {{...}} alone",
            );
        }
        Some(t)
    }

    /// A JSON body string: it may be one variable alone with a `| number` or `| bool` filter.
    fn template_json(&mut self, at: &str, text: &str, place: Place) -> Option<Template> {
        let t = self.template_any(at, text, place)?;
        if t.has_filter() && t.sole_filter().is_none() {
            self.push(
                at,
                "expected | number or | bool only in a json value that is one {{...}} alone",
            );
        }
        Some(t)
    }

    fn template_any(&mut self, at: &str, text: &str, place: Place) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                for v in t.vars() {
                    if let Err(e) = allowed(place, v) {
                        self.push(at, e);
                    }
                    if let Var::Vars(n) = v {
                        if !self.def.vars.contains_key(n) {
                            let known: Vec<&str> =
                                self.def.vars.keys().map(String::as_str).collect();
                            self.push(
                                at,
                                format!(
                                    "expected a variable of [vars] ({}), found {{{{vars.{n}}}}}",
                                    if known.is_empty() {
                                        "the definition has none".to_string()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            );
                        }
                    }
                }
                Some(t)
            }
            Err(e) => {
                self.push(at, e);
                None
            }
        }
    }

    fn predicate(&mut self, at: &str, p: &Predicate) {
        self.jsonpath(&format!("{at}.path"), &p.path);
        let n = [
            p.equals.is_some(),
            p.not_equals.is_some(),
            p.one_of.is_some(),
            p.all_in.is_some(),
            p.exists.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            self.push(
                at,
                format!(
                    "expected exactly one of equals, not_equals, in, all_in, exists; found {n}"
                ),
            );
        }
    }

    /// The string values of a predicate of an action's outcome or verify may name the item,
    /// its parent or the account (`{{parent.id}}` not among a channel's members).
    fn predicate_values(&mut self, at: &str, p: &Predicate, place: Place) {
        let mut strings = Vec::new();
        for (k, v) in [("equals", &p.equals), ("not_equals", &p.not_equals)] {
            if let Some(v) = v {
                json_strings(v, k, &mut strings);
            }
        }
        if let Some(l) = &p.one_of {
            json_strings(&Value::Array(l.clone()), "in", &mut strings);
        }
        if let Some(l) = &p.all_in {
            json_strings(&Value::Array(l.clone()), "all_in", &mut strings);
        }
        for (k, s) in strings {
            self.template(&format!("{at}.{k}"), &s, place);
        }
    }

    /// `max_pages` and `paginate` of a read of several pages.
    fn paging(&mut self, dat: &str, d: &DiscoverRequest) {
        if d.max_pages == 0 || d.max_pages > 10_000 {
            self.push(format!("{dat}.max_pages"), "expected 1 to 10000");
        }
        match &d.paginate {
            Some(Paginate::Cursor { next, param }) => {
                self.jsonpath(&format!("{dat}.paginate.next"), next);
                if param.is_empty() {
                    self.push(
                        format!("{dat}.paginate.param"),
                        "expected a query parameter name",
                    );
                }
            }
            Some(Paginate::Page { size, .. }) | Some(Paginate::Offset { size, .. })
                if *size == 0 =>
            {
                self.push(format!("{dat}.paginate.size"), "expected at least 1");
            }
            _ => {}
        }
        if let Some(Paginate::Offset { total: Some(t), .. }) = &d.paginate {
            self.jsonpath(&format!("{dat}.paginate.total"), t);
        }
    }

    /// An action's read before its write.
    fn before(&mut self, bat: &str, b: &BeforeDef, place: Place) {
        let d = b.as_discover();
        self.request(bat, &d.as_request(), place, READ_METHODS);
        self.jsonpath(&format!("{bat}.items"), &b.items);
        self.statuses(&format!("{bat}.absent"), &b.absent);
        for (j, p) in b.error_if.iter().enumerate() {
            self.predicate(&format!("{bat}.error_if[{j}]"), p);
        }
        for (j, p) in b.absent_if.iter().enumerate() {
            self.predicate(&format!("{bat}.absent_if[{j}]"), p);
        }
        for (k, list) in [("present", &b.present), ("refuse", &b.refuse)] {
            for (j, p) in list.iter().enumerate() {
                self.predicate(&format!("{bat}.{k}[{j}]"), p);
                self.predicate_values(&format!("{bat}.{k}[{j}]"), p, place);
            }
        }
        self.paging(bat, &d);
    }

    fn statuses(&mut self, at: &str, s: &[u16]) {
        for (i, code) in s.iter().enumerate() {
            if !(100..=599).contains(code) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("expected an HTTP status (100-599), found {code}"),
                );
            }
        }
    }

    /// Checks a request template; returns the variables it uses.
    fn request(
        &mut self,
        at: &str,
        r: &RequestDef,
        place: Place,
        methods: &[&str],
    ) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        if !methods.contains(&r.method.as_str()) {
            self.push(
                format!("{at}.method"),
                format!(
                    "expected one of {} (in capitals), found {:?}",
                    methods.join(", "),
                    r.method
                ),
            );
        }
        if !r.path.starts_with('/') {
            self.push(
                format!("{at}.path"),
                format!(
                    "expected a path starting with / (appended to base_url), found {:?}",
                    r.path
                ),
            );
        }
        if let Some(t) = self.template(&format!("{at}.path"), &r.path, place) {
            if t.literal_text().contains(['?', '#']) {
                self.push(
                    format!("{at}.path"),
                    "expected no ? or # in a path (put query values in `query`)",
                );
            }
            if t.literal_text().contains("..") {
                self.push(format!("{at}.path"), "expected no .. in a path");
            }
            used.extend(t.vars().map(Var::name));
        }
        for (k, v) in &r.query {
            if let Some(t) = self.template(&format!("{at}.query.{k}"), v, place) {
                used.extend(t.vars().map(Var::name));
            }
        }
        for (k, v) in &r.headers {
            if !is_header_name(k) {
                self.push(
                    format!("{at}.headers.{k}"),
                    format!("expected a header name (token characters), found {k:?}"),
                );
            }
            if let Some(t) = self.template(&format!("{at}.headers.{k}"), v, place) {
                if t.literal_text().bytes().any(|b| b.is_ascii_control()) {
                    self.push(
                        format!("{at}.headers.{k}"),
                        "expected no control characters",
                    );
                }
                used.extend(t.vars().map(Var::name));
            }
        }
        if r.json.is_some() && r.form.is_some() {
            self.push(at, "expected one of json or form, found both");
        }
        if let Some(j) = &r.json {
            let mut strings = Vec::new();
            json_strings(j, "json", &mut strings);
            for (p, s) in strings {
                if let Some(t) = self.template_json(&format!("{at}.{p}"), &s, place) {
                    used.extend(t.vars().map(Var::name));
                }
            }
        }
        if let Some(f) = &r.form {
            for (k, v) in f {
                if let Some(t) = self.template(&format!("{at}.form.{k}"), v, place) {
                    used.extend(t.vars().map(Var::name));
                }
            }
        }
        used
    }
}

/// Every string inside a JSON body, with its path (keys are not templates).
pub fn json_strings(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at.to_string(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                json_strings(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                json_strings(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

const READ_METHODS: &[&str] = &["GET"];
const WRITE_METHODS: &[&str] = &["POST", "PUT", "PATCH", "DELETE"];

/// Every semantic problem of a parsed definition.
pub fn check(path: &str, def: &Definition) -> Vec<ConfigIssue> {
    let mut c = Checker {
        issues: Vec::new(),
        def,
    };
    let key = |k: &str| format!("{path}.{k}");
    if def.system.trim().is_empty() {
        c.push(key("system"), "expected the system's name, found nothing");
    }
    if let Some(p) = url_problem(&def.base_url) {
        c.push(
            key("base_url"),
            format!("expected an http(s) url ({p}), found {:?}", def.base_url),
        );
    }
    if def.timeout_secs == 0 || def.timeout_secs > 600 {
        c.push(
            key("timeout_secs"),
            format!("expected 1 to 600 seconds, found {}", def.timeout_secs),
        );
    }
    for (k, v) in &def.headers {
        if !is_header_name(k) {
            c.push(key(&format!("headers.{k}")), "expected a header name");
        }
        if v.bytes().any(|b| b.is_ascii_control()) {
            c.push(
                key(&format!("headers.{k}")),
                "expected a header value without control characters",
            );
        }
        if k.eq_ignore_ascii_case("authorization") {
            c.push(
                key(&format!("headers.{k}")),
                "expected credentials in `auth` (secrets through *_file), found an Authorization header",
            );
        }
    }
    if let Some(h) = &def.idempotency_header {
        if !is_header_name(h) {
            c.push(
                key("idempotency_header"),
                format!("expected a header name, found {h:?}"),
            );
        }
    }
    match &def.auth {
        Auth::ApiKey { header, .. } if !is_header_name(header) => {
            c.push(
                key("auth.header"),
                format!("expected a header name, found {header:?}"),
            );
        }
        Auth::Oauth2ClientCredentials { token_url, .. } => {
            if let Some(p) = url_problem(token_url) {
                c.push(
                    key("auth.token_url"),
                    format!("expected an http(s) url ({p}), found {token_url:?}"),
                );
            }
        }
        Auth::TokenExchange {
            url,
            secret_field,
            token_path,
            header,
            prefix,
            json,
            ..
        } => {
            if let Some(p) = url_problem(url) {
                c.push(
                    key("auth.url"),
                    format!("expected an http(s) url ({p}), found {url:?}"),
                );
            }
            if secret_field.is_empty() || json.contains_key(secret_field) {
                c.push(
                    key("auth.secret_field"),
                    "expected the name of the body field the secret goes in (not one of `json`'s)",
                );
            }
            c.jsonpath(&key("auth.token_path"), token_path);
            if !is_header_name(header) {
                c.push(
                    key("auth.header"),
                    format!("expected a header name, found {header:?}"),
                );
            }
            if prefix.bytes().any(|b| b.is_ascii_control()) {
                c.push(key("auth.prefix"), "expected no control characters");
            }
        }
        _ => {}
    }
    if let Some(r) = &def.rate_limit {
        if r.requests == 0 || r.per_secs == 0 {
            c.push(
                key("rate_limit"),
                "expected requests and per_secs of at least 1",
            );
        }
    }
    if def.resources.is_empty() {
        c.push(key("resources"), "expected at least one resource");
    }
    for (n, v) in &def.vars {
        if !is_snake(n) {
            c.push(
                key(&format!("vars.{n}")),
                "expected a snake_case variable name",
            );
        }
        if v.chars().any(char::is_control) {
            c.push(key(&format!("vars.{n}")), "expected no control characters");
        }
    }
    // Every action, by "resource.name", with its phase.
    let mut all_actions: BTreeMap<String, Phase> = BTreeMap::new();
    for (rn, r) in &def.resources {
        for a in &r.actions {
            if let Some(p) = phase(&a.phase) {
                all_actions.insert(format!("{rn}.{}", a.name), p);
            }
        }
    }
    for (rn, r) in &def.resources {
        let at = key(&format!("resources.{rn}"));
        if !is_snake(rn) {
            c.push(
                at.clone(),
                "expected a snake_case resource name (a-z, 0-9, _)",
            );
        }
        let child = r.within.is_some();
        if let Some(p) = &r.within {
            if !def.resources.contains_key(p) {
                c.push(
                    format!("{at}.within"),
                    format!("expected the name of another resource, found {p:?}"),
                );
            } else if p == rn || def.ancestors(rn).contains(&rn.as_str()) {
                c.push(format!("{at}.within"), "expected no cycle of `within`");
            }
        }
        c.jsonpath(&format!("{at}.id"), &r.id);
        if let Some(n) = &r.name {
            c.jsonpath(&format!("{at}.name"), n);
        }
        for (i, p) in r.identifiers.iter().enumerate() {
            c.jsonpath(&format!("{at}.identifiers[{i}]"), p);
        }
        if r.discover.is_empty() {
            c.push(format!("{at}.discover"), "expected at least one request");
        }
        let dplace = if child {
            Place::DiscoverChild
        } else {
            Place::Discover
        };
        for (i, d) in r.discover.iter().enumerate() {
            let dat = format!("{at}.discover[{i}]");
            c.request(&dat, &d.as_request(), dplace, READ_METHODS);
            c.jsonpath(&format!("{dat}.items"), &d.items);
            c.statuses(&format!("{dat}.absent"), &d.absent);
            for (j, p) in d.error_if.iter().enumerate() {
                c.predicate(&format!("{dat}.error_if[{j}]"), p);
            }
            for (j, p) in d.absent_if.iter().enumerate() {
                c.predicate(&format!("{dat}.absent_if[{j}]"), p);
            }
            c.paging(&dat, d);
        }
        if !child && r.match_rules.is_empty() {
            c.push(
                format!("{at}.match"),
                "expected at least one match rule (an item of a top-level resource is the subject's only when a rule says so)",
            );
        }
        for (i, m) in r.match_rules.iter().enumerate() {
            let mat = format!("{at}.match[{i}]");
            c.jsonpath(&format!("{mat}.path"), &m.path);
            match (&m.equals, &m.client_domain) {
                (Some(e), None) => {
                    if let Some(t) = c.template(&format!("{mat}.equals"), e, Place::Match) {
                        if !t.vars().any(|v| matches!(v, Var::Subject(_))) {
                            c.push(
                                format!("{mat}.equals"),
                                "expected a value naming the subject ({{subject.username}}, {{subject.email}}, ...), found a constant",
                            );
                        }
                    }
                }
                (None, Some(_)) => {
                    if !def.client_jobs {
                        c.push(
                            format!("{mat}.client_domain"),
                            "expected client_jobs = true for a client-domain rule",
                        );
                    }
                }
                _ => c.push(
                    mat.clone(),
                    "expected exactly one of equals or client_domain",
                ),
            }
        }
        for (i, p) in r.keep.iter().enumerate() {
            c.predicate(&format!("{at}.keep[{i}]"), p);
        }
        for (s, p) in &r.state {
            c.predicate_values(&format!("{at}.state.{s}"), p, Place::Act { child });
            if !is_snake(s) {
                c.push(
                    format!("{at}.state.{s}"),
                    "expected a snake_case state name",
                );
            }
            c.predicate(&format!("{at}.state.{s}"), p);
        }
        let aplace = Place::Act { child };
        if let Some(rd) = &r.read {
            let used = c.request(
                &format!("{at}.read"),
                &rd.as_request(),
                aplace,
                READ_METHODS,
            );
            if !used.contains("item.id") {
                c.push(
                    format!("{at}.read.path"),
                    "expected the read to name the item by {{item.id}} (its immutable id)",
                );
            }
            c.jsonpath(&format!("{at}.read.item"), &rd.item);
            c.statuses(&format!("{at}.read.gone"), &rd.gone);
        }
        let mut names = BTreeSet::new();
        for (i, a) in r.actions.iter().enumerate() {
            let aat = format!("{at}.actions[{i}]");
            if !is_snake(&a.name) {
                c.push(format!("{aat}.name"), "expected a snake_case action name");
            }
            if !names.insert(a.name.clone()) {
                c.push(
                    format!("{aat}.name"),
                    format!(
                        "expected a name unique in the resource, found {:?} twice",
                        a.name
                    ),
                );
            }
            let Some(ph) = phase(&a.phase) else {
                c.push(
                    format!("{aat}.phase"),
                    format!(
                        "expected one of contain, transfer, revoke, delete, manual, found {:?}",
                        a.phase
                    ),
                );
                continue;
            };
            if let Some(s) = &a.summary {
                c.template(&format!("{aat}.summary"), s, aplace);
            }
            for (j, dep) in a.after.iter().enumerate() {
                let full = if dep.contains('.') {
                    dep.clone()
                } else {
                    format!("{rn}.{dep}")
                };
                match all_actions.get(&full) {
                    None => c.push(
                        format!("{aat}.after[{j}]"),
                        format!("expected an action name (\"name\" or \"resource.name\"), found {dep:?}"),
                    ),
                    Some(Phase::Manual) => c.push(
                        format!("{aat}.after[{j}]"),
                        "expected no action to wait for a manual step (a person's step never blocks the connector's actions)",
                    ),
                    Some(p) if phase_rank(*p) > phase_rank(ph) => c.push(
                        format!("{aat}.after[{j}]"),
                        format!(
                            "expected an action of this phase or an earlier one, found {dep:?} of phase {}",
                            p.as_str()
                        ),
                    ),
                    Some(_) if full == format!("{rn}.{}", a.name) => {
                        c.push(format!("{aat}.after[{j}]"), "expected no action to wait for itself")
                    }
                    Some(_) => {}
                }
            }
            if let Some(u) = &a.unless {
                if !r.state.contains_key(u) {
                    c.push(
                        format!("{aat}.unless"),
                        format!("expected the name of a state of the resource, found {u:?}"),
                    );
                }
            }
            if ph == Phase::Manual {
                if a.request.is_some()
                    || !a.outcomes.is_empty()
                    || a.verify.is_some()
                    || a.before.is_some()
                {
                    c.push(
                        aat.clone(),
                        "expected a manual step (a person's) without request, before, outcomes or verify",
                    );
                }
                if a.summary.is_none() {
                    c.push(format!("{aat}.summary"), "expected what the person must do");
                }
                continue;
            }
            let Some(req) = &a.request else {
                c.push(
                    format!("{aat}.request"),
                    "expected the request that does the action",
                );
                continue;
            };
            if let Some(b) = &a.before {
                c.before(&format!("{aat}.before"), b, aplace);
            }
            let used = c.request(&format!("{aat}.request"), req, aplace, WRITE_METHODS);
            if !used.contains("item.id") && r.read.is_none() {
                c.push(
                    format!("{aat}.request"),
                    "expected the request to name the item by {{item.id}} (its immutable id) in its path, query or body, or the resource to have a read by id (whose fresh answer then gives the item's other fields)",
                );
            }
            if a.outcomes.is_empty() {
                c.push(
                    format!("{aat}.outcomes"),
                    "expected the rules that classify the answers (at least one with result = \"done\")",
                );
            }
            let mut has_done = false;
            for (j, o) in a.outcomes.iter().enumerate() {
                let oat = format!("{aat}.outcomes[{j}]");
                if let Some(s) = &o.status {
                    c.statuses(&format!("{oat}.status"), s);
                }
                for (k, p) in o.body.iter().enumerate() {
                    c.predicate(&format!("{oat}.body[{k}]"), p);
                    c.predicate_values(&format!("{oat}.body[{k}]"), p, aplace);
                }
                match Result_::parse(&o.result) {
                    None => c.push(
                        format!("{oat}.result"),
                        format!(
                            "expected one of {}, found {:?}",
                            RESULTS.join(", "),
                            o.result
                        ),
                    ),
                    Some(Result_::Done) => has_done = true,
                    Some(_) => {}
                }
                if let Some(code) = &o.code {
                    if !is_snake(code) {
                        c.push(format!("{oat}.code"), "expected a snake_case code");
                    }
                }
                if o.status.is_none() && o.body.is_empty() {
                    c.push(
                        oat.clone(),
                        "expected a status list or body predicates (a rule matching every answer would hide the unexpected ones)",
                    );
                }
            }
            if !a.outcomes.is_empty() && !has_done {
                c.push(
                    format!("{aat}.outcomes"),
                    "expected a rule with result = \"done\"",
                );
            }
            match &a.verify {
                None => c.push(
                    format!("{aat}.verify"),
                    "expected how the action's effect is read back (verify.confirmed, with verify.request or the resource's read)",
                ),
                Some(v) => {
                    match &v.request {
                        Some(vr) => {
                            c.request(&format!("{aat}.verify.request"), vr, aplace, READ_METHODS);
                        }
                        None if r.read.is_none() => c.push(
                            format!("{aat}.verify.request"),
                            "expected a request (the resource has no read)",
                        ),
                        None => {}
                    }
                    if v.confirmed.is_empty() {
                        c.push(format!("{aat}.verify.confirmed"), "expected at least one rule");
                    }
                    for (j, s) in v.confirmed.iter().enumerate() {
                        let sat = format!("{aat}.verify.confirmed[{j}]");
                        if let Some(st) = &s.status {
                            c.statuses(&format!("{sat}.status"), st);
                        }
                        for (k, p) in s.body.iter().enumerate() {
                            c.predicate(&format!("{sat}.body[{k}]"), p);
                            c.predicate_values(&format!("{sat}.body[{k}]"), p, aplace);
                        }
                        if s.status.is_none() && s.body.is_empty() {
                            c.push(sat, "expected a status list or body predicates");
                        }
                    }
                }
            }
        }
    }
    let _ = c.def;
    c.issues
}

/// The item fields (`item.<x>`) and parent fields (`parent.<x>`) the templates of a resource
/// use: discovery captures them so plans carry them to apply.
pub fn captured_fields(r: &Resource) -> Captured {
    let mut texts: Vec<String> = Vec::new();
    let req = |q: &RequestDef, texts: &mut Vec<String>| {
        texts.push(q.path.clone());
        texts.extend(q.query.values().cloned());
        texts.extend(q.headers.values().cloned());
        if let Some(j) = &q.json {
            let mut s = Vec::new();
            json_strings(j, "json", &mut s);
            texts.extend(s.into_iter().map(|(_, t)| t));
        }
        if let Some(f) = &q.form {
            texts.extend(f.values().cloned());
        }
    };
    if let Some(rd) = &r.read {
        req(&rd.as_request(), &mut texts);
    }
    for p in r.state.values() {
        let mut s = Vec::new();
        for v in [&p.equals, &p.not_equals].into_iter().flatten() {
            json_strings(v, "", &mut s);
        }
        for l in [&p.one_of, &p.all_in].into_iter().flatten() {
            json_strings(&Value::Array(l.clone()), "", &mut s);
        }
        texts.extend(s.into_iter().map(|(_, t)| t));
    }
    for a in &r.actions {
        if let Some(s) = &a.summary {
            texts.push(s.clone());
        }
        if let Some(q) = &a.request {
            req(q, &mut texts);
        }
        if let Some(q) = a.verify.as_ref().and_then(|v| v.request.as_ref()) {
            req(q, &mut texts);
        }
        if let Some(b) = &a.before {
            req(&b.as_discover().as_request(), &mut texts);
        }
        let preds = a
            .outcomes
            .iter()
            .flat_map(|o| o.body.iter())
            .chain(
                a.verify
                    .iter()
                    .flat_map(|v| v.confirmed.iter().flat_map(|c| c.body.iter())),
            )
            .chain(
                a.before
                    .iter()
                    .flat_map(|b| b.present.iter().chain(b.refuse.iter())),
            );
        for p in preds {
            let mut s = Vec::new();
            for v in [&p.equals, &p.not_equals].into_iter().flatten() {
                json_strings(v, "", &mut s);
            }
            for l in [&p.one_of, &p.all_in].into_iter().flatten() {
                json_strings(&Value::Array(l.clone()), "", &mut s);
            }
            texts.extend(s.into_iter().map(|(_, t)| t));
        }
    }
    let mut out = Captured::default();
    for t in texts {
        if let Ok(t) = Template::parse(&t) {
            for v in t.vars() {
                match v {
                    Var::Item(f) if f != "id" => {
                        out.items.insert(f.clone());
                    }
                    Var::Parent(f) if f != "id" => {
                        out.parents.insert(f.clone());
                    }
                    Var::Subject(f) => {
                        out.subject.insert(f.clone());
                    }
                    Var::Vars(n) => {
                        out.vars.insert(n.clone());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// What the templates of a resource's actions read from the item, its parent and the subject.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub items: BTreeSet<String>,
    pub parents: BTreeSet<String>,
    pub subject: BTreeSet<String>,
    /// The instance variables (`vars.<name>`) the actions name: recorded in each finding, so
    /// the plan says the value it was made with.
    pub vars: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../tests/fixtures/scim.toml");

    /// The example as an instance table: its auth through a secret already read by the config
    /// layer (`client_secret_file` becomes `client_secret`).
    fn example() -> Value {
        let mut v = parse_toml(EXAMPLE).expect("a value");
        let auth = v["auth"].as_object_mut().expect("a value");
        auth.remove("client_secret_file");
        auth.insert("client_secret".into(), json!("s3cret"));
        v["kind"] = json!("http");
        v
    }

    fn issues(v: &Value) -> Vec<String> {
        match validate("connectors.x", v) {
            Ok(()) => vec![],
            Err(i) => i.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        assert_eq!(issues(&example()), Vec::<String>::new());
        let d = Definition::from_value(&example()).expect("a value");
        assert_eq!(d.resource_order(), vec!["user"]);
        let c = captured_fields(&d.resources["user"]);
        assert!(c.items.contains("userName"), "{c:?}");
    }

    #[test]
    fn a_definition_file_holds_no_secret() {
        let v = example();
        let found = check_file_secrets("f", &v);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "f.auth.client_secret");
        assert!(check_file_secrets("f", &parse_toml(EXAMPLE).expect("a value")).is_empty());
    }

    #[test]
    fn every_semantic_problem_is_named_by_its_field_path() {
        let mut v = example();
        v["resources"]["user"]["actions"][1]["request"]["json"] =
            json!({"x": "x{{item.userName | number}}"});
        v["resources"]["user"]["actions"][1]["summary"] = json!("{{item.id | bool}}");
        v["resources"]["user"]
            .as_object_mut()
            .expect("table")
            .remove("read");
        v["base_url"] = json!("ftp://x");
        let a = &mut v["resources"]["user"]["actions"];
        a[0]["phase"] = json!("later");
        a[1]["after"] = json!(["nothing"]);
        a[1]["outcomes"][0]["result"] = json!("fine");
        a[1]["request"]["path"] = json!("/Users/{{subject.username}}?x=1");
        v["resources"]["user"]["match"][0]["equals"] = json!("alice");
        v["resources"]["user"]["discover"][0]["items"] = json!("$..id");
        let got = issues(&v);
        let has = |p: &str| got.iter().any(|i| i.starts_with(&format!("{p}: ")));
        for p in [
            "connectors.x.base_url",
            "connectors.x.resources.user.actions[1].request.json.x",
            "connectors.x.resources.user.actions[1].summary",
            "connectors.x.resources.user.actions[0].phase",
            "connectors.x.resources.user.actions[1].after[0]",
            "connectors.x.resources.user.actions[1].outcomes[0].result",
            "connectors.x.resources.user.actions[1].request.path",
            "connectors.x.resources.user.actions[1].request",
            "connectors.x.resources.user.match[0].equals",
            "connectors.x.resources.user.discover[0].items",
        ] {
            assert!(has(p), "no issue at {p} in {got:#?}");
        }
    }

    #[test]
    fn structural_problems_name_their_field() {
        let mut v = example();
        v["resources"]["user"]["actions"][0]["outcomes"][0]["statuses"] = json!([200]);
        let got = issues(&v);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("connectors.x.resources.user.actions[0].outcomes[0]"),
            "{got:?}"
        );
        // Several at once, each by its path.
        let mut v = example();
        v["resources"]["user"]["actions"][0]["phasee"] = json!("contain");
        v["resources"]["user"]["actions"][1]["request"]["methd"] = json!("DELETE");
        v["resources"]["user"]["discover"][1]["itemz"] = json!("$");
        v["resources"]["user"]["idd"] = json!("$.id");
        v["timeout"] = json!(3);
        v["auth"]["client_idd"] = json!("x");
        let got = issues(&v);
        // One per part: the top level (serde stops at its first: `idd` before `timeout`),
        // auth, each discovery request, each action.
        for p in [
            "connectors.x.resources.user.idd: unknown field `idd`",
            "connectors.x.auth: unknown field `client_idd`",
            "connectors.x.resources.user.discover[1].itemz: unknown field `itemz`",
            "connectors.x.resources.user.actions[0].phasee: unknown field `phasee`",
            "connectors.x.resources.user.actions[1].request.methd: unknown field `methd`",
        ] {
            assert!(got.iter().any(|g| g.starts_with(p)), "no {p:?} in {got:#?}");
        }
        let mut v = example();
        v["auth"] = json!({"type": "kerberos"});
        assert!(
            issues(&v)[0].starts_with("connectors.x.auth"),
            "{:?}",
            issues(&v)
        );
    }

    #[test]
    fn writes_must_name_the_pinned_id_and_reads_may_not_write() {
        let mut v = example();
        // Without a read by id, a write must name the item by its id.
        v["resources"]["user"]
            .as_object_mut()
            .expect("table")
            .remove("read");
        v["resources"]["user"]["actions"][1]["request"]["path"] = json!("/Users/{{item.userName}}");
        v["resources"]["user"]["discover"][0]["method"] = json!("DELETE");
        v["resources"]["user"]["actions"][0]["summary"] = json!("{{parent.id}}");
        let got = issues(&v);
        assert!(got.iter().any(|i| i.starts_with("connectors.x.resources.user.actions[1].request: expected the request to name the item by {{item.id}}")), "{got:#?}");
        assert!(
            got.iter()
                .any(|i| i.starts_with("connectors.x.resources.user.discover[0].method")),
            "{got:#?}"
        );
        assert!(
            got.iter()
                .any(|i| i.starts_with("connectors.x.resources.user.actions[0].summary")),
            "{got:#?}"
        );
    }

    #[test]
    fn an_unknown_recipe_is_named_and_a_header_cannot_carry_credentials() {
        let got = issues(&json!({"recipe": "nope"}));
        assert!(
            got[0].starts_with("connectors.x.recipe: expected one of the shipped recipes"),
            "{got:?}"
        );
        let mut v = example();
        v["headers"] = json!({"Authorization": "Bearer x"});
        assert!(issues(&v)
            .iter()
            .any(|i| i.starts_with("connectors.x.headers.Authorization")));
    }

    #[test]
    fn every_shipped_recipe_parses() {
        for name in recipe_names() {
            let v = parse_toml(recipe_text(name).expect("a value"))
                .unwrap_or_else(|e| panic!("recipe {name}: {e}"));
            assert!(
                check_file_secrets(name, &v).is_empty(),
                "recipe {name} holds a secret"
            );
        }
    }
}
