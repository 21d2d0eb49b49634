//! Read-only discovery: the definition's requests, their pages, the items they answer, and the
//! match rules that say which items are the subject's.
//!
//! Resources are read parents first. A top-level resource's items are accounts: each item any
//! match rule holds for is one account (its immutable id, every identifier it answers to, and the
//! rule that matched: several accounts for one person are each planned). A resource `within`
//! another is read once per parent item, and its items are pinned to their top-level ancestor's
//! account. Every fact a plan depends on (the captured fields, each state) is a finding
//! attribute, so a change makes a saved plan stale.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;

use crate::classify::{self, holds, holds_with, Reply};
use crate::client::{render_request, Client};
use crate::config::{
    captured_fields, Captured, Case, Definition, DiscoverRequest, DomainForm, MatchRule, Paginate,
    Resource,
};
use crate::jsonpath::{field, scalar_text, JsonPath};
use crate::template::{render, Position, Var};

/// A subject's value for `subject.<field>` (client subjects have only `client_domain`).
pub fn subject_value(instance: &str, s: &Subject, f: &str) -> Option<String> {
    if let Some(d) = s.client_domain() {
        return (f == "client_domain").then(|| d.as_str().to_string());
    }
    match f {
        "id" => Some(s.id.clone()),
        "username" => Some(s.username_for(instance).to_string()),
        "email" => s
            .email
            .clone()
            .or_else(|| s.id.contains('@').then(|| s.id.clone())),
        "employee_id" => s.employee_id.clone(),
        _ => None,
    }
}

/// Answers already read in this discovery (one `discover_many` call): a request that renders the
/// same for several subjects (a whole listing, a child listing of the same parent) is sent once.
/// Keyed by the resource, the request's place in it, and the rendered first page.
pub type Cache = BTreeMap<String, Vec<Value>>;

/// [`fetch_items`] through the cache.
async fn fetch_cached(
    client: &Client,
    key: &str,
    d: &DiscoverRequest,
    value: &(dyn Fn(&Var) -> Option<String> + Sync),
    cache: &mut Cache,
) -> Result<Option<Vec<Value>>, ConnectorError> {
    let first = match render_request(&d.as_request(), value, &[]) {
        Ok(r) => r,
        Err(crate::template::RenderError::Missing(_)) => return Ok(None),
        Err(e) => return Err(ConnectorError::permanent("bad_value", e.to_string())),
    };
    let key = format!("{key}|{}|{:?}", first.path_and_query, first.headers);
    if let Some(items) = cache.get(&key) {
        return Ok(Some(items.clone()));
    }
    let items = fetch_items(client, d, value).await?;
    if let Some(i) = &items {
        cache.insert(key, i.clone());
    }
    Ok(items)
}

/// One item found.
#[derive(Debug, Clone)]
struct Found {
    id: String,
    name: String,
    target: String,
    json: Value,
    account: String,
    matched_by: String,
    parent: Option<(String, Value)>,
}

