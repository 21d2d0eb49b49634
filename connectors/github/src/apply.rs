//! Apply and verify: read before every write, so a rerun sends no mutation.
//!
//! Each action kind has one read that says whether the access is still there (`present`) and
//! one mutation that removes it. `apply` sends the mutation only when the read says present;
//! `verify` is the same read afterwards. A 404 on the person is "already gone"; a 404 because
//! the org or the team is gone (or the credentials cannot see it) is a permanent error, decided
//! by asking for the org or team itself.

use http::{Method, StatusCode};
use revoke_core::{Action, ActionKey, ConnectorError, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::info;

use crate::classify;
use crate::client::Client;
use crate::escape::{is_login, query, seg};
use crate::plan::{
    CANCEL_ORG_INVITATION, CANCEL_REPOSITORY_INVITATION, REMOVE_ORG_MEMBER,
    REMOVE_OUTSIDE_COLLABORATOR, REMOVE_REPOSITORY_COLLABORATOR, REMOVE_TEAM_MEMBER,
    REVOKE_CREDENTIAL_AUTHORIZATION, REVOKE_PERSONAL_ACCESS_TOKEN,
};
use crate::reply::Reply;

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub instance: &'a str,
}

/// The parameters every action carries, checked again: a plan file is input too.
struct Target<'a> {
    org: &'a str,
    action: &'a Action,
}

impl<'a> Target<'a> {
    fn of(action: &'a Action) -> Result<Self, ConnectorError> {
        let p = |k: &str| action.params.get(k).map(String::as_str).unwrap_or("");
        let org = p("org");
        if !is_login(org) {
            return Err(bad(action, "org", org));
        }
        let login = p("login");
        if !login.is_empty() && !is_login(login) {
            return Err(bad(action, "login", login));
        }
        Ok(Self { org, action })
    }

    fn param(&self, k: &str) -> Result<&'a str, ConnectorError> {
        match self.action.params.get(k).map(String::as_str) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(bad(self.action, k, "")),
        }
    }

    fn id(&self, k: &str) -> Result<u64, ConnectorError> {
        let v = self.param(k)?;
        v.parse().map_err(|_| bad(self.action, k, v))
    }

    fn org_path(&self) -> String {
        format!("/orgs/{}", seg(self.org))
    }
}

fn bad(action: &Action, key: &str, found: &str) -> ConnectorError {
    ConnectorError::permanent(
        "bad_action",
        format!(
            "action {} ({}): expected a valid {key}, found {found:?}",
            action.id.0, action.kind.0
        ),
    )
}

/// A 404 that must not be read as "already gone": is the org itself there?
async fn org_must_exist(ctx: &Ctx<'_>, t: &Target<'_>) -> Result<(), ConnectorError> {
    match ctx.client.get_opt(&t.org_path()).await? {
        Some(_) => Ok(()),
        None => Err(ConnectorError::permanent(
            "org_not_found",
            format!(
                "organization {:?} not found, or the credentials cannot see it",
                t.org
            ),
        )),
    }
}

async fn team_must_exist(ctx: &Ctx<'_>, t: &Target<'_>, team: &str) -> Result<(), ConnectorError> {
    org_must_exist(ctx, t).await?;
    let path = format!("{}/teams/{}", t.org_path(), seg(team));
    match ctx.client.get_opt(&path).await? {
        Some(_) => Ok(()),
        None => Err(ConnectorError::permanent(
            "team_not_found",
            format!("team {team:?} of {:?} not found", t.org),
        )),
    }
}

/// A list, where a 404 means the org is gone.
async fn list_in_org(
    ctx: &Ctx<'_>,
    t: &Target<'_>,
    path: &str,
) -> Result<Vec<Value>, ConnectorError> {
    match ctx.client.list(path).await? {
        Some(items) => Ok(items),
        None => {
            org_must_exist(ctx, t).await?;
            Ok(vec![])
        }
    }
}

