//! Apply and verify. Every action reads its object first and writes only conditionally, so a
//! retried or resumed attempt needs no journal: the read says whether the effect holds.
//!
//! A binding action (`delete_binding`, `remove_subject`) is pinned twice: to the person's
//! username (the account, checked against the `username` parameter) and to the binding's `uid`.
//!
//! Its **first attempt writes without reading** (the journal holds nothing and says attempt 1;
//! `blind_write` is recorded before the write is sent, so a resumed or retried attempt never
//! writes blind again): `delete_binding` sends `DELETE` with preconditions {the pinned uid, the
//! resourceVersion discovery read}; `remove_subject` sends a JSON Patch
//! (`application/json-patch+json`) `test /metadata/uid`, `test /subjects/<i>` (the leaver's
//! subject as discovery read it, at each index it stood) and `remove /subjects/<i>` (highest
//! index first). The API server applies a JSON Patch to the object as stored now and all of it
//! or nothing, so it needs no resourceVersion: a write in between that leaves the leaver where
//! they were (a label, a subject appended) is no conflict, and one that moved them fails a
//! `test` (422) and changes nothing. A 404 is `AlreadyDone`; a 409 or 422 is the retryable
//! `stale_plan`, and the next attempt takes the read-then-write path below. One call instead of
//! two for every binding untouched since the plan. A 429 to the blind write (API Priority and
//! Fairness rejects before handling anything) is recorded as such, and the next attempt may
//! write blind again.
//!
//! Later attempts read first:
//! - The binding gone (404): `AlreadyDone`, the pinned binding grants nothing any more.
//! - A binding of that name with another uid (deleted and re-created after the plan): the
//!   permanent `identity_changed`, nothing sent; plan again to act on the new one.
//! - The leaver no longer among its subjects: `AlreadyDone`.
//! - The leaver its only subject (still, or since): `DELETE` with a `DeleteOptions` whose
//!   `preconditions` are the pinned uid and the resourceVersion just read; a 409 (someone wrote
//!   in between) is retried by the executor, whose next attempt reads again.
//! - Others among its subjects (still, or added since a `delete_binding` was planned): `PUT` of
//!   the binding as read, without the leaver's subjects, with `metadata.resourceVersion` as
//!   read (a concurrent write is a 409 and the next attempt reads again). The body is the JSON
//!   the server sent with only `subjects` changed, so fields this build's types do not know are
//!   kept. The PUT always carries the resourceVersion: without it a binding deleted meanwhile
//!   would be re-created (RBAC allows create on update).
//!
//! `delete_token_secret` reads the Secret's metadata only, checks its uid and that its
//! `kubernetes.io/service-account.uid` is still the pinned ServiceAccount's, and deletes it with
//! uid and resourceVersion preconditions.
//!
//! The leaver's ServiceAccounts (`service_account_policy`), each pinned to the ServiceAccount's
//! uid and to the owner annotation value discovery read:
//! - `delete_service_account`: gone is `AlreadyDone`; another uid is `identity_changed`; an
//!   owner annotation that no longer names the leaver (handed over since the plan) is the
//!   conflict `owner_changed`; nothing is sent in either case. Else `DELETE` with uid and
//!   resourceVersion preconditions.
//! - `unbind_service_account` (after the delete): the ServiceAccount must be gone (still there
//!   under the pinned uid: retryable; re-created under another uid: `identity_changed`, nothing
//!   sent, the new ServiceAccount's bindings are its own). Then the binding is read and pinned
//!   by uid like a user's: its ServiceAccount subjects removed by a `PUT` on the resourceVersion
//!   read, or the binding deleted with preconditions when that ServiceAccount is all it names.
//! - `reown_service_account`: the owner annotation already `reown_to` is `AlreadyDone`; naming
//!   someone else than the leaver, `owner_changed`; else a `PUT` of the ServiceAccount as read
//!   with only that annotation changed, on the resourceVersion and uid read.
//!
//! The action key is logged at debug level: the API takes no idempotency key.