/// The items the request answers, every page of them; None when a subject value it names is
/// unknown (the request is skipped).
pub async fn fetch_items(
    client: &Client,
    d: &DiscoverRequest,
    value: &(dyn Fn(&Var) -> Option<String> + Sync),
) -> Result<Option<Vec<Value>>, ConnectorError> {
    let items_path =
        JsonPath::parse(&d.items).map_err(|e| ConnectorError::permanent("bad_definition", e))?;
    let mut out = Vec::new();
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut link_next: Option<String> = None;
    let (mut page, mut offset) = match &d.paginate {
        Some(Paginate::Page { start, .. }) | Some(Paginate::Offset { start, .. }) => {
            (*start, *start)
        }
        _ => (0, 0),
    };
    for n in 0.. {
        match &d.paginate {
            Some(Paginate::Page {
                param,
                size_param,
                size,
                ..
            }) => {
                extra = vec![(param.clone(), page.to_string())];
                if let Some(sp) = size_param {
                    extra.push((sp.clone(), size.to_string()));
                }
            }
            Some(Paginate::Offset {
                param,
                size_param,
                size,
                ..
            }) => {
                extra = vec![(param.clone(), offset.to_string())];
                if let Some(sp) = size_param {
                    extra.push((sp.clone(), size.to_string()));
                }
            }
            _ => {}
        }
        let rendered = match render_request(&d.as_request(), value, &extra) {
            Ok(r) => r,
            Err(crate::template::RenderError::Missing(_)) => return Ok(None),
            Err(e) => return Err(ConnectorError::permanent("bad_value", e.to_string())),
        };
        let reply = match &link_next {
            Some(url) => client.send_url(&rendered, url).await?,
            None => client.send(&rendered).await?,
        };
        let path = rendered.path().to_string();
        if d.absent.contains(&reply.status) {
            break;
        }
        if !reply.is_success() {
            return Err(classify::read_status(&Method::GET, &path, &reply));
        }
        let Some(body) = reply.json() else {
            return Err(revoke_http::bad_response(
                &Method::GET,
                &path,
                "the answer is not JSON",
            ));
        };
        if d.absent_if.iter().any(|p| holds(p, Some(&body))) {
            break;
        }
        if d.error_if.iter().any(|p| holds(p, Some(&body))) {
            return Err(ConnectorError::permanent(
                "error_answer",
                format!(
                    "GET {path}: {} {} (an error_if predicate of the definition holds)",
                    reply.status,
                    classify::excerpt(&reply.body)
                ),
            ));
        }
        let items: Vec<Value> = items_path.select(&body).into_iter().cloned().collect();
        let count = items.len() as u64;
        out.extend(items);
        let more = match &d.paginate {
            None => false,
            Some(Paginate::Cursor { next, param }) => {
                let cursor = JsonPath::parse(next)
                    .ok()
                    .and_then(|p| p.first(&body).and_then(scalar_text))
                    .filter(|c| !c.is_empty());
                match cursor {
                    Some(c) if count > 0 || n == 0 => {
                        extra = vec![(param.clone(), c)];
                        true
                    }
                    _ => false,
                }
            }
            Some(Paginate::Page { size, .. }) => {
                page += 1;
                count >= *size && count > 0
            }
            Some(Paginate::Offset { size, total, .. }) => {
                offset += count;
                let total = total
                    .as_ref()
                    .and_then(|t| JsonPath::parse(t).ok())
                    .and_then(|p| p.first(&body).and_then(Value::as_u64));
                match total {
                    Some(t) => count > 0 && (out.len() as u64) < t,
                    None => count >= *size && count > 0,
                }
            }
            Some(Paginate::Link) => match next_link(&reply, client.base()) {
                Some(url) => {
                    link_next = Some(url);
                    true
                }
                None => false,
            },
        };
        if !more {
            break;
        }
        if n + 1 >= d.max_pages {
            return Err(ConnectorError::permanent(
                "too_many_pages",
                format!(
                    "GET {path}: more than {} pages (max_pages); nothing was planned from a partial list",
                    d.max_pages
                ),
            ));
        }
    }
    Ok(Some(out))
}

/// The `rel="next"` URL of a Link header, absolute (a path is resolved against the base's origin).
fn next_link(reply: &Reply, base: &str) -> Option<String> {
    let link = reply.headers.get("link")?.to_str().ok()?;
    for part in link.split(',') {
        let mut bits = part.split(';');
        let url = bits.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
        if bits.any(|b| {
            let b = b.trim().replace(' ', "");
            b == "rel=\"next\"" || b == "rel=next"
        }) {
            if url.starts_with('/') {
                let origin_end = base
                    .find("://")
                    .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
                    .unwrap_or(base.len());
                return Some(format!("{}{url}", &base[..origin_end]));
            }
            return Some(url.to_string());
        }
    }
    None
}

/// The first value of `path` in `item` as text.
fn text_at(item: &Value, path: &str) -> Option<String> {
    JsonPath::parse(path)
        .ok()
        .and_then(|p| p.first(item).and_then(scalar_text))
}

