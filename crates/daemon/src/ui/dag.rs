//! The plan of one job as a picture: each action a box in the column of its depth (the longest
//! chain of prerequisites before it), an arrow from each prerequisite, coloured by state. Rendered
//! on the server as SVG (presentation attributes and classes only: no script, no inline style).

use std::collections::BTreeMap;

use maud::{html, Markup};
use revoke_core::Action;
use revoke_store::ActionState;

const BOX_W: i64 = 230;
const BOX_H: i64 = 46;
const GAP_X: i64 = 60;
const GAP_Y: i64 = 14;
const PAD: i64 = 10;
/// Boxes drawn at most; a larger plan is listed in the table only.
pub(crate) const MAX_NODES: usize = 400;

/// Where each action's box goes: (column, row) by action id.
fn layout(actions: &[&Action]) -> BTreeMap<String, (i64, i64)> {
    let index: BTreeMap<&str, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.0.as_str(), i))
        .collect();
    // Longest path from a root, over the plan order (a prerequisite may come later in the list,
    // so iterate until nothing changes; a cycle, which a plan never has, stops at n rounds).
    let mut depth = vec![0i64; actions.len()];
    for _ in 0..actions.len() {
        let mut changed = false;
        for (i, a) in actions.iter().enumerate() {
            for d in &a.depends_on {
                if let Some(&j) = index.get(d.0.as_str()) {
                    if depth[j] + 1 > depth[i] {
                        depth[i] = depth[j] + 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    let mut at = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        let row = rows.entry(depth[i]).or_insert(0);
        at.insert(a.id.0.clone(), (depth[i], *row));
        *row += 1;
    }
    at
}

fn state_class(s: Option<ActionState>) -> &'static str {
    match s {
        Some(s) if s.is_success() => "ok",
        Some(ActionState::Failed) | Some(ActionState::Blocked) => "bad",
        Some(ActionState::Running) => "run",
        Some(ActionState::AwaitingAck) => "wait",
        Some(ActionState::Cancelled) => "off",
        _ => "todo",
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The SVG of a job's actions and their dependencies.
pub(crate) fn render(actions: &[&Action], states: &BTreeMap<String, ActionState>) -> Markup {
    if actions.is_empty() {
        return html! { p.muted { "No plan yet." } };
    }
    if actions.len() > MAX_NODES {
        return html! { p.muted { "The plan has " (actions.len()) " actions; the picture is drawn up to " (MAX_NODES) ". The table below lists them all." } };
    }
    let at = layout(actions);
    let cols = at.values().map(|(c, _)| *c).max().unwrap_or(0) + 1;
    let rows = at.values().map(|(_, r)| *r).max().unwrap_or(0) + 1;
    let w = PAD * 2 + cols * BOX_W + (cols - 1) * GAP_X;
    let h = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y;
    let pos = |id: &str| {
        at.get(id)
            .map(|(c, r)| (PAD + c * (BOX_W + GAP_X), PAD + r * (BOX_H + GAP_Y)))
    };
    html! {
        svg.dag xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) viewBox={"0 0 " (w) " " (h)} role="img" aria-label="plan: actions and their dependencies" {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#555" {}
                }
            }
            @for a in actions {
                @if let Some((x2, y2)) = pos(&a.id.0) {
                    @for d in &a.depends_on {
                        @if let Some((x1, y1)) = pos(&d.0) {
                            path.edge d={ "M " (x1 + BOX_W) " " (y1 + BOX_H / 2) " C " (x1 + BOX_W + GAP_X / 2) " " (y1 + BOX_H / 2) ", " (x2 - GAP_X / 2) " " (y2 + BOX_H / 2) ", " (x2) " " (y2 + BOX_H / 2) } fill="none" stroke="#555" marker-end="url(#arrow)" {}
                        }
                    }
                }
            }
            @for a in actions {
                @if let Some((x, y)) = pos(&a.id.0) {
                    @let st = states.get(&a.id.0).copied();
                    g class={ "node " (state_class(st)) } {
                        title { (a.id.0) ": " (st.map(|s| s.as_str()).unwrap_or("unknown")) }
                        rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                        text x=(x + 8) y=(y + 18) { (short(&format!("{} · {}", a.phase.as_str(), a.connector), 32)) }
                        text.sub x=(x + 8) y=(y + 36) { (short(&format!("{} {}", a.kind.0, a.target), 34)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_dependent_sits_one_column_right_of_its_prerequisite() {
        let plan: Vec<Action> = serde_json::from_value(serde_json::json!([
            {"id": "b", "job_id": "j", "connector": "l", "kind": "remove", "target": "t", "depends_on": ["a"], "phase": "revoke", "key": "k2", "summary": "s"},
            {"id": "a", "job_id": "j", "connector": "l", "kind": "lock", "target": "t", "phase": "contain", "key": "k1", "summary": "s"},
            {"id": "c", "job_id": "j", "connector": "l", "kind": "delete", "target": "<t>", "depends_on": ["b"], "phase": "delete", "key": "k3", "summary": "s"}
        ]))
        .unwrap();
        let refs: Vec<&Action> = plan.iter().collect();
        let at = layout(&refs);
        assert_eq!(at["a"], (0, 0));
        assert_eq!(at["b"], (1, 0));
        assert_eq!(at["c"], (2, 0));
        let svg = render(&refs, &BTreeMap::new()).into_string();
        assert!(svg.contains("&lt;t&gt;"), "{svg}");
        assert_eq!(svg.matches("class=\"edge\"").count(), 2, "{svg}");
    }
}
