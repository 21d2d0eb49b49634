"""Drives the Okta stand-in (through Prism) with Okta's own Python SDK (`okta` 3.4.6).

Usage: OKTA_TESTING_TESTINGDISABLEHTTPSCHECK=true okta_check.py URL TOKEN LOGIN APP_GROUP_NAME
       OKTA_TESTING_TESTINGDISABLEHTTPSCHECK=true okta_check.py --oauth URL CLIENT_ID KEY_PEM_FILE KID LOGIN TOKEN

The second form signs in as an OAuth 2.0 service app with the SDK's own private_key_jwt
assertion and DPoP (its own proofs, its own nonce round), reads the user, their groups and apps,
and parses each app's embedded app user (`expand=user/{id}`, fetched with the API token TOKEN)
with the SDK's `AppUser` model: the SDK 3.4.6's `ApplicationEmbedded.user` is typed
`Dict[str, Dict]` and rejects the app user Okta documents there, so it is parsed directly.

Searches the user by login, reads them, lists their groups, admin roles, factors, grants and apps
(with the app user of each), then does what the connector does: suspends, revokes sessions with
OAuth tokens, resets factors, revokes grants, removes each OKTA_GROUP membership, each direct app assignment and each admin role,
deactivates, deletes twice (Okta's two-step delete) and reads them again (404 E0000007). The
SDK parses every answer with its strict pydantic models (a status such as DEACTIVATED, a missing
required field or a wrong type fails there), so a shape the SDK would not accept fails here.
Prints one JSON object with what it saw; exits non-zero on any surprise.
"""

import asyncio
import json
import sys

from okta.client import Client


def inner(x):
    """The model a oneOf wrapper holds (GroupProfile, a role assignment), else x itself."""
    return getattr(x, "actual_instance", None) or x


def group_name(g):
    return inner(g.profile).name


def status(resp):
    return getattr(resp, "status_code", None) or getattr(resp, "status", None)


def ok(triple, what):
    """The SDK answers (result, response, error); an error is a surprise."""
    if len(triple) == 3:
        result, resp, err = triple
    else:
        result, err = None, triple[-1]
        resp = triple[0]
    if err is not None:
        raise SystemExit(f"{what}: {err!r}")
    return result, resp