/// Why `item` is the subject's: every rule that holds, in words; None when none does.
fn matches(
    rules: &[MatchRule],
    item: &Value,
    subject_val: &dyn Fn(&Var) -> Option<String>,
    subject: &Subject,
) -> Option<String> {
    let mut why: Vec<String> = Vec::new();
    for r in rules {
        let Ok(path) = JsonPath::parse(&r.path) else {
            continue;
        };
        let values: Vec<String> = path
            .select(item)
            .into_iter()
            .filter_map(scalar_text)
            .collect();
        if let Some(eq) = &r.equals {
            let Ok(want) = render(eq, subject_val, Position::Raw) else {
                continue;
            };
            if want.is_empty() {
                continue;
            }
            let hit = values.iter().find(|v| match r.case {
                Case::Exact => **v == want,
                Case::Insensitive => v.to_lowercase() == want.to_lowercase(),
            });
            if let Some(v) = hit {
                let how = match r.case {
                    Case::Exact => "",
                    Case::Insensitive => " (case ignored)",
                };
                why.push(format!("{} = {v}{how}", r.path));
            }
        } else if let (Some(form), Some(d)) = (r.client_domain, subject.client_domain()) {
            let hit = values.iter().find(|v| match form {
                DomainForm::Email => d.matches_email(v),
                DomainForm::Domain => d.matches_domain(v),
            });
            if let Some(v) = hit {
                why.push(format!(
                    "{} = {v} (at the client's domain {})",
                    r.path,
                    d.as_str()
                ));
            }
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Reads everything the definition describes for `subject`.
pub async fn discover(
    client: &Client,
    def: &Definition,
    instance: &str,
    subject: &Subject,
    cache: &mut Cache,
) -> Result<Discovery, ConnectorError> {
    let subject_val = |v: &Var| match v {
        Var::Subject(f) => subject_value(instance, subject, f),
        Var::Vars(n) => def.vars.get(n).cloned(),
        _ => None,
    };
    let mut found: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    let mut accounts: Vec<Account> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for rn in def.resource_order() {
        let r = &def.resources[rn];
        let mut list: Vec<Found> = Vec::new();
        match &r.within {
            None => {
                let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
                for (i, d) in r.discover.iter().enumerate() {
                    let key = format!("{rn}#{i}");
                    let Some(items) = fetch_cached(client, &key, d, &subject_val, cache).await?
                    else {
                        continue;
                    };
                    for item in items {
                        if !r.keep.iter().all(|p| holds(p, Some(&item))) {
                            continue;
                        }
                        let Some(why) = matches(&r.match_rules, &item, &subject_val, subject)
                        else {
                            continue;
                        };
                        let id = item_id(r, &item, rn)?;
                        if let Some(&i) = by_id.get(&id) {
                            let f: &mut Found = &mut list[i];
                            if !f.matched_by.contains(&why) {
                                f.matched_by = format!("{}; {why}", f.matched_by);
                            }
                            continue;
                        }
                        by_id.insert(id.clone(), list.len());
                        list.push(Found {
                            name: item_name(r, &item, &id),
                            target: format!("{rn}/{id}"),
                            account: id.clone(),
                            id,
                            json: item,
                            matched_by: why,
                            parent: None,
                        });
                    }
                }
                for f in &list {
                    let mut ids: BTreeSet<String> = BTreeSet::new();
                    for p in &r.identifiers {
                        if let Ok(jp) = JsonPath::parse(p) {
                            ids.extend(jp.select(&f.json).into_iter().filter_map(scalar_text));
                        }
                    }
                    accounts.push(
                        Account::new(&f.id, &r.id_kind, &f.name)
                            .answers_to(ids)
                            .matched_by(format!("{rn}: {}", f.matched_by)),
                    );
                }
            }
            Some(parent) => {
                let parents = found.get(parent).cloned().unwrap_or_default();
                for p in &parents {
                    let val = |v: &Var| match v {
                        Var::Subject(f) => subject_value(instance, subject, f),
                        Var::Parent(f) if f == "id" => Some(p.id.clone()),
                        Var::Parent(f) => field(&p.json, f).and_then(scalar_text),
                        Var::Vars(n) => def.vars.get(n).cloned(),
                        _ => None,
                    };
                    let mut seen = BTreeSet::new();
                    for (i, d) in r.discover.iter().enumerate() {
                        let key = format!("{rn}#{i}");
                        let Some(items) = fetch_cached(client, &key, d, &val, cache).await? else {
                            continue;
                        };
                        for item in items {
                            if !r.keep.iter().all(|p| holds(p, Some(&item))) {
                                continue;
                            }
                            let why = if r.match_rules.is_empty() {
                                format!("listed under {} {}", parent, p.name)
                            } else {
                                match matches(&r.match_rules, &item, &subject_val, subject) {
                                    Some(w) => w,
                                    None => continue,
                                }
                            };
                            let id = item_id(r, &item, rn)?;
                            if !seen.insert(id.clone()) {
                                continue;
                            }
                            list.push(Found {
                                name: item_name(r, &item, &id),
                                target: format!("{}/{rn}/{id}", p.target),
                                account: p.account.clone(),
                                id,
                                json: item,
                                matched_by: why,
                                parent: Some((p.id.clone(), p.json.clone())),
                            });
                        }
                    }
                }
            }
        }
        for f in &list {
            for a in &r.actions {
                let Some(u) = &a.unless else { continue };
                if r.state.get(u).is_some_and(|p| {
                    holds_with(
                        p,
                        Some(&f.json),
                        &found_value(instance, subject, f, &def.vars),
                    )
                }) {
                    notes.push(format!(
                        "{} {rn} {} ({}): {} not planned, it is already {u}",
                        def.system, f.name, f.id, a.name
                    ));
                }
            }
        }
        found.insert(rn.to_string(), list);
    }
    let mut findings = Vec::new();
    for rn in def.resource_order() {
        let r = &def.resources[rn];
        let cap = captured_fields(r);
        for f in found.get(rn).map(Vec::as_slice).unwrap_or_default() {
            findings.push(finding(instance, subject, rn, r, f, &cap, &def.vars));
        }
    }
    let found_any = !accounts.is_empty();
    Ok(Discovery {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        found: found_any,
        findings,
        accounts,
        notes,
    })
}

/// The template values of a found item as discovery sees it (for its state predicates).
fn found_value<'a>(
    instance: &'a str,
    subject: &'a Subject,
    f: &'a Found,
    vars: &'a BTreeMap<String, String>,
) -> impl Fn(&Var) -> Option<String> + 'a {
    move |v: &Var| match v {
        Var::Subject(k) => subject_value(instance, subject, k),
        Var::Item(k) if k == "id" => Some(f.id.clone()),
        Var::Item(k) => field(&f.json, k).and_then(scalar_text),
        Var::Parent(k) if k == "id" => f.parent.as_ref().map(|p| p.0.clone()),
        Var::Parent(k) => f
            .parent
            .as_ref()
            .and_then(|p| field(&p.1, k).and_then(scalar_text)),
        Var::AccountId => Some(f.account.clone()),
        Var::ActionKey => None,
        Var::Vars(n) => vars.get(n).cloned(),
    }
}

fn item_id(r: &Resource, item: &Value, rn: &str) -> Result<String, ConnectorError> {
    text_at(item, &r.id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            revoke_http::bad_response(
                &Method::GET,
                rn,
                &format!(
                    "an item has no id at {} ({})",
                    r.id,
                    classify::excerpt(&item.to_string())
                ),
            )
        })
}