use k8s_openapi::api::rbac::v1::Subject as RbacSubject;
use reqwest::Method;
use revoke_core::{Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::debug;

use crate::classify;
use crate::client::{Client, METADATA};
use crate::config::KubernetesConfig;
use crate::discover::{
    binding_path, parse_binding, secret_path, service_account_path, Binding, SA_UID_ANNOTATION,
};
use crate::plan::{
    DELETE_BINDING, DELETE_SERVICE_ACCOUNT, DELETE_TOKEN_SECRET, REMOVE_SUBJECT,
    REOWN_SERVICE_ACCOUNT, UNBIND_SERVICE_ACCOUNT,
};

#[derive(Debug)]
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub instance: &'a str,
    pub cfg: &'a KubernetesConfig,
}

/// An action kind this build does not know: a newer replica may have planned it (retryable, the
/// executor's budget ends it).
fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::unknown_action(format!("the kubernetes connector has no action {kind:?}"))
}

fn bad(action: &Action, what: &str) -> ConnectorError {
    ConnectorError::permanent(
        "bad_action",
        format!("{} {}: {what}", action.kind, action.target),
    )
}

/// A Kubernetes object name (a DNS subdomain or a path segment name): no `/`, no `..`.
fn name_param<'a>(action: &'a Action, p: &str) -> Result<&'a str, ConnectorError> {
    let v = action.param(p)?;
    if v.len() > 253 || v.contains('/') || v == "." || v == ".." || v.contains('%') {
        return Err(bad(
            action,
            &format!("expected an object name in {p}, found {v:?}"),
        ));
    }
    Ok(v)
}

/// The binding an action names: (namespace, name, pinned uid, username).
fn binding_params(action: &Action) -> Result<(Option<&str>, &str, &str, &str), ConnectorError> {
    let pin = action.pinned()?;
    let username = action.param("username")?;
    if pin.id != username {
        return Err(bad(
            action,
            &format!(
                "expected username to be the pinned {} {}, found {username:?}",
                pin.id_kind, pin.id
            ),
        ));
    }
    let ns = scope_param(action)?;
    Ok((
        ns,
        name_param(action, "name")?,
        action.param("uid")?,
        username,
    ))
}

/// A binding's namespace (`None` for a ClusterRoleBinding) from `scope` and `namespace`.
fn scope_param(action: &Action) -> Result<Option<&str>, ConnectorError> {
    match action.param("scope")? {
        "cluster" => Ok(None),
        "namespace" => Ok(Some(name_param(action, "namespace")?)),
        other => Err(bad(
            action,
            &format!("expected scope cluster or namespace, found {other:?}"),
        )),
    }
}

/// A parameter that must be the pinned account's id (the ServiceAccount's uid).
fn pinned_param<'a>(action: &'a Action, p: &str) -> Result<&'a str, ConnectorError> {
    let pin = action.pinned()?;
    let v = action.param(p)?;
    if pin.id != v {
        return Err(bad(
            action,
            &format!(
                "expected {p} to be the pinned {} {}, found {v:?}",
                pin.id_kind, pin.id
            ),
        ));
    }
    Ok(v)
}

