//! Apply and verify: the action's request rendered from its params, pinned to the item's id.
//!
//! Pinning. Every write names the item by `{{item.id}}` (validation refuses one that does not),
//! so it addresses the id discovery saw, never a name. When the resource has a `read` (read one
//! item by id), apply reads first, on every attempt:
//! - a `gone` status: the pinned item no longer exists, so its access is gone: `AlreadyDone`,
//!   nothing sent;
//! - an item whose id is not the pinned one: `identity_changed`, nothing sent;
//! - the action's `unless` state holds on the item as it is now: `AlreadyDone`, nothing sent.
//!
//! Without a `read`, the write is sent at once (to the pinned id) and only the outcome rules
//! say whether it was already done; a retried attempt cannot read first (the doc says so).
//!
//! The action's key goes in the definition's `idempotency_header` on the write, and is logged
//! either way.

use reqwest::Method;
use revoke_core::{Action, ActionKey, ConnectorError, Journal, Outcome, Phase, Verdict};
use serde_json::Value;
use tracing::{debug, info};

use crate::classify::{self, holds_with, status_rule_matches, Reply};
use crate::client::{render_request, Client, Rendered};
use crate::config::{ActionDef, BeforeDef, Definition, RequestDef, Resource};
use crate::discover::fetch_items;
use crate::jsonpath::{field, scalar_text, JsonPath};
use crate::plan::{P_ACTION, P_RESOURCE};
use crate::template::Var;

/// What apply and verify need.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub def: &'a Definition,
    pub instance: &'a str,
}

fn defs<'a>(
    def: &'a Definition,
    action: &Action,
) -> Result<(&'a Resource, &'a ActionDef), ConnectorError> {
    let p = |k: &str| action.params.get(k).map(String::as_str).unwrap_or("");
    let (rn, an) = (p(P_RESOURCE), p(P_ACTION));
    let r = def.resources.get(rn).ok_or_else(|| {
        ConnectorError::unknown_action(format!(
            "{}: the definition has no resource {rn:?} (it changed since the plan was made)",
            action.kind.0
        ))
    })?;
    let a = r.actions.iter().find(|a| a.name == an).ok_or_else(|| {
        ConnectorError::unknown_action(format!("{}: the definition has no action {an:?} on {rn:?} (it changed since the plan was made)", action.kind.0),
        )
    })?;
    Ok((r, a))
}

/// The value of a template variable for `action`.
fn value(action: &Action, key: Option<&ActionKey>, v: &Var) -> Option<String> {
    let p = |k: String| action.params.get(&k).cloned();
    match v {
        Var::Item(f) => {
            p(format!("item.{f}")).or_else(|| (f == "id").then(|| p("id".into())).flatten())
        }
        Var::Parent(f) => p(format!("parent.{f}")),
        Var::Subject(f) => p(format!("subject.{f}")),
        Var::AccountId => action
            .account
            .as_ref()
            .map(|a| a.id.clone())
            .or_else(|| p("account.id".into())),
        Var::ActionKey => key.map(|k| k.0.clone()),
        // The value the plan was made with (recorded in the finding).
        Var::Vars(n) => p(format!("vars.{n}")),
    }
}

fn rendered(
    action: &Action,
    key: Option<&ActionKey>,
    r: &RequestDef,
) -> Result<Rendered, ConnectorError> {
    render_request(r, &|v| value(action, key, v), &[]).map_err(|e| {
        ConnectorError::permanent(
            "bad_value",
            format!("{}: {e}; nothing was sent", action.kind.0),
        )
    })
}

/// The item as the resource's read answers it now.
enum Now {
    Gone,
    Item(Value),
}