fn item_name(r: &Resource, item: &Value, id: &str) -> String {
    r.name
        .as_ref()
        .and_then(|n| text_at(item, n))
        .unwrap_or_else(|| id.to_string())
}

fn finding(
    instance: &str,
    subject: &Subject,
    rn: &str,
    r: &Resource,
    f: &Found,
    cap: &Captured,
    vars: &BTreeMap<String, String>,
) -> Finding {
    let mut attrs = BTreeMap::new();
    attrs.insert("id".to_string(), f.id.clone());
    attrs.insert("name".to_string(), f.name.clone());
    attrs.insert("account.id".to_string(), f.account.clone());
    attrs.insert("matched_by".to_string(), f.matched_by.clone());
    for k in &cap.items {
        if let Some(v) = field(&f.json, k).and_then(scalar_text) {
            attrs.insert(format!("item.{k}"), v);
        }
    }
    if let Some((pid, pjson)) = &f.parent {
        attrs.insert("parent.id".to_string(), pid.clone());
        for k in &cap.parents {
            if let Some(v) = field(pjson, k).and_then(scalar_text) {
                attrs.insert(format!("parent.{k}"), v);
            }
        }
    }
    for (s, p) in &r.state {
        let val = found_value(instance, subject, f, vars);
        attrs.insert(
            format!("state.{s}"),
            holds_with(p, Some(&f.json), &val).to_string(),
        );
    }
    for k in &cap.subject {
        if let Some(v) = subject_value(instance, subject, k) {
            attrs.insert(format!("subject.{k}"), v);
        }
    }
    for k in &cap.vars {
        if let Some(v) = vars.get(k) {
            attrs.insert(format!("vars.{k}"), v.clone());
        }
    }
    Finding {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        kind: rn.to_string(),
        target: f.target.clone(),
        attrs,
    }
}