/// The binding as it is now (its JSON too), or `None` when it is gone.
async fn read_binding(
    client: &Client,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<(Binding, Value)>, ConnectorError> {
    let path = binding_path(ns, name);
    let Some(v) = client.get(&path, "application/json").await? else {
        return Ok(None);
    };
    let b = parse_binding(&v, ns.is_none(), &path)?;
    Ok(Some((b, v)))
}

fn replaced(target: &str, planned: &str, now: &str) -> ConnectorError {
    ConnectorError::permanent(
        "identity_changed",
        format!(
            "{target} was planned as uid {planned}, but that name is now uid {now} (deleted and re-created after the plan); nothing was sent (plan again to act on the binding as it is now)"
        ),
    )
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    debug!(connector = ctx.instance, action_id = %action.id, key = %key, attempt = journal.attempt(), kind = %action.kind, target = %action.target, "applying");
    match action.kind.0.as_str() {
        DELETE_BINDING | REMOVE_SUBJECT => {
            // Blind on a first attempt, or after a blind write the server refused with 429
            // (API Priority and Fairness rejects before the request is handled: nothing was
            // done, and the answer came back, so the plan's view still stands).
            let last = journal.latest(BLIND_WRITE).await?;
            let blind = action.params.contains_key("resource_version")
                && match last.as_deref() {
                    None => journal.attempt() == 1,
                    Some(v) => v == REFUSED_429,
                };
            if blind {
                blind_unbind(ctx.client, action, journal).await
            } else {
                unbind(ctx.client, action).await
            }
        }
        DELETE_TOKEN_SECRET => delete_token_secret(ctx.client, action).await,
        DELETE_SERVICE_ACCOUNT | REOWN_SERVICE_ACCOUNT => service_account(ctx, action).await,
        UNBIND_SERVICE_ACCOUNT => unbind_service_account(ctx.client, action).await,
        other => Err(unknown(other)),
    }
}

/// The journal entry written before a write sent without reading first.
pub const BLIND_WRITE: &str = "blind_write";
/// Its value once the server answered that write 429 (not handled: it may be sent blind again).
pub const REFUSED_429: &str = "refused 429";

/// The leaver's (index, subject JSON) in the binding as discovery read it.
fn planned_subjects(action: &Action) -> Result<Vec<(usize, Value)>, ConnectorError> {
    let indices: Vec<usize> = action
        .param("subject_indices")?
        .split(',')
        .map(|i| i.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(action, "expected subject_indices such as \"0,2\""))?;
    let subjects: Vec<Value> = serde_json::from_str(action.param("subjects")?)
        .map_err(|_| bad(action, "expected subjects as a json list"))?;
    if indices.is_empty() || indices.len() != subjects.len() {
        return Err(bad(
            action,
            "expected one subject for each of subject_indices",
        ));
    }
    let mut at: Vec<(usize, Value)> = indices.into_iter().zip(subjects).collect();
    at.sort_by_key(|a| std::cmp::Reverse(a.0));
    Ok(at)
}

/// The first attempt: one conditional write from what discovery read, no read first.
async fn blind_unbind(
    client: &Client,
    action: &Action,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let (ns, name, uid, _) = binding_params(action)?;
    let rv = action.param("resource_version")?;
    let path = binding_path(ns, name);
    let (method, body, content_type) = if action.kind.0 == DELETE_BINDING {
        let opts = json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid, "resourceVersion": rv}
        });
        (Method::DELETE, opts, "application/json")
    } else {
        let at = planned_subjects(action)?;
        let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": uid})];
        for (i, s) in &at {
            ops.push(json!({"op": "test", "path": format!("/subjects/{i}"), "value": s}));
        }
        for (i, _) in &at {
            ops.push(json!({"op": "remove", "path": format!("/subjects/{i}")}));
        }
        (
            Method::PATCH,
            Value::Array(ops),
            "application/json-patch+json",
        )
    };
    journal
        .record(BLIND_WRITE, &format!("{method} {path}"))
        .await?;
    let r = client
        .send_as(
            method.clone(),
            &path,
            Some(&body),
            "application/json",
            content_type,
        )
        .await?;
    match (r.status, classify::KubeAnswer::reason(&r).as_deref()) {
        (200..=299, _) => Ok(Outcome::Done),
        // The pinned binding is gone (a DELETE precondition is checked on an object that exists).
        (404, _) => Ok(Outcome::AlreadyDone),
        (429, _) => {
            journal.record(BLIND_WRITE, REFUSED_429).await?;
            Err(classify::status(&method, &path, &r))
        }
        (409, Some("Conflict")) | (422, Some("Invalid")) => Err(ConnectorError::retryable(
            "stale_plan",
            format!(
                "{method} {path}: {} {}: the binding changed since the plan; the next attempt reads it first",
                r.status,
                classify::message(&r.body)
            ),
        )),
        _ => Err(classify::status(&method, &path, &r)),
    }
}

