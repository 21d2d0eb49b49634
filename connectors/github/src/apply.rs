//! Apply and verify: resolve the pinned account, then read before every write, so a rerun sends
//! no mutation and a renamed login never leads to someone else.
//!
//! Every action is pinned to the account discovery saw: a user by numeric id, or an org
//! invitation by its id. Before anything else, apply and verify ask GitHub who that user is now
//! (`GET /user/{id}`): gone (404) means there is nothing left to remove; renamed means act on the
//! new login, unless the planned login now names another user (renamed and taken by a new
//! hire), which is the permanent `identity_changed` and sends nothing.
//!
//! Each action kind then has one read that says whether the access is still there (`present`)
//! and one mutation that removes it. `apply` sends the mutation only when the read says present;
//! `verify` is the same read afterwards. A 404 on the person is "already gone"; a 404 because
//! the org or the team is gone (or the credentials cannot see it) is a permanent error, decided
//! by asking for the org or team itself.

use http::{Method, StatusCode};
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::info;

use crate::classify;
use crate::client::Client;
use crate::discover::{invitation_account, INVITATION_ID, USER_ID};
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

/// Whom the action acts on now, after resolving its pin.
enum Now {
    /// The pinned user, by id, under the login they have now.
    User { id: u64, login: String },
    /// An org invitation, pinned by its own id.
    Invitation,
    /// The pinned user no longer exists: nothing of theirs is left to remove.
    Gone,
}

/// The pinned user, where resolved: every read and write names them by their login now.
struct Who<'a> {
    id: u64,
    login: &'a str,
    pin: &'a AccountPin,
}

impl Who<'_> {
    /// Whether a REST user object (or a membership's `user`) is the pinned user.
    fn is(&self, user: Option<&Value>) -> bool {
        user.and_then(|u| u.get("id")).and_then(Value::as_u64) == Some(self.id)
    }
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

/// Resolves the action's pin: who the pinned account is now (see the module docs).
async fn resolve(ctx: &Ctx<'_>, t: &Target<'_>) -> Result<Now, ConnectorError> {
    let action = t.action;
    let pin = action.pinned()?;
    match pin.id_kind.as_str() {
        USER_ID => {
            let id: u64 = pin
                .id
                .parse()
                .map_err(|_| bad(action, "pinned user id", &pin.id))?;
            let planned = t.param("login")?;
            if !planned.eq_ignore_ascii_case(&pin.name) {
                return Err(bad(action, "login (the pinned account's name)", planned));
            }
            let Some(user) = ctx.client.get_opt(&format!("/user/{id}")).await? else {
                // The account is deleted, unless the credentials lost sight of the org.
                org_must_exist(ctx, t).await?;
                info!(connector = %ctx.instance, action_id = %action.id.0, user_id = id, "the pinned github user no longer exists");
                return Ok(Now::Gone);
            };
            let login = user.get("login").and_then(Value::as_str).unwrap_or("");
            if user.get("id").and_then(Value::as_u64) != Some(id) || !is_login(login) {
                return Err(ConnectorError::permanent(
                    "bad_response",
                    format!(
                        "GET /user/{id}: expected user {id} with a login, found {:?}",
                        reply_excerpt(&user)
                    ),
                ));
            }
            let login = login.to_ascii_lowercase();
            if login == planned.to_ascii_lowercase() {
                return Ok(Now::User { id, login });
            }
            // Renamed since the plan. Whoever holds the planned login now is not ours to touch,
            // and a plan that names them is a plan to make again.
            let path = format!("/users/{}", seg(planned));
            if let Some(other) = ctx.client.get_opt(&path).await? {
                let other_id = other.get("id").and_then(Value::as_u64);
                if other_id != Some(id) {
                    let other_id = other_id.map(|i| i.to_string()).unwrap_or_default();
                    return Err(
                        pin.changed(format!("user id {other_id} (user id {id} is now {login})"))
                    );
                }
            }
            info!(connector = %ctx.instance, action_id = %action.id.0, user_id = id, planned = %planned, now = %login, "the pinned github user was renamed; acting on the new login");
            Ok(Now::User { id, login })
        }
        INVITATION_ID => {
            let expected = invitation_account(t.param("invitation_id")?);
            if pin.id != expected {
                return Err(bad(action, "pinned invitation", &pin.id));
            }
            Ok(Now::Invitation)
        }
        other => Err(bad(action, "kind of pinned account", other)),
    }
}

