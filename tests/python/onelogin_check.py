"""Drives the OneLogin stand-in with OneLogin's own Python SDK (`onelogin` 3.x).

Usage: onelogin_check.py URL CLIENT_ID CLIENT_SECRET EMAIL ROLE_NAME

Gets a token (client credentials, basic auth), lists users by email (reading the pagination
headers), reads the user, lists roles and a role's users, removes the user from the role with
the batch call, suspends the user, logs them out (v1), deletes them and reads them again (404).
Every answer goes through the SDK's strict pydantic models, so a shape the SDK would not accept
fails here. Prints one JSON object with what it saw; exits non-zero on any surprise.
"""

import json
import sys

import onelogin
from onelogin.exceptions import ApiException, NotFoundException


def main():
    url, client_id, client_secret, email, role_name = sys.argv[1:6]
    seen = {}

    cfg = onelogin.Configuration(host=url, username=client_id, password=client_secret)
    api = onelogin.ApiClient(cfg)

    token = onelogin.OAuth2Api(api).generate_token(
        onelogin.GenerateTokenRequest(grant_type="client_credentials")
    )
    assert isinstance(token, onelogin.OauthToken), type(token)
    assert token.access_token and token.token_type == "bearer", token
    seen["expires_in"] = token.expires_in
    cfg.access_token = token.access_token

    users = onelogin.UsersV2Api(api)
    listed = users.list_users2_with_http_info(email=email, limit=10)
    assert listed.status_code == 200, listed.status_code
    headers = {k.lower(): v for k, v in listed.headers.items()}
    seen["pagination"] = {
        k: headers.get(k) for k in ("total-pages", "current-page", "total-count", "page-items")
    }
    seen["rate_limit"] = {
        k: headers.get(k)
        for k in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
    }
    found = listed.data
    assert len(found) == 1 and isinstance(found[0], onelogin.User), found
    user_id = found[0].id
    seen["user"] = {"id": user_id, "email": found[0].email, "status": found[0].status}

    detail = users.get_user2(user_id)
    seen["role_ids"] = detail.role_ids

    roles_api = onelogin.RolesApi(api)
    roles = roles_api.list_roles()
    assert all(isinstance(r, onelogin.Role) for r in roles), roles
    role = next(r for r in roles if r.name == role_name)
    seen["role"] = {"id": role.id, "name": role.name, "users": role.users}

    members = roles_api.get_role_users(str(role.id))
    seen["role_users_before"] = sorted(m.id for m in members)

    roles_api.remove_role_users(
        str(role.id), onelogin.RemoveRoleUsersRequest(user_id=[user_id])
    )
    seen["role_users_after"] = sorted(m.id for m in roles_api.get_role_users(str(role.id)))

    updated = users.update_user2(user_id, user=onelogin.User(status=2))
    seen["status_after_update"] = updated.status

    # The SDK's model of this answer is a flat Error ({code, message, ...}); OneLogin's API
    # reference shows v1's envelope ({"status": {code, message, ...}}), which the stand-in
    # answers. Read it raw: only its status code is relied on.
    raw = onelogin.UsersV1Api(api).log_out_user_with_http_info(user_id, _preload_content=False)
    seen["logout"] = {"http": raw.status_code, "body": json.loads(raw.raw_data)}

    users.delete_user2(user_id)
    try:
        users.get_user2(user_id)
        seen["after_delete"] = "still there"
    except NotFoundException as e:
        seen["after_delete"] = {"status": e.status, "body": json.loads(e.body)}

    cfg.access_token = "not-a-token"
    try:
        users.get_user2(user_id)
        seen["bad_token"] = "accepted"
    except ApiException as e:
        seen["bad_token"] = e.status

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