async fn unbind(client: &Client, action: &Action) -> Result<Outcome, ConnectorError> {
    let (ns, name, uid, username) = binding_params(action)?;
    let Some((b, raw)) = read_binding(client, ns, name).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if b.uid != uid {
        return Err(replaced(&action.target, uid, &b.uid));
    }
    if !b.names_user(username) {
        return Ok(Outcome::AlreadyDone);
    }
    let planned_delete = action.kind.0.as_str() == DELETE_BINDING;
    write_without(
        client,
        ns,
        name,
        &b,
        raw,
        planned_delete && b.only_user(username),
        |s| Binding::is_user(s, username),
    )
    .await
}

/// Deletes the binding (`delete`, with uid and resourceVersion preconditions) or puts it back
/// without the subjects `gone` picks, on the resourceVersion and uid read.
async fn write_without(
    client: &Client,
    ns: Option<&str>,
    name: &str,
    b: &Binding,
    raw: Value,
    delete: bool,
    gone: impl Fn(&RbacSubject) -> bool,
) -> Result<Outcome, ConnectorError> {
    let path = binding_path(ns, name);
    let (method, body) = if delete {
        let opts = json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": b.uid, "resourceVersion": b.resource_version}
        });
        (Method::DELETE, opts)
    } else {
        let mut v = raw;
        let kept: Vec<Value> = v
            .get("subjects")
            .and_then(Value::as_array)
            .map(|subs| {
                subs.iter()
                    .filter(|s| {
                        !serde_json::from_value::<RbacSubject>((*s).clone()).is_ok_and(|s| gone(&s))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v["subjects"] = Value::Array(kept);
        // The version and the uid as read: the server refuses the write if either moved.
        v["metadata"]["resourceVersion"] = Value::String(b.resource_version.clone());
        v["metadata"]["uid"] = Value::String(b.uid.clone());
        (Method::PUT, v)
    };
    let r = client
        .send(method.clone(), &path, Some(&body), "application/json")
        .await?;
    match r.status {
        200..=299 => Ok(Outcome::Done),
        // Deleted between our read and our DELETE: the pinned binding is gone.
        404 if method == Method::DELETE => Ok(Outcome::AlreadyDone),
        // Deleted between our read and our PUT: the next attempt reads it gone.
        404 => Err(ConnectorError::retryable(
            "gone_meanwhile",
            format!("PUT {path}: the binding was deleted after it was read"),
        )),
        _ => Err(classify::status(&method, &path, &r)),
    }
}

/// A ServiceAccount's JSON (it holds no secret), or `None` when it is gone.
async fn read_service_account(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, Value)>, ConnectorError> {
    let path = service_account_path(ns, name);
    let Some(v) = client.get(&path, "application/json").await? else {
        return Ok(None);
    };
    let uid = v
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected metadata.uid"))?
        .to_string();
    Ok(Some((uid, v)))
}

fn owner_annotation<'a>(ctx: &'a Ctx<'_>, action: &Action) -> Result<&'a str, ConnectorError> {
    ctx.cfg.owner_annotation.as_deref().ok_or_else(|| {
        bad(
            action,
            "expected owner_annotation in the connector's config, found none",
        )
    })
}

/// `delete_service_account` and `reown_service_account`.
async fn service_account(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let uid = pinned_param(action, "uid")?;
    let (ns, name) = (
        name_param(action, "namespace")?,
        name_param(action, "name")?,
    );
    let owner = action.param("owner")?;
    let ann = owner_annotation(ctx, action)?;
    let reown_to = if action.kind.0 == REOWN_SERVICE_ACCOUNT {
        Some(action.param("reown_to")?)
    } else {
        None
    };
    let Some((now_uid, mut v)) = read_service_account(ctx.client, ns, name).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if now_uid != uid {
        return Err(replaced(&action.target, uid, &now_uid));
    }
    let now_owner = v
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ann))
        .and_then(Value::as_str)
        .map(str::to_string);
    if reown_to.is_some() && now_owner.as_deref() == reown_to {
        return Ok(Outcome::AlreadyDone);
    }
    if now_owner.as_deref() != Some(owner) {
        return Err(ConnectorError::conflict(
            "owner_changed",
            format!(
                "{} was planned as owned by {owner:?}, but its {ann} now says {now_owner:?}; nothing was sent (plan again)",
                action.target
            ),
        ));
    }
    let rv = v
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let path = service_account_path(ns, name);
    let (method, body) = match reown_to {
        None => (
            Method::DELETE,
            json!({
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "preconditions": {"uid": uid, "resourceVersion": rv}
            }),
        ),
        Some(to) => {
            v["metadata"]["annotations"][ann] = Value::String(to.to_string());
            v["metadata"]["resourceVersion"] = Value::String(rv);
            v["metadata"]["uid"] = Value::String(uid.to_string());
            (Method::PUT, v)
        }
    };
    let r = ctx
        .client
        .send(method.clone(), &path, Some(&body), "application/json")
        .await?;
    match r.status {
        200..=299 => Ok(Outcome::Done),
        404 if method == Method::DELETE => Ok(Outcome::AlreadyDone),
        404 => Err(ConnectorError::retryable(
            "gone_meanwhile",
            format!("PUT {path}: the ServiceAccount was deleted after it was read"),
        )),
        _ => Err(classify::status(&method, &path, &r)),
    }
}

/// `unbind_service_account`: (binding namespace, name, uid, ServiceAccount ns, name, uid).
type UnbindParams<'a> = (Option<&'a str>, &'a str, &'a str, &'a str, &'a str, &'a str);

fn unbind_params(action: &Action) -> Result<UnbindParams<'_>, ConnectorError> {
    Ok((
        scope_param(action)?,
        name_param(action, "name")?,
        action.param("uid")?,
        name_param(action, "service_account_namespace")?,
        name_param(action, "service_account")?,
        pinned_param(action, "service_account_uid")?,
    ))
}

