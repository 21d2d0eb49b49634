//! Read-only: find the leaver's entry by any identifier it answers to, its immutable id, whether
//! it is locked, and every group that lists it.

use std::collections::{BTreeMap, HashMap};

use ldap3::{Scope, SearchEntry};
use revoke_core::dn::{first_rdn, is_under, normalize_dn, same_dn};
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use tracing::{debug, warn};

use crate::client::{attr, Client};
use crate::config::{LdapConfig, LockMethod, PPOLICY_LOCKED};
use crate::escape::{groups_filter, user_filter};

pub const ACCOUNT: &str = "account";
pub const GROUP_MEMBERSHIP: &str = "group_membership";

/// The operational attribute the ppolicy overlay locks with.
pub const PWD_LOCKED: &str = "pwdAccountLockedTime";

/// The attributes of a group that can list a member.
pub const MEMBER_ATTRS: [&str; 3] = ["member", "uniqueMember", "memberUid"];

/// The attributes read from a user entry: every identifier it answers to, its immutable id
/// (operational, so asked for by name) and enough to tell whether it is locked.
pub fn user_attrs(cfg: &LdapConfig) -> Vec<&str> {
    let mut attrs = vec![
        cfg.user_attribute.as_str(),
        cfg.email_attribute.as_str(),
        cfg.employee_id_attribute.as_str(),
        cfg.id_attribute.as_str(),
        PWD_LOCKED,
    ];
    if let Some(a) = cfg.lock_attribute.as_deref() {
        attrs.push(a);
    }
    attrs
}

/// Values compared the way the directory's case-ignoring string rules do: trimmed, inner runs
/// of spaces as one, lowercased.
fn fold(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The (attribute, value) lookups for a subject: the username, the email and the employee id,
/// and where the subject carries no email or employee id, its id tried as each.
fn lookups<'a>(
    cfg: &'a LdapConfig,
    instance: &str,
    subject: &'a Subject,
) -> Vec<(&'a str, &'a str)> {
    let id = subject.id.as_str();
    let candidates = [
        (
            cfg.user_attribute.as_str(),
            subject.usernames.get(instance).map_or(id, String::as_str),
        ),
        (
            cfg.email_attribute.as_str(),
            subject.email.as_deref().unwrap_or(id),
        ),
        (
            cfg.employee_id_attribute.as_str(),
            subject.employee_id.as_deref().unwrap_or(id),
        ),
    ];
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (a, v) in candidates {
        if v.trim().is_empty() {
            continue;
        }
        if !out
            .iter()
            .any(|(x, y)| x.eq_ignore_ascii_case(a) && fold(y) == fold(v))
        {
            out.push((a, v));
        }
    }
    out
}

/// Whether a stored value is the value asked for: equal but for case and runs of spaces, and
/// never by a fold the directory applies beyond that (OpenLDAP's `(uid=ｄａｖｅ)` finds
/// `uid=dave`, its `(uid=\u{212A}im)` finds `uid=kim`): see
/// [`revoke_core::identifier::same_ignoring_case`].
fn carries(stored: &str, asked: &str) -> bool {
    let spaced = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
    revoke_core::identifier::same_ignoring_case(&spaced(asked), &spaced(stored))
}

/// Which of the lookups the entry really answers to (checked here, not taken from the server's
/// filter), as `attr = value` lines.
fn matched(entry: &SearchEntry, lookups: &[(&str, &str)]) -> Vec<String> {
    lookups
        .iter()
        .filter(|(a, v)| attr(entry, a).iter().any(|x| carries(x, v)))
        .map(|(a, v)| format!("{a} = {v}"))
        .collect()
}

