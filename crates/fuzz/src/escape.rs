//! Escaping targets: LDAP filters, DNs, SCIM filters and URL parts built from hostile values.
//!
//! The oracle is a round trip through an independent parser: the LDAP filter is parsed by
//! `ldap3::parse_filter` and must have exactly the items built, each with exactly the value
//! given; an escaped DN value must come back from core's DN parser as given, and the canonical
//! form must be idempotent; a SCIM filter must be `attr eq <one JSON string>` holding the value;
//! a percent-encoded part must decode to the value and hold nothing that splits a path or query.

use ldap3::asn1::{ASNTag, StructureTag, PL};
use revoke_connector_github::escape as gh;
use revoke_connector_ldap::escape as ldap;
use revoke_connector_scim::escape as scim;
use revoke_core::dn;
use serde::{Deserialize, Serialize};

use crate::mutate::{hostile_string, random_chars, tweak, INJECTIONS, LOOKALIKES};
use crate::rng::Rng;

/// The escaping targets.
pub const TARGETS: [&str; 4] = ["ldap_filter", "dn", "scim_filter", "url"];

/// Attribute names a configuration may give (the escaping covers values only).
const ATTRS: [&str; 6] = [
    "uid",
    "mail",
    "employeeNumber",
    "cn",
    "memberUid",
    "x-custom-id",
];

/// One generated input of an escaping target, as kept in a replay file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EscInput {
    /// The target.
    pub target: String,
    /// The values, hex of their UTF-8 (a replay file stays readable whatever they hold).
    pub values_hex: Vec<String>,
    /// Which attribute name goes with each value.
    pub attrs: Vec<usize>,
}

impl EscInput {
    /// The values as strings.
    pub fn values(&self) -> Vec<String> {
        self.values_hex
            .iter()
            .map(|h| String::from_utf8(hex::decode(h).unwrap_or_default()).unwrap_or_default())
            .collect()
    }
}

fn random_scalar(rng: &mut Rng) -> char {
    loop {
        let range = *rng.pick(&[0x80u32, 0x800, 0x1_0000, 0x11_0000]);
        if let Some(c) = char::from_u32(rng.next_u64() as u32 % range) {
            return c;
        }
    }
}

/// One hostile value: listed strings, random scalars, and mixes of both.
fn value(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => (0..rng.below(12)).map(|_| random_scalar(rng)).collect(),
        1 => random_chars(rng, 16),
        2 => format!(
            "{}{}{}",
            rng.pick(INJECTIONS),
            random_chars(rng, 4),
            rng.pick(LOOKALIKES)
        ),
        3 => {
            let s = *rng.pick(INJECTIONS);
            tweak(rng, s)
        }
        _ => {
            let base = rng
                .pick(&["jdoe", "Jane Doe", "a,b", "x+y", " s ", "#1"])
                .to_string();
            let s = hostile_string(rng, &base);
            // Long values cost time without finding more here.
            s.chars().take(300).collect()
        }
    }
}

/// The input number `index` of a run with `seed`.
pub fn generate(target: &str, seed: u64, index: u64) -> EscInput {
    let mut rng = Rng::new(crate::rng::mix(seed ^ crate::rng::mix(index) ^ 0xE5C));
    let n = 1 + rng.below(3);
    let values: Vec<String> = (0..n).map(|_| value(&mut rng)).collect();
    EscInput {
        target: target.to_string(),
        values_hex: values.iter().map(|v| hex::encode(v.as_bytes())).collect(),
        attrs: (0..n).map(|_| rng.below(ATTRS.len())).collect(),
    }
}

/// Runs the target's oracles on an input; the error names the function and what broke.
pub fn check(input: &EscInput) -> Result<(), String> {
    let values = input.values();
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .zip(&input.attrs)
        .map(|(v, a)| (ATTRS[*a % ATTRS.len()], v.as_str()))
        .collect();
    match input.target.as_str() {
        "ldap_filter" => check_ldap(&pairs),
        "dn" => values.iter().try_for_each(|v| check_dn(v)),
        "scim_filter" => values.iter().try_for_each(|v| check_scim(v)),
        "url" => check_url(&values),
        other => Err(format!("unknown escaping target {other:?}")),
    }
}