fn reply_excerpt(v: &Value) -> String {
    crate::reply::excerpt(&v.to_string())
}

fn has_id(items: &[Value], field: &str, id: u64) -> bool {
    items
        .iter()
        .any(|i| i.get(field).and_then(Value::as_u64) == Some(id))
}

/// Whether the access the action removes is still there. `who` is the pinned user (`None` for
/// an invitation's own action).
async fn present(
    ctx: &Ctx<'_>,
    t: &Target<'_>,
    who: Option<&Who<'_>>,
) -> Result<bool, ConnectorError> {
    let action = t.action;
    let org = t.org_path();
    let user = || {
        who.ok_or_else(|| {
            ConnectorError::permanent(
                "bad_action",
                format!(
                    "action {} ({}): expected an action pinned to a user, found an invitation",
                    action.id.0, action.kind.0
                ),
            )
        })
    };
    match action.kind.0.as_str() {
        REMOVE_ORG_MEMBER => {
            let who = user()?;
            let path = format!("{org}/memberships/{}", seg(who.login));
            match ctx.client.get_opt(&path).await? {
                Some(m) => {
                    same_user(who, m.get("user"))?;
                    Ok(true)
                }
                None => org_must_exist(ctx, t).await.map(|_| false),
            }
        }
        REMOVE_OUTSIDE_COLLABORATOR => {
            // What this action removes is the outside-collaborator status (every direct grant
            // at once): that is what is read, by the pinned id, and not a pending invitation.
            let who = user()?;
            let list = list_in_org(ctx, t, &format!("{org}/outside_collaborators")).await?;
            if list.iter().any(|u| who.is(Some(u))) {
                return Ok(true);
            }
            // Joined the org since the plan: still access, and the removal takes the member path.
            let path = format!("{org}/memberships/{}", seg(who.login));
            Ok(match ctx.client.get_opt(&path).await? {
                Some(m) => {
                    m.get("state").and_then(Value::as_str) == Some("active")
                        && who.is(m.get("user"))
                }
                None => false,
            })
        }
        REMOVE_TEAM_MEMBER => {
            let who = user()?;
            let team = t.param("team")?;
            let path = format!("{org}/teams/{}/memberships/{}", seg(team), seg(who.login));
            match ctx.client.get_opt(&path).await? {
                Some(_) => Ok(true),
                None => team_must_exist(ctx, t, team).await.map(|_| false),
            }
        }
        REMOVE_REPOSITORY_COLLABORATOR => {
            let who = user()?;
            let path = format!(
                "/repos/{}/{}/collaborators?affiliation=direct",
                seg(t.org),
                seg(t.param("repo")?)
            );
            // A repository that is gone grants nothing; the org must still be there.
            let list = list_in_org(ctx, t, &path).await?;
            Ok(list.iter().any(|u| who.is(Some(u))))
        }
        CANCEL_REPOSITORY_INVITATION => {
            let path = format!(
                "/repos/{}/{}/invitations",
                seg(t.org),
                seg(t.param("repo")?)
            );
            let list = list_in_org(ctx, t, &path).await?;
            Ok(has_id(&list, "id", t.id("invitation_id")?))
        }
        CANCEL_ORG_INVITATION => {
            let list = list_in_org(ctx, t, &format!("{org}/invitations")).await?;
            Ok(has_id(&list, "id", t.id("invitation_id")?))
        }
        REVOKE_CREDENTIAL_AUTHORIZATION => {
            // Filtered by the login the user has now; the id is checked here all the same.
            let path = format!(
                "{org}/credential-authorizations?login={}",
                query(user()?.login)
            );
            let list = list_in_org(ctx, t, &path).await?;
            Ok(has_id(&list, "credential_id", t.id("credential_id")?))
        }
        REVOKE_PERSONAL_ACCESS_TOKEN => {
            let path = format!(
                "{org}/personal-access-tokens?owner%5B%5D={}",
                query(user()?.login)
            );
            let list = list_in_org(ctx, t, &path).await?;
            Ok(has_id(&list, "id", t.id("token_id")?))
        }
        other => Err(ConnectorError::unknown_action(format!(
            "the github connector has no action {other:?}"
        ))),
    }
}