async def main():
    url, token, login, app_group = sys.argv[1:5]
    seen = {}
    # okta 3.4.6 builds its per-call header as "SSWS" + token, without the space its
    # RequestExecutor puts there ("SSWS00abc..."); the stand-in, like Okta, wants "SSWS <token>".
    # A leading space in the configured token gives that header (checked by the stand-in's 401).
    client = Client({"orgUrl": url, "token": " " + token, "rateLimit": {"maxRetries": 0}})

    users, resp = ok(await client.list_users(search=f'profile.login eq "{login}"', limit=10), "list_users")
    assert len(users) == 1, users
    user = users[0]
    uid = user.id
    seen["user"] = {"id": uid, "status": str(user.status.value), "login": user.profile.login}
    headers = {k.lower(): v for k, v in resp.headers.items()}
    seen["rate_limit"] = {k: headers.get(k) for k in ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")}

    got, _ = ok(await client.get_user(uid), "get_user")
    assert got.id == uid and got.profile.email, got

    groups, _ = ok(await client.list_user_groups(uid), "list_user_groups")
    seen["groups"] = sorted((group_name(g), str(g.type.value)) for g in groups)
    roles, _ = ok(await client.list_assigned_roles_for_user(uid), "list_assigned_roles_for_user")
    roles = [inner(r) for r in roles]
    seen["role_models"] = sorted({type(r).__name__ for r in roles})
    seen["roles"] = sorted((str(r.type.value), str(r.assignment_type.value)) for r in roles)
    factors, _ = ok(await client.list_factors(uid), "list_factors")
    seen["factors"] = sorted(str(f.factor_type.value) for f in factors)
    grants, _ = ok(await client.list_user_grants(uid), "list_user_grants")
    seen["grants"] = len(grants)
    apps, _ = ok(await client.list_applications(filter=f'user.id eq "{uid}"'), "list_applications")
    apps = [inner(a) for a in apps]
    seen["app_models"] = sorted({type(a).__name__ for a in apps})
    seen["apps"] = []
    for a in apps:
        au, _ = ok(await client.get_application_user(a.id, uid), "get_application_user")
        seen["apps"].append((a.label, au.scope))
    seen["apps"].sort()

    ok(await client.suspend_user(uid), "suspend_user")
    got, _ = ok(await client.get_user(uid), "get_user after suspend")
    seen["after_suspend"] = str(got.status.value)
    ok(await client.revoke_user_sessions(uid, oauth_tokens=True), "revoke_user_sessions")
    ok(await client.reset_factors(uid), "reset_factors")
    ok(await client.revoke_user_grants(uid), "revoke_user_grants")
    factors, _ = ok(await client.list_factors(uid), "list_factors after")
    grants, _ = ok(await client.list_user_grants(uid), "list_user_grants after")
    seen["factors_grants_after"] = [len(factors), len(grants)]
    for g in groups:
        if str(g.type.value) == "OKTA_GROUP":
            ok(await client.unassign_user_from_group(g.id, uid), "unassign_user_from_group")
    for a in apps:
        au, _ = ok(await client.get_application_user(a.id, uid), "get_application_user")
        if au.scope == "USER":
            ok(await client.unassign_user_from_application(a.id, uid), "unassign_user_from_application")
    for r in roles:
        if str(r.assignment_type.value) == "USER":
            ok(await client.unassign_role_from_user(uid, r.id), "unassign_role_from_user")
    groups, _ = ok(await client.list_user_groups(uid), "list_user_groups after")
    seen["groups_after"] = sorted(group_name(g) for g in groups)
    assert app_group in seen["groups_after"], seen
    roles, _ = ok(await client.list_assigned_roles_for_user(uid), "roles after")
    seen["roles_after"] = sorted(str(inner(r).assignment_type.value) for r in roles)

    ok(await client.deactivate_user(uid, send_email=False), "deactivate_user")
    got, _ = ok(await client.get_user(uid), "get_user after deactivate")
    seen["after_deactivate"] = str(got.status.value)
    _, resp = ok(await client.delete_user(uid), "delete_user")
    seen["delete_status"] = status(resp)
    answer = await client.get_user(uid)
    resp, err = answer[-2], answer[-1]
    assert err is not None, answer
    seen["after_delete"] = {"status": status(resp), "error": str(err)}
    print(json.dumps(seen, sort_keys=True))


async def oauth_main():
    url, client_id, key_file, kid, login, token = sys.argv[2:8]
    import urllib.parse
    import urllib.request

    from okta.models.app_user import AppUser

    with open(key_file) as f:
        pem = f.read()
    client = Client({
        "orgUrl": url,
        "authorizationMode": "PrivateKey",
        "clientId": client_id,
        "scopes": ["okta.users.manage", "okta.groups.manage", "okta.apps.manage"],
        "privateKey": pem,
        "kid": kid,
        "dpopEnabled": True,
        "rateLimit": {"maxRetries": 0},
    })
    seen = {}
    users, _ = ok(await client.list_users(search=f'profile.login eq "{login}"', limit=10), "list_users")
    assert len(users) == 1, users
    uid = users[0].id
    got, _ = ok(await client.get_user(uid), "get_user")
    seen["user"] = {"id": got.id, "login": got.profile.login}
    groups, _ = ok(await client.list_user_groups(uid), "list_user_groups")
    seen["groups"] = sorted(group_name(g) for g in groups)
    oauth = client.get_request_executor()._oauth
    seen["token_type"] = oauth.get_current_token()[1]

    expr = urllib.parse.quote(f'user.id eq "{uid}"')
    req = urllib.request.Request(
        f"{url}/api/v1/apps?filter={expr}&expand=user%2F{uid}",
        headers={"Authorization": f"SSWS {token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        apps = json.loads(r.read())
    seen["embedded"] = sorted(
        (a["label"], AppUser.from_dict(a["_embedded"]["user"]).scope) for a in apps
    )
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(oauth_main() if sys.argv[1:2] == ["--oauth"] else main())