/// A filter as a tree, for comparing what was built with what a parser read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum F {
    And(Vec<F>),
    Or(Vec<F>),
    Not(Box<F>),
    Eq(Vec<u8>, Vec<u8>),
    Present(Vec<u8>),
    /// Any other item (substring, range, approximate, extensible), by its tag.
    Other(u64),
}

fn eq_item(attr: &str, value: &str) -> F {
    F::Eq(attr.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn any_of_tree(pairs: &[(&str, &str)]) -> F {
    match pairs {
        [] => F::Not(Box::new(F::Present(b"objectClass".to_vec()))),
        [(a, v)] => eq_item(a, v),
        _ => F::Or(pairs.iter().map(|(a, v)| eq_item(a, v)).collect()),
    }
}

fn tree(t: StructureTag) -> F {
    let id = t.id;
    match (id, t.payload) {
        (0, PL::C(items)) => F::And(items.into_iter().map(tree).collect()),
        (1, PL::C(items)) => F::Or(items.into_iter().map(tree).collect()),
        (2, PL::C(mut items)) if items.len() == 1 => F::Not(Box::new(tree(items.remove(0)))),
        (3, PL::C(items)) => {
            let mut parts = items.into_iter().map(|i| match i.payload {
                PL::P(b) => b,
                PL::C(_) => Vec::new(),
            });
            let attr = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            F::Eq(attr, value)
        }
        (7, PL::P(attr)) => F::Present(attr),
        (id, _) => F::Other(id),
    }
}

fn parsed(filter: &str) -> Result<F, String> {
    ldap3::parse_filter(filter)
        .map(|t| tree(t.into_structure()))
        .map_err(|()| format!("ldap3 cannot parse the built filter {}", shown(filter)))
}

fn shown(s: &str) -> String {
    format!("{:?}", s.chars().take(200).collect::<String>())
}

fn same(what: &str, filter: &str, want: &F) -> Result<(), String> {
    let got = parsed(filter)?;
    if &got == want {
        Ok(())
    } else {
        Err(format!(
            "{what} built {} which parses as {got:?}, expected {want:?}",
            shown(filter)
        ))
    }
}

fn check_ldap(pairs: &[(&str, &str)]) -> Result<(), String> {
    for (a, v) in pairs {
        same("ldap escape::eq", &ldap::eq(a, v), &eq_item(a, v))?;
    }
    same(
        "ldap escape::any_of",
        &ldap::any_of(pairs.iter().copied()),
        &any_of_tree(pairs),
    )?;
    let oc = pairs.first().map_or("inetOrgPerson", |p| p.1);
    same(
        "ldap escape::user_filter",
        &ldap::user_filter(Some(oc), pairs.iter().copied()),
        &F::And(vec![eq_item("objectClass", oc), any_of_tree(pairs)]),
    )?;
    same(
        "ldap escape::user_filter",
        &ldap::user_filter(None, pairs.iter().copied()),
        &any_of_tree(pairs),
    )?;
    let user_dn = format!(
        "uid={},ou=people,dc=example,dc=org",
        dn::escape_value(pairs.first().map_or("x", |p| p.1))
    );
    let names: Vec<String> = pairs.iter().skip(1).map(|p| p.1.to_string()).collect();
    let mut groups = vec![
        F::And(vec![
            eq_item("objectClass", "groupOfNames"),
            eq_item("member", &user_dn),
        ]),
        eq_item("objectClass", "groupOfUniqueNames"),
    ];
    if !names.is_empty() {
        let uids: Vec<(&str, &str)> = names.iter().map(|n| ("memberUid", n.as_str())).collect();
        groups.push(F::And(vec![
            eq_item("objectClass", "posixGroup"),
            any_of_tree(&uids),
        ]));
    }
    same(
        "ldap escape::groups_filter",
        &ldap::groups_filter(&[(user_dn.as_str(), names.clone())]),
        &F::Or(groups),
    )
}

const BASE: &str = "ou=people,dc=example,dc=org";

fn check_dn(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    let esc = dn::escape_value(v);
    let rdn = format!("uid={esc}");
    let full = format!("{rdn},{BASE}");
    let what = |m: &str| format!("dn: value {} escaped as {}: {m}", shown(v), shown(&esc));
    if let Some(p) = dn::dn_problem(&full) {
        return Err(what(&format!("dn_problem says {p}")));
    }
    let n = dn::normalize_dn(&full);
    let want = vec![("uid".to_string(), v.to_lowercase())];
    if n.len() != 4 || n[0] != want {
        return Err(what(&format!(
            "normalize_dn reads the first RDN as {:?} of {} RDN(s), expected {want:?} of 4",
            n.first(),
            n.len()
        )));
    }
    if dn::first_rdn(&full) != Some(rdn.as_str()) {
        return Err(what(&format!(
            "first_rdn gives {:?}, expected {}",
            dn::first_rdn(&full),
            shown(&rdn)
        )));
    }
    if !dn::is_under(&full, BASE) {
        return Err(what("is_under says the entry is not under its base"));
    }
    let Some(c) = dn::canonical(&full) else {
        return Err(what("canonical gives nothing"));
    };
    if dn::canonical(&c).as_deref() != Some(c.as_str()) {
        return Err(what(&format!(
            "canonical is not idempotent: {} then {:?}",
            shown(&c),
            dn::canonical(&c)
        )));
    }
    if !dn::same_dn(&full, &c) {
        return Err(what(&format!(
            "same_dn(dn, canonical {}) is false",
            shown(&c)
        )));
    }
    // A DN written by hand, spaces and escapes included, also has one canonical form.
    let messy = format!(" UID = {esc} ;OU=People , dc=example,dc=org ");
    if let Some(m) = dn::canonical(&messy) {
        if dn::canonical(&m).as_deref() != Some(m.as_str()) {
            return Err(what(&format!(
                "canonical of {} is not idempotent",
                shown(&messy)
            )));
        }
    }
    let raw = format!("cn={v},{BASE}");
    if let Some(m) = dn::canonical(&raw) {
        if dn::canonical(&m).as_deref() != Some(m.as_str()) {
            return Err(format!(
                "dn: canonical of the unescaped {} is {} and not idempotent: {:?}",
                shown(&raw),
                shown(&m),
                dn::canonical(&m)
            ));
        }
    }
    Ok(())
}

/// Reads `attr eq <JSON string>`: the attribute and the value, or why not.
fn scim_comparison(f: &str) -> Result<(String, String), String> {
    let (attr, rest) = f
        .split_once(" eq ")
        .ok_or_else(|| format!("no \" eq \" in {}", shown(f)))?;
    if attr.is_empty() || !attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
        return Err(format!("attribute path {} is not plain", shown(attr)));
    }
    if !rest.starts_with('"') || !rest.ends_with('"') {
        return Err(format!(
            "comparison value {} is not one JSON string",
            shown(rest)
        ));
    }
    let value: String = serde_json::from_str(rest).map_err(|e| {
        format!(
            "comparison value {} is not one JSON string ({e})",
            shown(rest)
        )
    })?;
    // One string only: no unescaped quote inside it.
    let inner = &rest[1..rest.len() - 1];
    let mut escaped = false;
    for c in inner.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                return Err(format!("a quote ends the string early in {}", shown(rest)))
            }
            (false, c) if (c as u32) < 0x20 => {
                return Err(format!("a raw control character in {}", shown(rest)))
            }
            _ => {}
        }
    }
    Ok((attr.to_string(), value))
}