fn has_id(items: &[Value], field: &str, id: u64) -> bool {
    items
        .iter()
        .any(|i| i.get(field).and_then(Value::as_u64) == Some(id))
}

/// Whether the access the action removes is still there.
async fn present(ctx: &Ctx<'_>, action: &Action) -> Result<bool, ConnectorError> {
    let t = Target::of(action)?;
    let org = t.org_path();
    match action.kind.0.as_str() {
        REMOVE_ORG_MEMBER => {
            let path = format!("{org}/memberships/{}", seg(t.param("login")?));
            match ctx.client.get_opt(&path).await? {
                Some(_) => Ok(true),
                None => org_must_exist(ctx, &t).await.map(|_| false),
            }
        }
        REMOVE_OUTSIDE_COLLABORATOR => {
            let login = t.param("login")?;
            let list = list_in_org(ctx, &t, &format!("{org}/outside_collaborators")).await?;
            let outside = list.iter().any(|u| {
                u.get("login")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.eq_ignore_ascii_case(login))
            });
            if outside {
                return Ok(true);
            }
            // Joined the org since the plan: still access, and the removal takes the member path.
            let path = format!("{org}/memberships/{}", seg(login));
            Ok(ctx.client.get_opt(&path).await?.is_some())
        }
        REMOVE_TEAM_MEMBER => {
            let team = t.param("team")?;
            let path = format!(
                "{org}/teams/{}/memberships/{}",
                seg(team),
                seg(t.param("login")?)
            );
            match ctx.client.get_opt(&path).await? {
                Some(_) => Ok(true),
                None => team_must_exist(ctx, &t, team).await.map(|_| false),
            }
        }
        REMOVE_REPOSITORY_COLLABORATOR => {
            let login = t.param("login")?;
            let path = format!(
                "/repos/{}/{}/collaborators?affiliation=direct",
                seg(t.org),
                seg(t.param("repo")?)
            );
            // A repository that is gone grants nothing; the org must still be there.
            let list = list_in_org(ctx, &t, &path).await?;
            Ok(list.iter().any(|u| {
                u.get("login")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.eq_ignore_ascii_case(login))
            }))
        }
        CANCEL_REPOSITORY_INVITATION => {
            let path = format!(
                "/repos/{}/{}/invitations",
                seg(t.org),
                seg(t.param("repo")?)
            );
            let list = list_in_org(ctx, &t, &path).await?;
            Ok(has_id(&list, "id", t.id("invitation_id")?))
        }
        CANCEL_ORG_INVITATION => {
            let list = list_in_org(ctx, &t, &format!("{org}/invitations")).await?;
            Ok(has_id(&list, "id", t.id("invitation_id")?))
        }
        REVOKE_CREDENTIAL_AUTHORIZATION => {
            let path = format!(
                "{org}/credential-authorizations?login={}",
                query(t.param("login")?)
            );
            let list = list_in_org(ctx, &t, &path).await?;
            Ok(has_id(&list, "credential_id", t.id("credential_id")?))
        }
        REVOKE_PERSONAL_ACCESS_TOKEN => {
            let path = format!(
                "{org}/personal-access-tokens?owner%5B%5D={}",
                query(t.param("login")?)
            );
            let list = list_in_org(ctx, &t, &path).await?;
            Ok(has_id(&list, "id", t.id("token_id")?))
        }
        other => Err(ConnectorError::permanent(
            "unknown_action",
            format!("the github connector has no action {other:?}"),
        )),
    }
}

/// 204 (or 202/200) is done; 404 after a read said present means someone else was faster.
fn judged(method: Method, path: &str, r: &Reply) -> Result<Outcome, ConnectorError> {
    match r.status {
        s if s.is_success() => Ok(Outcome::Done),
        StatusCode::NOT_FOUND => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&method, path, r)),
    }
}

async fn delete(ctx: &Ctx<'_>, path: &str) -> Result<Outcome, ConnectorError> {
    let r = ctx.client.delete(path).await?;
    judged(Method::DELETE, path, &r)
}