async fn read_now(
    ctx: &Ctx<'_>,
    r: &Resource,
    action: &Action,
) -> Result<Option<Now>, ConnectorError> {
    let Some(rd) = &r.read else {
        return Ok(None);
    };
    let req = rendered(action, None, &rd.as_request())?;
    let reply = ctx.client.send(&req).await?;
    if rd.gone.contains(&reply.status) {
        return Ok(Some(Now::Gone));
    }
    if !reply.is_success() {
        return Err(classify::read_status(&Method::GET, req.path(), &reply));
    }
    let item = reply
        .json()
        .and_then(|b| {
            JsonPath::parse(&rd.item)
                .ok()
                .and_then(|p| p.first(&b).cloned())
        })
        .ok_or_else(|| {
            revoke_http::bad_response(&Method::GET, req.path(), "no item in the answer")
        })?;
    let pinned = action.params.get("id").cloned().unwrap_or_default();
    let now_id = JsonPath::parse(&r.id)
        .ok()
        .and_then(|p| p.first(&item).and_then(scalar_text));
    match now_id {
        Some(id) if id == pinned => Ok(Some(Now::Item(item))),
        Some(id) => Err(match &action.account {
            Some(pin) if pin.id == pinned => pin.changed(format!("{} {id}", r.id_kind)),
            _ => ConnectorError::permanent(
                "identity_changed",
                format!(
                    "{} was planned on {} {pinned}, but the read by id answers {} {id}; nothing was sent",
                    action.target, r.id_kind, r.id_kind
                ),
            ),
        }),
        None => Err(revoke_http::bad_response(
            &Method::GET,
            req.path(),
            &format!("the item read by id has no id at {}", r.id),
        )),
    }
}

/// The action's read before its write (every page): true when what the write removes is no
/// longer there; `identity_changed` when an item meets the `refuse` predicates. Templated
/// predicate values are the ones discovery captured (the invite id seen then).
async fn before_shows_done(
    ctx: &Ctx<'_>,
    action: &Action,
    b: &BeforeDef,
) -> Result<bool, ConnectorError> {
    let val = |v: &Var| value(action, None, v);
    let items = fetch_items(ctx.client, &b.as_discover(), &val)
        .await?
        .ok_or_else(|| {
            ConnectorError::permanent(
                "bad_value",
                format!(
                    "{}: a value the read before the write names is unknown; nothing was sent",
                    action.kind.0
                ),
            )
        })?;
    let all = |preds: &[crate::config::Predicate], item: &Value| {
        preds.iter().all(|p| holds_with(p, Some(item), &val))
    };
    if !b.refuse.is_empty() {
        if let Some(other) = items.iter().find(|i| all(&b.refuse, i)) {
            return Err(ConnectorError::permanent(
                "identity_changed",
                format!(
                    "{} was planned for {}, but the read before the write shows it is now someone else's ({}); nothing was sent",
                    action.target,
                    action
                        .account
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "the pinned account".into()),
                    classify::excerpt(&other.to_string())
                ),
            ));
        }
    }
    Ok(!items.iter().any(|i| all(&b.present, i)))
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let (r, a) = defs(ctx.def, action)?;
    if action.phase == Phase::Manual || a.request.is_none() {
        return Ok(Outcome::Skipped {
            reason: "a person's step: nothing is sent".into(),
        });
    }
    let mut fresh: Option<Value> = None;
    match read_now(ctx, r, action).await? {
        Some(Now::Gone) => {
            info!(connector = %ctx.instance, action_id = %action.id, "the pinned item is gone: already done, nothing sent");
            return Ok(Outcome::AlreadyDone);
        }
        Some(Now::Item(item)) => {
            if let Some(u) = &a.unless {
                // The state on the item as it is now; templated values are the ones discovery
                // captured (an invite id that is no longer the one seen: already regenerated).
                let captured = |v: &Var| value(action, None, v);
                if r.state
                    .get(u)
                    .is_some_and(|p| holds_with(p, Some(&item), &captured))
                {
                    info!(connector = %ctx.instance, action_id = %action.id, state = %u, "the state already holds: already done, nothing sent");
                    return Ok(Outcome::AlreadyDone);
                }
            }
            fresh = Some(item);
        }
        None => {
            debug!(connector = %ctx.instance, action_id = %action.id, attempt = journal.attempt(), "no read by id in the definition: the write goes to the pinned id unread");
        }
    }
    if let Some(b) = &a.before {
        if before_shows_done(ctx, action, b).await? {
            info!(connector = %ctx.instance, action_id = %action.id, attempt = journal.attempt(), "the read before the write shows it done: already done, nothing sent");
            return Ok(Outcome::AlreadyDone);
        }
    }
    let Some(req_def) = &a.request else {
        return Ok(Outcome::Skipped {
            reason: "no request".into(),
        });
    };
    // With a read by id, the item's other fields come from its fresh answer: the pinned item
    // where it is now (a renamed user is written under its new name, never the old one).
    let mut req = match &fresh {
        Some(item) => render_request(
            req_def,
            &|v| match v {
                Var::Item(f) if f != "id" => field(item, f).and_then(scalar_text),
                other => value(action, Some(key), other),
            },
            &[],
        )
        .map_err(|e| {
            ConnectorError::permanent(
                "bad_value",
                format!("{}: {e}; nothing was sent", action.kind.0),
            )
        })?,
        None => rendered(action, Some(key), req_def)?,
    };
    if let Some(h) = &ctx.def.idempotency_header {
        req.headers.push((h.clone(), key.0.clone()));
    }
    info!(
        connector = %ctx.instance,
        action_id = %action.id,
        idempotency_key = %key.0,
        sent_as_header = ctx.def.idempotency_header.as_deref().unwrap_or("(none)"),
        method = %req.method,
        path = req.path(),
        "sending"
    );
    let reply: Reply = ctx.client.send(&req).await?;
    classify::outcome(&a.outcomes, &req.method, req.path(), &reply, &|v| {
        value(action, Some(key), v)
    })
}

