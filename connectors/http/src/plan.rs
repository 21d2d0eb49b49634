//! The actions the definition gives for each item found; pure and deterministic.
//!
//! Each finding gets each action of its resource, except one whose `unless` state already holds
//! (discovery said so in a note). An action's kind is `<resource>.<action>`, its target the
//! item's (`user/42`, `user/42/channel/C1`), its params what apply renders the request from (the
//! item's id and captured fields, the parent's, the subject values its templates name). `after`
//! becomes dependencies: `"name"` on the same item; `"resource.name"` on that resource's items of
//! the same account that are this item's ancestors, descendants, or (neither) all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use revoke_core::{ActionKind, Discovery, Finding, ProposedAction};

use crate::config::{phase, Definition};
use crate::template::{render, Position, Var};

/// The params key of the resource and of the action name.
pub const P_RESOURCE: &str = "resource";
pub const P_ACTION: &str = "action";

fn planned(def: &Definition, f: &Finding, action: &str) -> bool {
    let Some(r) = def.resources.get(&f.kind) else {
        return false;
    };
    let Some(a) = r.actions.iter().find(|a| a.name == action) else {
        return false;
    };
    match &a.unless {
        Some(u) => f.attrs.get(&format!("state.{u}")).map(String::as_str) != Some("true"),
        None => true,
    }
}

fn related(def: &Definition, f: &Finding, g: &Finding) -> bool {
    if f.attrs.get("account.id") != g.attrs.get("account.id") {
        return false;
    }
    if def.ancestors(&f.kind).contains(&g.kind.as_str()) {
        return f.target.starts_with(&format!("{}/", g.target));
    }
    if def.ancestors(&g.kind).contains(&f.kind.as_str()) {
        return g.target.starts_with(&format!("{}/", f.target));
    }
    true
}

pub fn plan(def: &Definition, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    for f in &d.findings {
        let Some(r) = def.resources.get(&f.kind) else {
            continue;
        };
        let id = f.attrs.get("id").cloned().unwrap_or_default();
        let name = f.attrs.get("name").cloned().unwrap_or_else(|| id.clone());
        let account = f.attrs.get("account.id").cloned().unwrap_or_default();
        for a in &r.actions {
            if !planned(def, f, &a.name) {
                continue;
            }
            let Some(ph) = phase(&a.phase) else {
                continue;
            };
            let mut params: BTreeMap<String, String> = f
                .attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("state.") && k.as_str() != "matched_by")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            params.insert(P_RESOURCE.into(), f.kind.clone());
            params.insert(P_ACTION.into(), a.name.clone());
            let mut after: BTreeSet<(ActionKind, String)> = BTreeSet::new();
            for dep in &a.after {
                let (res, act) = match dep.split_once('.') {
                    Some((res, act)) => (res.to_string(), act.to_string()),
                    None => (f.kind.clone(), dep.clone()),
                };
                let kind = ActionKind::from(format!("{res}.{act}").as_str());
                for g in d.findings.iter().filter(|g| g.kind == res) {
                    let same = g.target == f.target;
                    if (same || (res != f.kind && related(def, f, g))) && planned(def, g, &act) {
                        after.insert((kind.clone(), g.target.clone()));
                    }
                }
            }
            let value = |v: &Var| match v {
                Var::Item(k) => f
                    .attrs
                    .get(&format!("item.{k}"))
                    .cloned()
                    .or_else(|| (k == "id").then(|| id.clone())),
                Var::Parent(k) => f.attrs.get(&format!("parent.{k}")).cloned(),
                Var::Subject(k) => f.attrs.get(&format!("subject.{k}")).cloned(),
                Var::AccountId => Some(account.clone()),
                Var::ActionKey => Some("(key)".into()),
                Var::Vars(k) => f.attrs.get(&format!("vars.{k}")).cloned(),
            };
            let summary = a
                .summary
                .as_ref()
                .and_then(|s| render(s, &value, Position::Raw).ok())
                .unwrap_or_else(|| {
                    format!(
                        "{} {} {name} ({} {id}) in {}",
                        a.name.replace('_', " "),
                        f.kind,
                        r.id_kind,
                        def.system
                    )
                });
            out.push(ProposedAction {
                kind: ActionKind::from(format!("{}.{}", f.kind, a.name).as_str()),
                target: f.target.clone(),
                params,
                phase: ph,
                after: after.into_iter().collect(),
                summary,
                account: account.clone(),
                delay: (a.delay_days > 0).then(|| Duration::from_secs(a.delay_days * 86_400)),
            });
        }
    }
    out
}