fn check_scim(v: &str) -> Result<(), String> {
    let f = scim::eq_filter("userName", v);
    let (attr, got) = scim_comparison(&f).map_err(|m| format!("scim eq_filter: {m}"))?;
    if attr != "userName" || got != v {
        return Err(format!(
            "scim eq_filter({}) reads back as {attr} eq {}",
            shown(v),
            shown(&got)
        ));
    }
    let m = scim::member_path(v);
    let inner = m
        .strip_prefix("members[")
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("scim member_path gives {}", shown(&m)))?;
    let (attr, got) = scim_comparison(inner).map_err(|e| format!("scim member_path: {e}"))?;
    if attr != "value" || got != v {
        return Err(format!(
            "scim member_path({}) reads back as {}",
            shown(v),
            shown(&got)
        ));
    }
    // The filter goes out as a query value.
    let q = scim::query(&[("filter", &f), ("count", "2")]);
    let parts: Vec<&str> = q.split('&').collect();
    if parts.len() != 2 || parts[0].split('=').count() != 2 {
        return Err(format!(
            "scim query splits into {} parts: {}",
            parts.len(),
            shown(&q)
        ));
    }
    let decoded = parts[0]
        .split_once('=')
        .and_then(|(_, x)| percent_decode(x))
        .ok_or_else(|| format!("scim query does not decode: {}", shown(&q)))?;
    if decoded != f.as_bytes() {
        return Err(format!(
            "scim query of {} decodes to something else",
            shown(&f)
        ));
    }
    Ok(())
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn check_encoded(name: &str, v: &str, out: &str, segment: bool) -> Result<(), String> {
    let bad = |m: &str| Err(format!("{name}({}) = {}: {m}", shown(v), shown(out)));
    if !out
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%'))
    {
        return bad("holds a character outside unreserved and %XX");
    }
    if percent_decode(out).as_deref() != Some(v.as_bytes()) {
        return bad("does not decode to the value");
    }
    if segment && (out == "." || out == ".." || out.is_empty() && !v.is_empty()) {
        return bad("is a dot segment");
    }
    Ok(())
}