/// Answers of verify requests already sent in one `verify_many`, by the rendered request.
pub type VerifyCache = std::collections::BTreeMap<String, Reply>;

/// Several actions read back together: a verify request that renders the same for several of
/// them (a channel's member list for a person's two accounts, the user read by id for two of
/// its actions) is sent once. Reads only, at one moment: the same answer twice.
pub async fn verify_many(
    ctx: &Ctx<'_>,
    actions: &[Action],
) -> Vec<Result<Verdict, ConnectorError>> {
    let mut cache = VerifyCache::new();
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        out.push(verify_with(ctx, a, &mut cache).await);
    }
    out
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    verify_with(ctx, action, &mut VerifyCache::new()).await
}

async fn verify_with(
    ctx: &Ctx<'_>,
    action: &Action,
    cache: &mut VerifyCache,
) -> Result<Verdict, ConnectorError> {
    let (r, a) = defs(ctx.def, action)?;
    let Some(v) = &a.verify else {
        return Ok(Verdict::NotConfirmed {
            detail: "the definition gives no verify for this action".into(),
        });
    };
    let (req_def, is_read) = match (&v.request, &r.read) {
        (Some(q), _) => (q.clone(), false),
        (None, Some(rd)) => (rd.as_request(), true),
        (None, None) => {
            return Ok(Verdict::NotConfirmed {
                detail: "no verify request".into(),
            })
        }
    };
    let req = rendered(action, None, &req_def)?;
    let cache_key = format!("{} {} {:?}", req.method, req.path_and_query, req.headers);
    let reply = match cache.get(&cache_key) {
        Some(r) => r.clone(),
        None => {
            let r = ctx.client.send(&req).await?;
            cache.insert(cache_key, r.clone());
            r
        }
    };
    let body = reply.json();
    let val = |v: &Var| value(action, None, v);
    if is_read && reply.is_success() {
        // The read by id must still answer the pinned item.
        let pinned = action.params.get("id").cloned().unwrap_or_default();
        let item = r
            .read
            .as_ref()
            .and_then(|rd| JsonPath::parse(&rd.item).ok())
            .and_then(|p| body.as_ref().and_then(|b| p.first(b).cloned()));
        let now_id = item.as_ref().and_then(|i| {
            JsonPath::parse(&r.id)
                .ok()
                .and_then(|p| p.first(i).and_then(scalar_text))
        });
        if now_id.as_deref() != Some(pinned.as_str()) {
            return Ok(Verdict::NotConfirmed {
                detail: format!(
                    "the read by id answered {} instead of the pinned {pinned}",
                    now_id.unwrap_or_else(|| "no id".into())
                ),
            });
        }
        let item_body = item;
        if v.confirmed
            .iter()
            .any(|c| status_rule_matches(c, &reply, item_body.as_ref(), &val))
        {
            return Ok(Verdict::Confirmed);
        }
    } else if v
        .confirmed
        .iter()
        .any(|c| status_rule_matches(c, &reply, body.as_ref(), &val))
    {
        return Ok(Verdict::Confirmed);
    }
    if reply.status == 429 || reply.status >= 500 || reply.status == 401 || reply.status == 403 {
        return Err(classify::read_status(&Method::GET, req.path(), &reply));
    }
    Ok(Verdict::NotConfirmed {
        detail: format!(
            "GET {}: {} {}",
            req.path(),
            reply.status,
            classify::excerpt(&reply.body)
        ),
    })
}