/// User entries under every base a user may live in, one per DN.
pub async fn search_users(
    client: &Client,
    cfg: &LdapConfig,
    filter: &str,
) -> Result<Vec<SearchEntry>, ConnectorError> {
    let mut found: Vec<SearchEntry> = Vec::new();
    for base in cfg.user_bases() {
        let (entries, res) = client
            .search(base, Scope::Subtree, filter, &user_attrs(cfg))
            .await?;
        if res.rc != 0 {
            return Err(crate::classify::result("search", base, &res));
        }
        for e in entries {
            if !found.iter().any(|f| same_dn(&f.dn, &e.dn)) {
                found.push(e);
            }
        }
    }
    Ok(found)
}

/// The entry's immutable id: exactly one text value of `id_attribute`. An entry without one
/// cannot be pinned, and nothing is planned on it rather than something pinned to a name.
pub fn entry_id(cfg: &LdapConfig, entry: &SearchEntry) -> Result<String, ConnectorError> {
    let name = cfg.id_attribute.as_str();
    let binary = entry.bin_attrs.keys().any(|k| k.eq_ignore_ascii_case(name));
    match attr(entry, name) {
        [id] if !id.trim().is_empty() => Ok(id.clone()),
        [] if binary => Err(ConnectorError::permanent(
            "bad_id",
            format!(
                "expected {} to carry a text {name} (id_attribute), found a binary value; choose an id attribute of string syntax",
                entry.dn
            ),
        )),
        [] => Err(ConnectorError::permanent(
            "missing_id",
            format!(
                "expected {} to carry {name} (id_attribute), found none: actions are pinned to it, so the service account must be able to read it (or set id_attribute to the immutable id this directory has)",
                entry.dn
            ),
        )),
        many => Err(ConnectorError::permanent(
            "bad_id",
            format!(
                "expected one value of {name} (id_attribute) on {}, found {}: an id names one entry",
                entry.dn,
                many.len()
            ),
        )),
    }
}

/// Every value of the user attribute, the one in the entry's RDN first (the entry's own name),
/// the others in the server's order.
pub fn usernames(cfg: &LdapConfig, entry: &SearchEntry) -> Vec<String> {
    let mut names = attr(entry, &cfg.user_attribute).to_vec();
    let rdn = first_rdn(&entry.dn)
        .map(normalize_dn)
        .and_then(|r| r.into_iter().next())
        .unwrap_or_default();
    if let Some(i) = names.iter().position(|n| {
        rdn.iter()
            .any(|(t, v)| t.eq_ignore_ascii_case(&cfg.user_attribute) && *v == n.to_lowercase())
    }) {
        let primary = names.remove(i);
        names.insert(0, primary);
    }
    names
}

/// The account discovery reports for an entry: pinned to its id, answering to every value of
/// the user, email and employee id attributes, the DN and the id.
pub fn account_of(
    cfg: &LdapConfig,
    entry: &SearchEntry,
    matched_by: &[String],
) -> Result<Account, ConnectorError> {
    let id = entry_id(cfg, entry)?;
    let mut identifiers: Vec<String> = Vec::new();
    for a in [
        &cfg.user_attribute,
        &cfg.email_attribute,
        &cfg.employee_id_attribute,
    ] {
        identifiers.extend(attr(entry, a).iter().cloned());
    }
    identifiers.push(entry.dn.clone());
    identifiers.push(id.clone());
    Ok(Account::new(id, cfg.id_attribute.clone(), entry.dn.clone())
        .answers_to(identifiers)
        .matched_by(matched_by.join(", ")))
}

/// Whether the entry is locked by the configured method.
pub fn is_locked(cfg: &LdapConfig, entry: &SearchEntry) -> bool {
    match cfg.lock_method {
        LockMethod::Ppolicy => attr(entry, PWD_LOCKED).iter().any(|v| v == PPOLICY_LOCKED),
        LockMethod::Attribute => {
            let want = cfg.lock_value.as_deref().unwrap_or_default();
            matches!(attr(entry, cfg.lock_attribute.as_deref().unwrap_or_default()), [v] if v.eq_ignore_ascii_case(want))
        }
        LockMethod::Move => cfg
            .disabled_base_dn
            .as_deref()
            .is_some_and(|d| is_under(&entry.dn, d)),
    }
}