fn check_url(values: &[String]) -> Result<(), String> {
    for v in values {
        check_encoded("scim percent_encode", v, &scim::percent_encode(v), false)?;
        check_encoded("scim segment", v, &scim::segment(v), true)?;
        check_encoded("github seg", v, &gh::seg(v), true)?;
        check_encoded("github query", v, &gh::query(v), false)?;
        check_encoded(
            "onelogin encode",
            v,
            &revoke_connector_onelogin::encode(v),
            false,
        )?;
        if gh::is_login(v) && gh::seg(v) != *v {
            return Err(format!(
                "github is_login({}) holds but the login needs encoding",
                shown(v)
            ));
        }
        if gh::is_email(v)
            && (v.matches('@').count() != 1
                || !v.is_ascii()
                || v.contains(|c: char| "/\\?#%*()\"' <>,;:".contains(c) || c.is_control()))
        {
            return Err(format!(
                "github is_email({}) holds for a value no email has",
                shown(v)
            ));
        }
    }
    let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("filter", v.as_str())).collect();
    let q = scim::query(&pairs);
    let parts: Vec<&str> = if q.is_empty() {
        Vec::new()
    } else {
        q.split('&').collect()
    };
    if parts.len() != pairs.len() {
        return Err(format!(
            "scim query of {} pair(s) splits into {}: {}",
            pairs.len(),
            parts.len(),
            shown(&q)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ldap_parser_sees_injections() {
        // The oracle itself: an unescaped value changes the tree.
        let raw = format!("(uid={})", "*)(uid=*");
        assert!(parsed(&raw).map_or(true, |t| t != eq_item("uid", "*)(uid=*")));
        assert_eq!(
            parsed(&ldap::eq("uid", "*)(uid=*")).expect("parses"),
            eq_item("uid", "*)(uid=*")
        );
    }

    #[test]
    fn the_scim_reader_sees_injections() {
        assert!(scim_comparison(r#"userName eq "a" or "b""#).is_err());
        assert_eq!(
            scim_comparison(r#"userName eq "a\"b""#).expect("reads"),
            ("userName".to_string(), "a\"b".to_string())
        );
    }
}