async fn unbind_service_account(
    client: &Client,
    action: &Action,
) -> Result<Outcome, ConnectorError> {
    let (ns, name, uid, sa_ns, sa, sa_uid) = unbind_params(action)?;
    match read_service_account(client, sa_ns, sa).await? {
        Some((now, _)) if now == sa_uid => {
            return Err(ConnectorError::retryable(
                "service_account_exists",
                format!("ServiceAccount {sa_ns}/{sa} (uid {sa_uid}) is not deleted yet; its subjects are removed once it is"),
            ))
        }
        Some((now, _)) => {
            return Err(ConnectorError::permanent(
                "identity_changed",
                format!("ServiceAccount {sa_ns}/{sa} was planned as uid {sa_uid}, but that name is now uid {now} (re-created after the plan): {} binds the new one, so nothing was sent", action.target),
            ))
        }
        None => {}
    }
    let Some((b, raw)) = read_binding(client, ns, name).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if b.uid != uid {
        return Err(replaced(&action.target, uid, &b.uid));
    }
    if !b.names_service_account(sa_ns, sa) {
        return Ok(Outcome::AlreadyDone);
    }
    let only = b
        .subjects
        .iter()
        .all(|s| Binding::is_service_account(s, sa_ns, sa));
    write_without(client, ns, name, &b, raw, only, |s| {
        Binding::is_service_account(s, sa_ns, sa)
    })
    .await
}

/// The token Secret an action names: (namespace, name, pinned uid, pinned ServiceAccount uid).
fn secret_params(action: &Action) -> Result<(&str, &str, &str, &str), ConnectorError> {
    let pin = action.pinned()?;
    let sa_uid = action.param("service_account_uid")?;
    if pin.id != sa_uid {
        return Err(bad(
            action,
            &format!(
                "expected service_account_uid to be the pinned {} {}, found {sa_uid:?}",
                pin.id_kind, pin.id
            ),
        ));
    }
    Ok((
        name_param(action, "namespace")?,
        name_param(action, "name")?,
        action.param("uid")?,
        sa_uid,
    ))
}

