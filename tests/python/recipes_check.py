"""Drives a recipe stand-in (crates/testkit/src/recipes) with the vendor's own published client
and parses every answer into the client's models, so the stand-in answers in the vendor's shapes
and with the statuses the vendor's description declares.

    python recipes_check.py mattermost   # MM_URL, MM_TOKEN, MM_USER, MM_TEAM, MM_CHANNEL, MM_TOKEN_ID
    python recipes_check.py slack        # SLACK_URL, SLACK_TOKEN, SLACK_USER, SLACK_CHANNEL, SLACK_EMAIL

Run by connectors/http/tests/recipes.rs. Prints "<vendor>: ok" and one "note:" line per place
where the stand-in follows the vendor's server rather than its description (a status the
description does not declare); exits non-zero on the first mismatch.
"""

import os
import sys


def fail(msg):
    print(f"mismatch: {msg}")
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def mattermost():
    from mattermost_api_reference_client import AuthenticatedClient, errors
    from mattermost_api_reference_client.api.channels import (
        get_channel,
        get_channel_member,
        get_channels_for_user,
        remove_user_from_channel,
    )
    from mattermost_api_reference_client.api.teams import (
        get_team,
        get_team_member,
        get_teams_for_user,
        regenerate_team_invite_id,
        remove_team_member,
    )
    from mattermost_api_reference_client.api.users import (
        get_sessions,
        get_user,
        get_user_access_token,
        get_user_access_tokens_for_user,
        get_user_by_email,
        get_user_by_username,
        revoke_all_sessions,
        revoke_user_access_token,
        update_user_active,
    )
    from mattermost_api_reference_client.models import (
        AppError,
        Channel,
        ChannelMember,
        Session,
        StatusOK,
        Team,
        TeamMember,
        User,
        UserAccessTokenSanitized,
    )
    from mattermost_api_reference_client.models.revoke_user_access_token_body import (
        RevokeUserAccessTokenBody,
    )
    from mattermost_api_reference_client.models.update_user_active_body import (
        UpdateUserActiveBody,
    )
    from mattermost_api_reference_client.types import UNSET

    url, token = os.environ["MM_URL"], os.environ["MM_TOKEN"]
    user, team = os.environ["MM_USER"], os.environ["MM_TEAM"]
    channel, token_id = os.environ["MM_CHANNEL"], os.environ["MM_TOKEN_ID"]
    # Undeclared statuses raise: the stand-in must answer what the description declares.
    c = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
    loose = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=False)
    notes = []

    def call(what, fn, status, model, *args, **kw):
        r = fn.sync_detailed(*args, client=c, **kw)
        expect(r.status_code == status, f"{what}: status {r.status_code}, expected {status}: {r.content!r}")
        p = r.parsed
        if model is list:
            expect(isinstance(p, list), f"{what}: parsed {type(p).__name__}, expected a list")
        else:
            expect(isinstance(p, model), f"{what}: parsed {type(p).__name__}, expected {model.__name__}")
        return p

    def filled(what, obj, *fields):
        for f in fields:
            expect(getattr(obj, f) is not UNSET, f"{what}: {f} is missing")

    u = call("get_user_by_username", get_user_by_username, 200, User, "alice")
    filled("User", u, "id", "username", "email", "delete_at", "roles")
    expect(u.id == user and u.delete_at == 0, f"alice: {u}")
    u = call("get_user_by_email", get_user_by_email, 200, User, "alice@example.com")
    expect(u.id == user, "by email")
    call("get_user", get_user, 200, User, user)
    e = call("get_user_by_username (nobody)", get_user_by_username, 404, AppError, "nobody")
    filled("AppError", e, "status_code", "id", "message")
    call("get_user_by_username (../bob)", get_user_by_username, 400, AppError, "../bob")

    ss = call("get_sessions", get_sessions, 200, list, user)
    expect(len(ss) == 2 and all(isinstance(s, Session) and s.user_id == user for s in ss), f"sessions {ss}")
    ts = call("get_user_access_tokens_for_user", get_user_access_tokens_for_user, 200, list, user, page=0, per_page=100)
    expect(len(ts) == 2 and all(isinstance(t, UserAccessTokenSanitized) for t in ts), f"tokens {ts}")
    for t in ts:
        filled("UserAccessTokenSanitized", t, "id", "user_id", "description", "is_active")
    call("get_user_access_token", get_user_access_token, 200, UserAccessTokenSanitized, token_id)

    teams = call("get_teams_for_user", get_teams_for_user, 200, list, user)
    expect(all(isinstance(t, Team) for t in teams) and len(teams) == 2, f"teams {teams}")
    for t in teams:
        filled("Team", t, "id", "name", "type_", "invite_id")
    before = call("get_team", get_team, 200, Team, team)
    expect(before.type_ == "I", f"the team is invite only: {before.type_}")
    m = call("get_team_member", get_team_member, 200, TeamMember, team, user)
    filled("TeamMember", m, "team_id", "user_id", "delete_at")
    chans = call("get_channels_for_user", get_channels_for_user, 200, list, user)
    expect(all(isinstance(x, Channel) for x in chans), f"channels {chans}")
    for x in chans:
        filled("Channel", x, "id", "team_id", "type_", "name")
    expect({x.type_ for x in chans} == {"P", "O", "D"}, f"channel types {[x.type_ for x in chans]}")
    call("get_channel", get_channel, 200, Channel, channel)
    call("get_channel_member", get_channel_member, 200, ChannelMember, channel, user)

    # The recipe's writes, in its order.
    call("revoke_all_sessions", revoke_all_sessions, 200, StatusOK, user)
    expect(call("get_sessions", get_sessions, 200, list, user) == [], "sessions left")
    call("update_user_active", update_user_active, 200, StatusOK, user, body=UpdateUserActiveBody(active=False))
    u = call("get_user", get_user, 200, User, user)
    expect(u.delete_at > 0, "deactivated: delete_at is set")
    call("revoke_user_access_token", revoke_user_access_token, 200, StatusOK,
         body=RevokeUserAccessTokenBody(token_id=token_id))
    call("get_user_access_token (revoked)", get_user_access_token, 404, AppError, token_id)
    call("remove_user_from_channel", remove_user_from_channel, 200, StatusOK, channel, user)
    # The second removal: the server's not-found, which the description does not declare.
    try:
        remove_user_from_channel.sync_detailed(channel, user, client=c)
        fail("the second remove_user_from_channel should be a 404")
    except errors.UnexpectedStatus as ex:
        expect(ex.status_code == 404, f"second removal: {ex.status_code}")
        notes.append("remove_user_from_channel: 404 for a user not in the channel is not declared")
    r = get_channel_member.sync_detailed(channel, user, client=loose)
    expect(r.status_code == 404, f"channel member after removal: {r.status_code}")
    notes.append("get_channel_member: 404 for a user not in the channel is not declared")
    call("remove_team_member", remove_team_member, 200, StatusOK, team, user)
    m = call("get_team_member (removed)", get_team_member, 200, TeamMember, team, user)
    expect(m.delete_at > 0, "a removed team member is read with delete_at set")
    after = call("regenerate_team_invite_id", regenerate_team_invite_id, 200, Team, team)
    expect(after.invite_id != before.invite_id, "a new invite id")

    bad = AuthenticatedClient(base_url=url, token="not-the-token", raise_on_unexpected_status=True)
    r = get_user.sync_detailed(user, client=bad)
    expect(r.status_code == 401 and isinstance(r.parsed, AppError), f"bad token: {r.status_code}")
    for n in notes:
        print(f"note: {n}")
    print("mattermost: ok")