/// A membership read by login must be the pinned user's (a rename between the pin's
/// resolution and this read would show someone else).
fn same_user(who: &Who<'_>, user: Option<&Value>) -> Result<(), ConnectorError> {
    let other = user.and_then(|u| u.get("id")).and_then(Value::as_u64);
    match other {
        Some(o) if o != who.id => Err(who.pin.changed(format!("user id {o}"))),
        _ => Ok(()),
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

/// The mutation that removes the access; user paths name the pinned user's login now.
async fn mutate(
    ctx: &Ctx<'_>,
    t: &Target<'_>,
    who: Option<&Who<'_>>,
) -> Result<Outcome, ConnectorError> {
    let action = t.action;
    let org = t.org_path();
    let login = || {
        who.map(|w| w.login)
            .ok_or_else(|| bad(action, "pinned user", "an invitation"))
    };
    match action.kind.0.as_str() {
        REMOVE_ORG_MEMBER => remove_member(ctx, t, login()?).await,
        REMOVE_OUTSIDE_COLLABORATOR => {
            let login = login()?;
            let path = format!("{org}/outside_collaborators/{}", seg(login));
            let r = ctx.client.delete(&path).await?;
            if r.status == StatusCode::UNPROCESSABLE_ENTITY {
                // GitHub: "You cannot specify an organization member to remove as an outside
                // collaborator." They joined since the plan: take the member path.
                // Their direct grants outlive the membership: then remove them org-wide too.
                info!(connector = %ctx.instance, action_id = %action.id.0, "outside collaborator is now a member; removing the membership");
                remove_member(ctx, t, login).await?;
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
                    seg(login()?)
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
                    seg(login()?)
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
        other => Err(ConnectorError::unknown_action(format!(
            "the github connector has no action {other:?}"
        ))),
    }
}

/// `DELETE /orgs/{org}/memberships/{u}` removes a member or cancels a pending invitation; a
/// member with an invitation pending too may need it twice, so read again and repeat once.
async fn remove_member(
    ctx: &Ctx<'_>,
    t: &Target<'_>,
    login: &str,
) -> Result<Outcome, ConnectorError> {
    let path = format!("{}/memberships/{}", t.org_path(), seg(login));
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

/// The pinned account resolved, and the action's target checked: what `present` and `mutate`
/// need, or the outcome when the pinned user is gone.
async fn prepare<'a>(
    ctx: &Ctx<'_>,
    action: &'a Action,
) -> Result<(Target<'a>, Now), ConnectorError> {
    let t = Target::of(action)?;
    let now = resolve(ctx, &t).await?;
    Ok((t, now))
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    _key: &ActionKey,
) -> Result<Outcome, ConnectorError> {
    let (t, now) = prepare(ctx, action).await?;
    let pin = action.pinned()?;
    let who = match &now {
        Now::Gone => return Ok(Outcome::AlreadyDone),
        Now::User { id, login } => Some(Who {
            id: *id,
            login,
            pin,
        }),
        Now::Invitation => None,
    };
    if !present(ctx, &t, who.as_ref()).await? {
        return Ok(Outcome::AlreadyDone);
    }
    mutate(ctx, &t, who.as_ref()).await
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let (t, now) = prepare(ctx, action).await?;
    let pin = action.pinned()?;
    let who = match &now {
        Now::Gone => return Ok(Verdict::Confirmed),
        Now::User { id, login } => Some(Who {
            id: *id,
            login,
            pin,
        }),
        Now::Invitation => None,
    };
    Ok(if present(ctx, &t, who.as_ref()).await? {
        let holder = match &who {
            Some(w) => format!("{} (user id {})", w.login, w.id),
            None => pin.name.clone(),
        };
        Verdict::NotConfirmed {
            detail: format!("{holder} still holds {}", action.target),
        }
    } else {
        Verdict::Confirmed
    })
}