/// The Secret's (uid, resourceVersion, ServiceAccount uid annotation), or `None` when gone.
async fn read_secret(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, String, String)>, ConnectorError> {
    let path = secret_path(ns, name);
    let Some(v) = client.get(&path, METADATA).await? else {
        return Ok(None);
    };
    let m = v.get("metadata").cloned().unwrap_or(Value::Null);
    let s = |p: &str| {
        m.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let sa = m
        .get("annotations")
        .and_then(|a| a.get(SA_UID_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let uid = s("/uid");
    if uid.is_empty() {
        return Err(classify::bad_response(
            &Method::GET,
            &path,
            "expected metadata.uid",
        ));
    }
    Ok(Some((uid, s("/resourceVersion"), sa)))
}

async fn delete_token_secret(client: &Client, action: &Action) -> Result<Outcome, ConnectorError> {
    let (ns, name, uid, sa_uid) = secret_params(action)?;
    let Some((now_uid, rv, now_sa)) = read_secret(client, ns, name).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if now_uid != uid {
        return Err(ConnectorError::permanent(
            "identity_changed",
            format!("{} was planned as uid {uid}, but that name is now uid {now_uid}; nothing was sent (plan again)", action.target),
        ));
    }
    if now_sa != sa_uid {
        return Err(ConnectorError::permanent(
            "identity_changed",
            format!("{} was planned as a token of ServiceAccount uid {sa_uid}, but now names {now_sa:?}; nothing was sent (plan again)", action.target),
        ));
    }
    let path = secret_path(ns, name);
    let opts = json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"uid": uid, "resourceVersion": rv}
    });
    let r = client
        .send(Method::DELETE, &path, Some(&opts), "application/json")
        .await?;
    match r.status {
        200..=299 => Ok(Outcome::Done),
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::DELETE, &path, &r)),
    }
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    match action.kind.0.as_str() {
        DELETE_BINDING | REMOVE_SUBJECT => {
            let (ns, name, uid, username) = binding_params(action)?;
            Ok(match read_binding(ctx.client, ns, name).await? {
                None => Verdict::Confirmed,
                Some((b, _)) if b.uid != uid => Verdict::Confirmed,
                Some((b, _)) if b.names_user(username) => Verdict::NotConfirmed {
                    detail: format!("{} (uid {uid}) still names {username}", action.target),
                },
                Some(_) => Verdict::Confirmed,
            })
        }
        DELETE_SERVICE_ACCOUNT | REOWN_SERVICE_ACCOUNT => {
            let uid = pinned_param(action, "uid")?;
            let (ns, name) = (
                name_param(action, "namespace")?,
                name_param(action, "name")?,
            );
            let ann = owner_annotation(ctx, action)?;
            Ok(match read_service_account(ctx.client, ns, name).await? {
                Some((now, v)) if now == uid => {
                    let owner = v
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(ann))
                        .and_then(Value::as_str);
                    let to = action.params.get("reown_to").map(String::as_str);
                    if action.kind.0 == REOWN_SERVICE_ACCOUNT && owner.is_some() && owner == to {
                        Verdict::Confirmed
                    } else {
                        Verdict::NotConfirmed {
                            detail: format!(
                                "{} (uid {uid}) still exists, owned by {owner:?}",
                                action.target
                            ),
                        }
                    }
                }
                _ => Verdict::Confirmed,
            })
        }
        UNBIND_SERVICE_ACCOUNT => {
            let (ns, name, uid, sa_ns, sa, _) = unbind_params(action)?;
            Ok(match read_binding(ctx.client, ns, name).await? {
                Some((b, _)) if b.uid == uid && b.names_service_account(sa_ns, sa) => {
                    Verdict::NotConfirmed {
                        detail: format!(
                            "{} (uid {uid}) still names ServiceAccount {sa_ns}/{sa}",
                            action.target
                        ),
                    }
                }
                _ => Verdict::Confirmed,
            })
        }
        DELETE_TOKEN_SECRET => {
            let (ns, name, uid, _) = secret_params(action)?;
            Ok(match read_secret(ctx.client, ns, name).await? {
                Some((now, _, _)) if now == uid => Verdict::NotConfirmed {
                    detail: format!("{} (uid {uid}) still exists", action.target),
                },
                _ => Verdict::Confirmed,
            })
        }
        other => Err(unknown(other)),
    }
}