def slack_spec_checker():
    """Validates a Web API answer body against Slack's description (tests/recipes/
    slack-web.trimmed.json): `ok: true` against the method's 200 schema, `ok: false` against its
    `default` (error) schema, whose `error` is an enum of the method's documented errors. Slack
    answers both with HTTP 200; the description files the errors under `default`."""
    import json

    import jsonschema

    here = os.path.dirname(os.path.abspath(__file__))
    doc = json.load(open(os.path.join(here, "..", "recipes", "slack-web.trimmed.json")))
    checked = []

    def check(method, verb, body):
        which = "200" if body.get("ok") else "default"
        ptr = "/".join(["#", "paths", method.replace("/", "~1"), verb, "responses", which, "content", "application~1json", "schema"])
        schema = {"$ref": ptr, "paths": doc["paths"], "components": doc["components"]}
        errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        expect(not errors, f"{method} ({which}) against Slack's description: "
               + "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]))
        checked.append(f"{method}:{which}")
        return body

    return check, checked


def slack():
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.scim import SCIMClient

    url, token = os.environ["SLACK_URL"], os.environ["SLACK_TOKEN"]
    user, channel, email = os.environ["SLACK_USER"], os.environ["SLACK_CHANNEL"], os.environ["SLACK_EMAIL"]
    # The SDK's retry handlers are off: only revoked's executor retries.
    web = WebClient(token=token, base_url=f"{url}/api/", retry_handlers=[])
    # slack-sdk speaks Slack's SCIM v1 (the recipe's), at its default path /scim/v1/.
    scim = SCIMClient(token=token, base_url=f"{url}/scim/v1/", retry_handlers=[])

    r = scim.search_users(filter=f'userName eq "alice"', count=10, start_index=1)
    expect(r.status_code == 200, f"scim search: {r.status_code} {r.body}")
    expect(r.snake_cased_body["total_results"] == 1 and len(r.users) == 1, f"scim search: {r.body}")
    u = r.users[0]
    expect(u.id == user and u.user_name == "alice" and u.active is True, f"scim user: {u.to_dict()}")
    expect(any(e.value == email for e in u.emails), f"scim emails: {u.to_dict()}")
    r = scim.read_user(user)
    expect(r.status_code == 200 and r.user.id == user, f"scim read: {r.status_code} {r.body}")
    r = scim.search_users(filter='userName eq "nobody"', count=10, start_index=1)
    expect(r.status_code == 200 and r.snake_cased_body["total_results"] == 0 and r.users == [], f"scim nobody: {r.body}")
    r = scim.search_users(filter=f'email eq "{email}"', count=10, start_index=1)
    expect(r.status_code == 200 and [u.id for u in r.users] == [user], f"scim by email: {r.body}")

    spec, checked = slack_spec_checker()
    r = web.users_lookupByEmail(email=email)
    expect(r["ok"] and r["user"]["id"] == user, f"lookupByEmail: {r.data}")
    spec("/users.lookupByEmail", "get", r.data)
    r = web.users_info(user=user)
    expect(r["ok"] and r["user"]["id"] == user, f"users.info: {r.data}")
    spec("/users.info", "get", r.data)
    r = web.users_conversations(user=user, types="private_channel", limit=1)
    expect(r["ok"] and len(r["channels"]) == 1, f"users.conversations page 1: {r.data}")
    spec("/users.conversations", "get", r.data)
    cursor = r["response_metadata"]["next_cursor"]
    expect(cursor, f"a next cursor: {r.data}")
    r = web.users_conversations(user=user, types="private_channel", limit=1, cursor=cursor)
    expect(r["ok"] and len(r["channels"]) == 1, f"users.conversations page 2: {r.data}")
    spec("/users.conversations", "get", r.data)
    r = web.conversations_members(channel=channel, limit=1000)
    expect(r["ok"] and user in r["members"], f"conversations.members: {r.data}")
    spec("/conversations.members", "get", r.data)

    r = web.admin_users_session_reset(user_id=user)
    expect(r["ok"], f"session.reset: {r.data}")
    spec("/admin.users.session.reset", "post", r.data)
    r = web.conversations_kick(channel=channel, user=user)
    expect(r["ok"], f"kick: {r.data}")
    spec("/conversations.kick", "post", r.data)
    try:
        web.conversations_kick(channel=channel, user=user)
        fail("a second kick should be not_in_channel")
    except SlackApiError as ex:
        expect(ex.response.status_code == 200, f"ok:false is HTTP 200: {ex.response.status_code}")
        expect(ex.response["error"] == "not_in_channel", f"second kick: {ex.response.data}")
        spec("/conversations.kick", "post", ex.response.data)
    try:
        web.users_lookupByEmail(email="nobody@example.com")
        fail("an unknown email should be users_not_found")
    except SlackApiError as ex:
        expect(ex.response["error"] == "users_not_found", f"lookup nobody: {ex.response.data}")
        spec("/users.lookupByEmail", "get", ex.response.data)
    try:
        web.conversations_kick(channel="C99999999", user=user)
        fail("an unknown channel should be channel_not_found")
    except SlackApiError as ex:
        spec("/conversations.kick", "post", ex.response.data)

    r = scim.delete_user(user)
    expect(r.status_code in (200, 204), f"scim delete: {r.status_code} {r.body}")
    r = scim.read_user(user)
    expect(r.status_code == 200 and r.user.active is False, f"deactivated: {r.body}")

    bad = WebClient(token="xoxp-wrong", base_url=f"{url}/api/", retry_handlers=[])
    try:
        bad.admin_users_session_reset(user_id=user)
        fail("a wrong token should be invalid_auth")
    except SlackApiError as ex:
        expect(ex.response["error"] == "invalid_auth", f"bad token: {ex.response.data}")
        spec("/admin.users.session.reset", "post", ex.response.data)
    print(f"checked against Slack's description: {', '.join(checked)}")
    print("note: admin.users.session.list is not in the description (v1.7.0 predates it)")
    print("slack: ok")


def zendesk():
    """Zenpy (PyPI `zenpy`, a community client: Zendesk ships no Python SDK) drives the stand-in
    and parses its answers into its User objects."""
    url, token = os.environ["ZD_URL"], os.environ["ZD_TOKEN"]
    user, owner = int(os.environ["ZD_USER"]), int(os.environ["ZD_OWNER"])
    os.environ["ZENPY_FORCE_SCHEME"] = "http"
    os.environ["ZENPY_FORCE_NETLOC"] = url.split("://", 1)[1]
    from zenpy import Zenpy
    from zenpy.lib.api_objects import User
    from zenpy.lib.exception import APIException, RecordNotFoundException

    z = Zenpy(subdomain="example", oauth_token=token, disable_cache=True)
    found = list(z.users.search(query="alice@example.com"))
    expect(all(isinstance(u, User) for u in found), f"search: {found}")
    expect(user in [u.id for u in found], f"search lists alice: {[u.id for u in found]}")
    found = list(z.users.search(external_id="E1001"))
    expect([u.id for u in found] == [user], f"by external_id: {[u.id for u in found]}")
    u = z.users(id=user)
    expect(isinstance(u, User) and u.email.lower() == "alice@example.com" and u.role == "agent"
           and u.suspended is False and u.active is True, f"alice: {u.to_dict()}")
    u.suspended = True
    r = z.users.update(u)
    expect(isinstance(r, User) and r.suspended is True, f"suspended: {r}")
    r.role = "end-user"
    r = z.users.update(r)
    expect(r.role == "end-user", f"downgraded: {r.to_dict()}")
    r = z.users.delete(r)
    u = z.users(id=user)
    expect(u.active is False, f"deleted: {u.to_dict()}")
    try:
        z.users.delete(u)
        fail("a second delete should be a 404")
    except RecordNotFoundException:
        pass
    o = z.users(id=owner)
    o.suspended = True
    try:
        z.users.update(o)
        fail("the owner cannot be suspended")
    except APIException as ex:
        expect(ex.response.status_code == 422, f"owner: {ex.response.status_code}")
    print("zendesk: ok")


if __name__ == "__main__":
    {"mattermost": mattermost, "slack": slack, "zendesk": zendesk}[sys.argv[1]]()