/// The DN part of a member value: a uniqueMember's optional `#'0101'B` UID taken off.
pub fn member_dn(value: &str) -> &str {
    match value.rfind("#'") {
        Some(i)
            if value.ends_with("'B")
                && value[i + 2..value.len() - 2]
                    .bytes()
                    .all(|b| b == b'0' || b == b'1') =>
        {
            &value[..i]
        }
        _ => value,
    }
}

/// Whether a group's objectClass values include `class`.
pub fn has_class(group: &SearchEntry, class: &str) -> bool {
    attr(group, "objectClass")
        .iter()
        .any(|c| c.eq_ignore_ascii_case(class))
}

/// Every (attribute, stored value) of a group that names the user: `member` and `uniqueMember`
/// values whose DN (without a UID) is one of `dns`, `memberUid` values equal to one of
/// `usernames` (exact, as posixGroup's caseExactIA5Match compares). Checked here, value by
/// value, whatever filter found the group.
pub fn memberships(
    group: &SearchEntry,
    dns: &[&str],
    usernames: &[&str],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for name in MEMBER_ATTRS {
        for v in attr(group, name) {
            let listed = if name == "memberUid" {
                usernames.contains(&v.as_str())
            } else {
                dns.iter().any(|dn| same_dn(member_dn(v), dn))
            };
            if listed {
                out.push((name, v.clone()));
            }
        }
    }
    out
}