/// The mutation that removes the access.
async fn mutate(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let t = Target::of(action)?;
    let org = t.org_path();
    match action.kind.0.as_str() {
        REMOVE_ORG_MEMBER => remove_member(ctx, &t).await,
        REMOVE_OUTSIDE_COLLABORATOR => {
            let path = format!("{org}/outside_collaborators/{}", seg(t.param("login")?));
            let r = ctx.client.delete(&path).await?;
            if r.status == StatusCode::UNPROCESSABLE_ENTITY {
                // GitHub: "You cannot specify an organization member to remove as an outside
                // collaborator." They joined since the plan: take the member path.
                // Their direct grants outlive the membership: then remove them org-wide too.
                info!(connector = %ctx.instance, action_id = %action.id.0, "outside collaborator is now a member; removing the membership");
                remove_member(ctx, &t).await?;
                let r = ctx.client.delete(&path).await?;
                judged(Method::DELETE, &path, &r)?;
                return Ok(Outcome::Done);
            }
            judged(Method::DELETE, &path, &r)
        }
        REMOVE_TEAM_MEMBER => {
            delete(
                ctx,
                &format!(
                    "{org}/teams/{}/memberships/{}",
                    seg(t.param("team")?),
                    seg(t.param("login")?)
                ),
            )
            .await
        }
        REMOVE_REPOSITORY_COLLABORATOR => {
            delete(
                ctx,
                &format!(
                    "/repos/{}/{}/collaborators/{}",
                    seg(t.org),
                    seg(t.param("repo")?),
                    seg(t.param("login")?)
                ),
            )
            .await
        }
        CANCEL_REPOSITORY_INVITATION => {
            delete(
                ctx,
                &format!(
                    "/repos/{}/{}/invitations/{}",
                    seg(t.org),
                    seg(t.param("repo")?),
                    t.id("invitation_id")?
                ),
            )
            .await
        }
        CANCEL_ORG_INVITATION => {
            delete(
                ctx,
                &format!("{org}/invitations/{}", t.id("invitation_id")?),
            )
            .await
        }
        REVOKE_CREDENTIAL_AUTHORIZATION => {
            delete(
                ctx,
                &format!("{org}/credential-authorizations/{}", t.id("credential_id")?),
            )
            .await
        }
        REVOKE_PERSONAL_ACCESS_TOKEN => {
            let path = format!("{org}/personal-access-tokens/{}", t.id("token_id")?);
            let r = ctx.client.post(&path, &json!({"action": "revoke"})).await?;
            judged(Method::POST, &path, &r)
        }
        other => Err(ConnectorError::permanent(
            "unknown_action",
            format!("the github connector has no action {other:?}"),
        )),
    }
}

/// `DELETE /orgs/{org}/memberships/{u}` removes a member or cancels a pending invitation; a
/// member with an invitation pending too may need it twice, so read again and repeat once.
async fn remove_member(ctx: &Ctx<'_>, t: &Target<'_>) -> Result<Outcome, ConnectorError> {
    let path = format!("{}/memberships/{}", t.org_path(), seg(t.param("login")?));
    let mut outcome = Outcome::AlreadyDone;
    for _ in 0..2 {
        let r = ctx.client.delete(&path).await?;
        match judged(Method::DELETE, &path, &r)? {
            Outcome::Done => outcome = Outcome::Done,
            _ => break,
        }
        if ctx.client.get_opt(&path).await?.is_none() {
            break;
        }
    }
    Ok(outcome)
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    _key: &ActionKey,
) -> Result<Outcome, ConnectorError> {
    if !present(ctx, action).await? {
        return Ok(Outcome::AlreadyDone);
    }
    mutate(ctx, action).await
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    Ok(if present(ctx, action).await? {
        Verdict::NotConfirmed {
            detail: format!(
                "{} still holds {}",
                action
                    .params
                    .get("login")
                    .or(action.params.get("email"))
                    .map(String::as_str)
                    .unwrap_or("the subject"),
                action.target
            ),
        }
    } else {
        Verdict::Confirmed
    })
}