/// The attributes the schema requires a value of in this group (groupOfNames: member,
/// groupOfUniqueNames: uniqueMember) that would be left with none once `removing` is gone.
pub fn emptied(group: &SearchEntry, removing: &[(&'static str, String)]) -> Vec<&'static str> {
    [
        ("groupOfNames", "member"),
        ("groupOfUniqueNames", "uniqueMember"),
    ]
    .into_iter()
    .filter(|(class, name)| {
        has_class(group, class) && {
            let gone = removing.iter().filter(|(a, _)| a == name).count();
            gone > 0 && attr(group, name).len() <= gone
        }
    })
    .map(|(_, name)| name)
    .collect()
}

/// How many subjects one discovery search covers: one user search and one group search per
/// batch instead of per subject (every group listing a leaver of the batch is read once).
const DISCOVER_BATCH: usize = 500;

pub async fn discover(
    client: &Client,
    cfg: &LdapConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Discovery, ConnectorError> {
    let mut found = discover_batch(client, cfg, instance, std::slice::from_ref(subject)).await?;
    Ok(found
        .pop()
        .unwrap_or_else(|| Discovery::not_found(instance, subject.id.clone())))
}

/// Discovery of many subjects, [`DISCOVER_BATCH`] at a time; one `Discovery` per subject, in
/// order. Each subject is judged exactly as alone: entries and values are checked here against
/// that subject's own identifiers, whatever else the shared searches returned.
pub async fn discover_many(
    client: &Client,
    cfg: &LdapConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut out = Vec::with_capacity(subjects.len());
    for chunk in subjects.chunks(DISCOVER_BATCH) {
        out.extend(discover_batch(client, cfg, instance, chunk).await?);
    }
    Ok(out)
}

/// Where a stored member value sits: the group, the attribute (its rank in `MEMBER_ATTRS`), its
/// position among the attribute's values.
type Hit = (usize, usize, usize);

async fn discover_batch(
    client: &Client,
    cfg: &LdapConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let per_subject: Vec<Vec<(&str, &str)>> =
        subjects.iter().map(|s| lookups(cfg, instance, s)).collect();
    let mut all: Vec<(&str, &str)> = Vec::new();
    for l in &per_subject {
        for &(a, v) in l {
            if !all.contains(&(a, v)) {
                all.push((a, v));
            }
        }
    }
    let entries = if all.is_empty() {
        vec![]
    } else {
        let filter = user_filter(cfg.user_object_class.as_deref(), all.iter().copied());
        search_users(client, cfg, &filter).await?
    };

    // The entries by (attribute, folded value): a subject's candidates are looked up, not every
    // entry of the batch compared with every subject. Folded equality is implied by `carries`,
    // so no entry that answers to a subject is missed; `matched` then decides.
    let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        for a in [
            &cfg.user_attribute,
            &cfg.email_attribute,
            &cfg.employee_id_attribute,
        ] {
            for v in attr(e, a) {
                let at = index.entry((a.to_ascii_lowercase(), fold(v))).or_default();
                if !at.contains(&i) {
                    at.push(i);
                }
            }
        }
    }
    // Each subject's entry, judged on its own identifiers.
    let mut users: Vec<Option<(&SearchEntry, Vec<String>)>> = Vec::with_capacity(subjects.len());
    for (subject, lookups) in subjects.iter().zip(&per_subject) {
        let mut candidates: Vec<usize> = lookups
            .iter()
            .filter_map(|(a, v)| index.get(&(a.to_ascii_lowercase(), fold(v))))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let found: Vec<(&SearchEntry, Vec<String>)> = candidates
            .into_iter()
            .filter_map(|i| {
                let e = &entries[i];
                let why = matched(e, lookups);
                (!why.is_empty()).then_some((e, why))
            })
            .collect();
        if found.len() > 1 {
            let each: Vec<String> = found
                .iter()
                .map(|(e, why)| format!("{} ({})", e.dn, why.join(", ")))
                .collect();
            return Err(ConnectorError::permanent(
                "ambiguous_user",
                format!(
                    "expected one entry for {:?}, found {}: {}",
                    subject.id,
                    found.len(),
                    each.join("; ")
                ),
            ));
        }
        users.push(found.into_iter().next());
    }
    {
        let taken: std::collections::HashSet<*const SearchEntry> = users
            .iter()
            .flatten()
            .map(|(u, _)| *u as *const SearchEntry)
            .collect();
        for e in &entries {
            if !taken.contains(&(e as *const SearchEntry)) {
                warn!(connector = %instance, dn = %e.dn, "the server matched an entry that carries none of the subjects' identifiers exactly; left out");
            }
        }
    }

    // Every group that lists one of the batch's entries, read once.
    let targets: Vec<(&str, Vec<String>)> = users
        .iter()
        .flatten()
        .map(|(u, _)| (u.dn.as_str(), usernames(cfg, u)))
        .collect();
    let groups = if targets.is_empty() {
        vec![]
    } else {
        let filter = groups_filter(&targets);
        let wanted = ["objectClass", "member", "uniqueMember", "memberUid"];
        let (groups, res) = client
            .search(&cfg.group_base_dn, Scope::Subtree, &filter, &wanted)
            .await?;
        if res.rc != 0 {
            return Err(crate::classify::result("search", &cfg.group_base_dn, &res));
        }
        groups
    };
    // Each stored value indexed once (a DN value by its canonical form), not compared with every
    // entry of the batch.
    let mut by_dn: HashMap<Vec<Vec<(String, String)>>, Vec<Hit>> = HashMap::new();
    let mut by_uid: HashMap<&str, Vec<Hit>> = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        for (rank, name) in MEMBER_ATTRS.iter().enumerate() {
            for (pos, v) in attr(group, name).iter().enumerate() {
                if *name == "memberUid" {
                    by_uid.entry(v.as_str()).or_default().push((g, rank, pos));
                } else {
                    by_dn
                        .entry(normalize_dn(member_dn(v)))
                        .or_default()
                        .push((g, rank, pos));
                }
            }
        }
    }

    let mut out = Vec::with_capacity(subjects.len());
    for (subject, user) in subjects.iter().zip(users) {
        let Some((user, why)) = user else {
            debug!(connector = %instance, subject = %subject.id, "no ldap entry for the subject");
            out.push(Discovery::not_found(instance, subject.id.clone()));
            continue;
        };
        let names = usernames(cfg, user);
        let mut hits: Vec<Hit> = by_dn
            .get(&normalize_dn(&user.dn))
            .cloned()
            .unwrap_or_default();
        for n in &names {
            hits.extend(by_uid.get(n.as_str()).into_iter().flatten().copied());
        }
        hits.sort_unstable();
        hits.dedup();
        out.push(discovery_of(
            cfg, instance, subject, user, &why, &names, &groups, &hits,
        )?);
    }
    Ok(out)
}

/// One subject's discovery from its entry and the places its values were found in `groups`
/// (sorted by group, attribute, position).
#[allow(clippy::too_many_arguments)]
fn discovery_of(
    cfg: &LdapConfig,
    instance: &str,
    subject: &Subject,
    user: &SearchEntry,
    why: &[String],
    names: &[String],
    groups: &[SearchEntry],
    hits: &[Hit],
) -> Result<Discovery, ConnectorError> {
    let account = account_of(cfg, user, why)?;
    let finding = |kind: &str, target: &str, attrs: BTreeMap<String, String>| Finding {
        connector: instance.into(),
        subject: subject.id.clone(),
        kind: kind.into(),
        target: target.into(),
        attrs,
    };
    let mut attrs = BTreeMap::from([
        ("locked".to_string(), is_locked(cfg, user).to_string()),
        ("lock_method".to_string(), cfg.lock_method.to_string()),
    ]);
    if let Some(primary) = names.first() {
        attrs.insert("username".into(), primary.clone());
    }
    if names.len() > 1 {
        attrs.insert("usernames".into(), json_list(names));
    }
    let mut findings = vec![finding(ACCOUNT, &user.dn, attrs)];

    for per_group in hits.chunk_by(|a, b| a.0 == b.0) {
        let group = &groups[per_group[0].0];
        let found: Vec<(&'static str, String)> = per_group
            .iter()
            .map(|&(_, rank, pos)| {
                let name = MEMBER_ATTRS[rank];
                (name, attr(group, name)[pos].clone())
            })
            .collect();
        let mut kinds: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
        kinds.dedup();
        let mut attrs = BTreeMap::from([
            ("attribute".to_string(), kinds.join(",")),
            ("value".to_string(), found[0].1.clone()),
            (
                "sole_member".to_string(),
                (!emptied(group, &found).is_empty()).to_string(),
            ),
        ]);
        if found.len() > 1 {
            let all: Vec<String> = found.iter().map(|(a, v)| format!("{a}: {v}")).collect();
            attrs.insert("values".into(), json_list(&all));
        }
        findings.push(finding(GROUP_MEMBERSHIP, &group.dn, attrs));
    }
    findings.sort();
    debug!(connector = %instance, subject = %subject.id, dn = %user.dn, id = %account.id, groups = findings.len() - 1, "ldap discovery");
    Ok(Discovery {
        found: true,
        findings,
        accounts: vec![account],
        ..Discovery::not_found(instance, subject.id.clone())
    })
}

/// A list as one finding or param value (JSON, so any character in a value survives).
pub fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// The list `json_list` made; a value that is not one is a single item.
pub fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|_| vec![s.to_string()])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn cfg() -> LdapConfig {
        LdapConfig::from_value(&json!({
            "url": "ldap://h", "bind_dn": "cn=a,dc=org", "bind_password": "x",
            "user_base_dn": "ou=people,dc=org", "group_base_dn": "ou=groups,dc=org",
        }))
        .expect("config")
    }

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn the_subject_id_is_tried_as_each_identifier_only_where_none_is_given() {
        let c = cfg();
        assert_eq!(
            lookups(&c, "dir", &Subject::new("1004")),
            [
                ("uid", "1004"),
                ("mail", "1004"),
                ("employeeNumber", "1004")
            ]
        );
        let mut s = Subject::new("E-1");
        s.employee_id = Some("1".into());
        s.email = Some("Root@Acme.Test".into());
        s.usernames.insert("dir".into(), "root".into());
        assert_eq!(
            lookups(&c, "dir", &s),
            [
                ("uid", "root"),
                ("mail", "Root@Acme.Test"),
                ("employeeNumber", "1")
            ]
        );
        let mut c2 = cfg();
        c2.user_attribute = "mail".into();
        assert_eq!(
            lookups(&c2, "dir", &Subject::new("a@b")),
            [("mail", "a@b"), ("employeeNumber", "a@b")]
        );
    }

    #[test]
    fn an_account_answers_to_every_value_and_is_pinned_to_its_id() {
        let e = entry(
            "uid=kim,ou=people,dc=org",
            &[
                ("uid", &["kim.lee", "kim"]),
                ("mail", &["kim@x.test", "kim.lee@x.test"]),
                ("employeeNumber", &["1005"]),
                ("entryUUID", &["u-1"]),
            ],
        );
        let c = cfg();
        assert_eq!(usernames(&c, &e), ["kim", "kim.lee"]);
        let a = account_of(&c, &e, &["mail = kim@x.test".into()]).expect("account");
        assert_eq!((a.id.as_str(), a.id_kind.as_str()), ("u-1", "entryUUID"));
        assert_eq!(a.name, "uid=kim,ou=people,dc=org");
        assert_eq!(a.matched_by, "mail = kim@x.test");
        for i in [
            "kim",
            "kim.lee",
            "kim@x.test",
            "kim.lee@x.test",
            "1005",
            "u-1",
            "uid=kim,ou=people,dc=org",
        ] {
            assert!(a.identifiers.contains(i), "{i}: {:?}", a.identifiers);
        }
        assert_eq!(
            matched(&e, &[("uid", "KIM"), ("mail", "nobody")]),
            ["uid = KIM"]
        );
        // The directory's folds beyond case are not ours.
        assert!(matched(
            &e,
            &[
                ("uid", "ｋｉｍ"),
                ("uid", "\u{212A}im"),
                ("employeeNumber", "１００５")
            ]
        )
        .is_empty());

        let no_id = entry("cn=x,dc=org", &[("uid", &["x"])]);
        let err = account_of(&c, &no_id, &[]).expect_err("no id");
        assert_eq!(err.code, "missing_id");
        assert!(
            err.message.contains("entryUUID") && err.message.contains("cn=x,dc=org"),
            "{}",
            err.message
        );
        let two = entry("cn=x,dc=org", &[("entryUUID", &["a", "b"])]);
        assert_eq!(account_of(&c, &two, &[]).expect_err("two").code, "bad_id");
    }

    #[test]
    fn memberships_find_every_form_and_keep_the_stored_value() {
        let g = entry(
            "cn=g,ou=groups,dc=org",
            &[
                ("objectClass", &["groupOfUniqueNames", "posixGroup"]),
                (
                    "uniqueMember",
                    &["UID=Kim, ou=People,dc=org#'1'B", "uid=bob,ou=people,dc=org"],
                ),
                ("memberUid", &["kim.lee", "Kim", "bob"]),
            ],
        );
        let found = memberships(&g, &["uid=kim,ou=people,dc=org"], &["kim", "kim.lee"]);
        assert_eq!(
            found,
            [
                ("uniqueMember", "UID=Kim, ou=People,dc=org#'1'B".to_string()),
                ("memberUid", "kim.lee".to_string())
            ]
        );
        assert!(emptied(&g, &found).is_empty());
        let only = entry(
            "cn=o,dc=org",
            &[
                ("objectClass", &["groupOfNames"]),
                ("member", &["uid=kim,ou=people,dc=org"]),
            ],
        );
        let found = memberships(&only, &["uid=kim,ou=people,dc=org"], &[]);
        assert_eq!(emptied(&only, &found), ["member"]);
        assert_eq!(member_dn("uid=a,dc=org#'0101'B"), "uid=a,dc=org");
        assert_eq!(member_dn("cn=a#'x'B,dc=org"), "cn=a#'x'B,dc=org");
    }
}
