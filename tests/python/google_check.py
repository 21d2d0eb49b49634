"""Drives the Google Workspace stand-in with Google's own Python client (google-api-python-client).

Usage: google_check.py all API_URL KEY_FILE ADMIN LEAVER NEW_OWNER ALIAS EMPLOYEE_ID PRODUCT/SKU
       google_check.py storm API_URL KEY_FILE ADMIN
       google_check.py drive API_URL KEY_FILE ADMIN LEAVER NEW_OWNER FOLDER_NAME DRIVE_NAME
       google_check.py requests REQUESTS_JSON

The services are built from the discovery documents the package ships (`static_discovery=True`:
admin directory_v1 and datatransfer_v1, gmail v1, licensing v1, drive v3) with
`client_options={"api_endpoint": API_URL}` (Prism in front of the stand-in), and authenticated
by google-auth's own service-account credentials with domain-wide delegation: the key's
`token_uri` is the stand-in's, so google-auth signs the RFC 7523 assertion and fetches the tokens
itself (as the admin for the Admin SDK and Licensing, as the leaver for Gmail and Drive).

`all` calls every endpoint the connector uses, reads first, then the writes in the connector's
order (Gmail while the user is active, the transfer, the suspension, the removals, the delete),
then the refusals Google answers (404 on what is gone, 409 on a forwarding address that exists,
400 failedPrecondition on a suspended user's Gmail). `storm` reads the admin until an answer comes
(the test has set 403 rate-limit storms, or taken the admin's rights) and reports how Google's
client reads each refusal. `drive` calls the endpoints of mobile
devices, 2-step verification, shared drives and the archive: the leaver's devices listed, read
and account-wiped, 2SV turned off, the leaver's membership of a shared drive found and removed
(as the admin, `useDomainAdminAccess`), and the folder the transfer gave the new owner found,
moved into the shared drive and stamped with `appProperties` (as the new owner); on the way,
what a client job's scan reads (a user's own files with their permissions, a shared drive's files
with `hasAugmentedPermissions`, a file's own permissions with `permissionDetails`).

`requests` reads the requests another client sent (the connector's, from the stand-in's
recorder: a JSON list of {method, path, query, body}) and has Google's client build each one
again from the discovery documents: the method is found by its path template, every query
parameter must be one the method declares, the values must pass the client's own checks
(required, pattern, enum, type), the body the method's request schema, and the URL and body
Google's client builds must be the ones sent (the query compared as a set, `alt=json` aside).
Prints {"checked": N, "methods": [...], "problems": [...]}.

Every answer is checked against the response schema of its method in the discovery document:
a field the schema does not declare, a value of the wrong JSON type (int64 is a string in
Google's JSON), a value outside an enum is a "problem". Prints one JSON object with what it saw
(the test asserts on it); exits non-zero on any surprise the client raises.
"""

import json
import sys

from google.oauth2 import service_account
from googleapiclient import discovery
from googleapiclient.errors import HttpError
from googleapiclient.http import _should_retry_response

# The scopes the connector asks for (connectors/google-workspace/src/client.rs).
ADMIN_SCOPES = [
    "https://www.googleapis.com/auth/admin.directory.user",
    "https://www.googleapis.com/auth/admin.directory.user.security",
    "https://www.googleapis.com/auth/admin.directory.group.member",
    "https://www.googleapis.com/auth/admin.directory.rolemanagement",
    "https://www.googleapis.com/auth/admin.datatransfer",
    "https://www.googleapis.com/auth/apps.licensing",
]
GMAIL_SCOPES = [
    "https://www.googleapis.com/auth/gmail.settings.basic",
    "https://www.googleapis.com/auth/gmail.settings.sharing",
]
DRIVE_SCOPES = ["https://www.googleapis.com/auth/drive.metadata.readonly"]
DRIVE_APP_ID = "55656082996"

problems = []


class Api:
    """One service built from its shipped discovery document, and that document's schemas."""

    def __init__(self, name, version, endpoint, credentials):
        self.service = discovery.build(
            name,
            version,
            credentials=credentials,
            static_discovery=True,
            cache_discovery=False,
            num_retries=0,
            client_options={"api_endpoint": endpoint},
        )
        self.doc = _document(name, version)

    def method_doc(self, dotted):
        node = self.doc
        *resources, method = dotted.split(".")
        for r in resources:
            node = node["resources"][r]
        return node["methods"][method]

    def call(self, dotted, **params):
        """Calls `resource.sub.method(**params)`, checks the answer against its schema."""
        node = self.service
        *resources, method = dotted.split(".")
        for r in resources:
            node = getattr(node, r)()
        answer = getattr(node, method)(**params).execute(num_retries=0)
        response = self.method_doc(dotted).get("response")
        if response is None:
            # A method without a response body (a delete, signOut): Google answers 204 and the
            # client hands back an empty string.
            if answer not in ("", None, {}):
                problems.append(f"{dotted}: expected no body, got {answer!r}")
        else:
            check(self.doc, response, answer, dotted)
        return answer

    def refused(self, dotted, **params):
        """Calls a method that must fail; returns how Google's client reads the refusal."""
        try:
            answer = self.call(dotted, **params)
        except HttpError as e:
            return refusal(e)
        raise AssertionError(f"{dotted} should have been refused, got {answer!r}")


def refusal(e):
    details = e.error_details if isinstance(e.error_details, list) else []
    out = {
        "status": e.status_code,
        "message": e.reason,
        "reasons": [d.get("reason") for d in details if isinstance(d, dict)],
        "retried_by_google_client": _should_retry_response(e.status_code, e.content),
    }
    if not out["reasons"]:
        # Not Google's error body: keep what came, to tell who answered.
        out["body"] = e.content.decode("utf-8", "replace")[:500]
    return out


def _document(name, version):
    from googleapiclient.discovery_cache import get_static_doc

    return json.loads(get_static_doc(name, version))


def check(doc, schema, value, where, nulls=False):
    """Records every way `value` breaks `schema` (a discovery JSON schema) in `problems`; with
    `nulls`, a null is taken anywhere (in a request body it clears a field: Drive's
    appProperties, for one)."""
    if nulls and value is None:
        return
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    kind = schema.get("type")
    if kind == "any" or kind is None:
        return
    if kind == "object":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object, got {value!r}")
            return
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                check(doc, props[k], v, f"{where}.{k}", nulls)
            elif extra is not None:
                check(doc, extra, v, f"{where}.{k}", nulls)
            else:
                problems.append(f"{where}: field {k!r} is not in the schema")
    elif kind == "array":
        if not isinstance(value, list):
            problems.append(f"{where}: expected an array, got {value!r}")
            return
        for i, v in enumerate(value):
            check(doc, schema.get("items", {}), v, f"{where}[{i}]", nulls)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
            return
        if schema.get("format") in ("int64", "uint64"):
            try:
                int(value)
            except ValueError:
                problems.append(f"{where}: expected an int64 as a string, got {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer, got {value!r}")
    elif kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean, got {value!r}")


def credentials(key, scopes, subject):
    return service_account.Credentials.from_service_account_info(
        key, scopes=scopes, subject=subject
    )


def services(url, key, admin, user=None):
    endpoint = url.rstrip("/") + "/"
    admin_creds = credentials(key, ADMIN_SCOPES, admin)
    out = {
        "directory": Api("admin", "directory_v1", endpoint, admin_creds),
        "transfer": Api("admin", "datatransfer_v1", endpoint, admin_creds),
        "licensing": Api("licensing", "v1", endpoint, admin_creds),
    }
    if user:
        out["gmail"] = Api("gmail", "v1", endpoint, credentials(key, GMAIL_SCOPES, user))
        # Drive's servicePath (drive/v3/) is part of its base URL; api_endpoint replaces both.
        out["drive"] = Api(
            "drive", "v3", endpoint + "drive/v3/", credentials(key, DRIVE_SCOPES, user)
        )
    return out


def run_all(url, key, admin, leaver, new_owner, alias, employee_id, licence):
    s = services(url, key, admin, leaver)
    directory, transfer, licensing = s["directory"], s["transfer"], s["licensing"]
    gmail, drive = s["gmail"], s["drive"]
    product, sku = licence.split("/")
    seen = {}

    # Discovery: the user by an alias, by employee id; what it holds.
    user = directory.call("users.get", userKey=alias)
    uid = user["id"]
    seen["user"] = {
        "id": uid,
        "primaryEmail": user["primaryEmail"],
        "aliases": user.get("aliases", []),
        "suspended": user["suspended"],
        "isEnrolledIn2Sv": user.get("isEnrolledIn2Sv"),
        "externalIds": user.get("externalIds", []),
    }
    found = directory.call(
        "users.list", customer="my_customer", query=f"externalId={employee_id}", maxResults=10
    )
    seen["by_employee_id"] = [u["id"] for u in found.get("users", [])]
    found = directory.call(
        "users.list", customer="my_customer", query=f"email:'{leaver}'", maxResults=10
    )
    seen["by_email_query"] = [u["id"] for u in found.get("users", [])]
    groups = directory.call("groups.list", userKey=uid, maxResults=200)
    seen["groups"] = sorted(g["email"] for g in groups.get("groups", []))
    group_ids = [g["id"] for g in groups.get("groups", [])]
    seen["members"] = [
        {k: m.get(k) for k in ("id", "type", "role", "status")}
        for m in (directory.call("members.get", groupKey=g, memberKey=uid) for g in group_ids)
    ]
    tokens = directory.call("tokens.list", userKey=uid).get("items", [])
    seen["tokens"] = sorted(t["clientId"] for t in tokens)
    for t in tokens:
        directory.call("tokens.get", userKey=uid, clientId=t["clientId"])
    asps = directory.call("asps.list", userKey=uid).get("items", [])
    seen["asps"] = [a["codeId"] for a in asps]
    for a in asps:
        directory.call("asps.get", userKey=uid, codeId=a["codeId"])
    roles = directory.call("roles.list", customer="my_customer", maxResults=100)
    role_names = {r["roleId"]: r["roleName"] for r in roles.get("items", [])}
    assignments = directory.call(
        "roleAssignments.list", customer="my_customer", userKey=uid, maxResults=100
    ).get("items", [])
    seen["roles"] = sorted(role_names.get(a["roleId"], "?") for a in assignments)
    for a in assignments:
        directory.call(
            "roleAssignments.get", customer="my_customer", roleAssignmentId=a["roleAssignmentId"]
        )
    lic = licensing.call("licenseAssignments.get", productId=product, skuId=sku, userId=leaver)
    seen["licence"] = {k: lic.get(k) for k in ("productId", "skuId", "userId")}
    archive = directory.call("users.get", userKey=new_owner)
    before = transfer.call(
        "transfers.list", oldOwnerUserId=uid, newOwnerUserId=archive["id"]
    )
    seen["transfers_before"] = len(before.get("dataTransfers", []))

    # Drive, as the leaver: the files it owns, every page.
    files, pages = [], 0
    request = drive.service.files().list(
        q="'me' in owners and trashed = false",
        fields="nextPageToken,files(id,size)",
        pageSize=20,
    )
    while request is not None:
        page = request.execute(num_retries=0)
        check(drive.doc, drive.method_doc("files.list")["response"], page, "files.list")
        pages += 1
        files.extend(page.get("files", []))
        request = drive.service.files().list_next(request, page)
    seen["drive"] = {
        "files": len(files),
        "bytes": sum(int(f.get("size", "0")) for f in files),
        "pages": pages,
    }

    # Gmail, as the leaver, while it is active: auto-reply, forwarding address, forwarding.
    seen["vacation_before"] = gmail.call("users.settings.getVacation", userId=leaver)
    vacation = {
        "enableAutoReply": True,
        "responseSubject": "I have left",
        "responseBodyPlainText": "Please write to team@example.com.",
        "restrictToDomain": False,
        "restrictToContacts": False,
    }
    seen["vacation_put"] = gmail.call(
        "users.settings.updateVacation", userId=leaver, body=vacation
    )
    seen["vacation_after"] = gmail.call("users.settings.getVacation", userId=leaver)
    seen["forwarding_before"] = gmail.call("users.settings.getAutoForwarding", userId=leaver)
    listed = gmail.call("users.settings.forwardingAddresses.list", userId=leaver)
    seen["forwarding_addresses_before"] = listed.get("forwardingAddresses", [])
    seen["forwarding_address"] = gmail.call(
        "users.settings.forwardingAddresses.create",
        userId=leaver,
        body={"forwardingEmail": new_owner},
    )
    seen["forwarding_address_again"] = gmail.refused(
        "users.settings.forwardingAddresses.create",
        userId=leaver,
        body={"forwardingEmail": new_owner},
    )
    seen["forwarding_put"] = gmail.call(
        "users.settings.updateAutoForwarding",
        userId=leaver,
        body={"enabled": True, "emailAddress": new_owner, "disposition": "leaveInInbox"},
    )
    seen["forwarding_after"] = gmail.call("users.settings.getAutoForwarding", userId=leaver)
    seen["other_mailbox"] = gmail.refused("users.settings.getVacation", userId=admin)

    # The Drive transfer: insert, then read it until it completes; the list finds it.
    inserted = transfer.call(
        "transfers.insert",
        body={
            "oldOwnerUserId": uid,
            "newOwnerUserId": archive["id"],
            "applicationDataTransfers": [
                {
                    "applicationId": DRIVE_APP_ID,
                    "applicationTransferParams": [
                        {"key": "PRIVACY_LEVEL", "value": ["PRIVATE", "SHARED"]}
                    ],
                }
            ],
        },
    )
    statuses = [inserted["overallTransferStatusCode"]]
    for _ in range(10):
        got = transfer.call("transfers.get", dataTransferId=inserted["id"])
        statuses.append(got["overallTransferStatusCode"])
        if got["overallTransferStatusCode"] == "completed":
            break
    seen["transfer"] = {
        "id": inserted["id"],
        "statuses": statuses,
        "applications": [
            a.get("applicationTransferStatus") for a in got.get("applicationDataTransfers", [])
        ],
        "params": got["applicationDataTransfers"][0].get("applicationTransferParams"),
    }
    after = transfer.call("transfers.list", oldOwnerUserId=uid, newOwnerUserId=archive["id"])
    seen["transfers_after"] = [t["id"] for t in after.get("dataTransfers", [])]

    # Contain: suspend, sign out, invalidate backup codes; Gmail then refuses.
    seen["suspended"] = directory.call(
        "users.update", userKey=uid, body={"suspended": True}
    )["suspended"]
    directory.call("users.signOut", userKey=uid)
    directory.call("verificationCodes.invalidate", userKey=uid)
    seen["gmail_when_suspended"] = gmail.refused("users.settings.getVacation", userId=leaver)

    # Revoke: grants, app passwords, memberships, role assignments, the licence.
    for t in tokens:
        directory.call("tokens.delete", userKey=uid, clientId=t["clientId"])
    for a in asps:
        directory.call("asps.delete", userKey=uid, codeId=a["codeId"])
    for g in group_ids:
        directory.call("members.delete", groupKey=g, memberKey=uid)
    for a in assignments:
        directory.call(
            "roleAssignments.delete",
            customer="my_customer",
            roleAssignmentId=a["roleAssignmentId"],
        )
    licensing.call("licenseAssignments.delete", productId=product, skuId=sku, userId=leaver)

    # Already gone: each removal again is a 404 that names what is missing.
    gone = {}
    if tokens:
        gone["token"] = directory.refused(
            "tokens.delete", userKey=uid, clientId=tokens[0]["clientId"]
        )
    if asps:
        gone["asp"] = directory.refused("asps.get", userKey=uid, codeId=asps[0]["codeId"])
    if group_ids:
        gone["member"] = directory.refused("members.get", groupKey=group_ids[0], memberKey=uid)
    if assignments:
        gone["role_assignment"] = directory.refused(
            "roleAssignments.delete",
            customer="my_customer",
            roleAssignmentId=assignments[0]["roleAssignmentId"],
        )
    gone["licence"] = licensing.refused(
        "licenseAssignments.get", productId=product, skuId=sku, userId=leaver
    )
    seen["gone"] = gone
    seen["tokens_after"] = directory.call("tokens.list", userKey=uid).get("items", [])
    seen["groups_after"] = directory.call("groups.list", userKey=uid, maxResults=200).get(
        "groups", []
    )

    # Delete: the user, then it is gone.
    directory.call("users.delete", userKey=uid)
    seen["user_after_delete"] = directory.refused("users.get", userKey=uid)
    seen["problems"] = problems
    return seen


def run_drive(url, key, admin, leaver, new_owner, folder_name, drive_name):
    endpoint = url.rstrip("/") + "/"
    mobile = ["https://www.googleapis.com/auth/admin.directory.device.mobile.action"]
    directory = Api(
        "admin", "directory_v1", endpoint, credentials(key, ADMIN_SCOPES + mobile, admin)
    )
    full_drive = ["https://www.googleapis.com/auth/drive"]
    drive_admin = Api("drive", "v3", endpoint + "drive/v3/", credentials(key, full_drive, admin))
    drive_owner = Api(
        "drive", "v3", endpoint + "drive/v3/", credentials(key, full_drive, new_owner)
    )
    seen = {}

    # Mobile devices: listed by owner, read, account-wiped (no body), read again.
    listed = directory.call(
        "mobiledevices.list",
        customerId="my_customer",
        query=f"email:{leaver}",
        projection="BASIC",
        maxResults=100,
    ).get("mobiledevices", [])
    seen["devices"] = [
        {k: d.get(k) for k in ("resourceId", "email", "type", "status")} for d in listed
    ]
    for d in listed:
        directory.call("mobiledevices.get", customerId="my_customer", resourceId=d["resourceId"])
        directory.call(
            "mobiledevices.action",
            customerId="my_customer",
            resourceId=d["resourceId"],
            body={"action": "admin_account_wipe"},
        )
    seen["devices_after"] = [
        directory.call(
            "mobiledevices.get", customerId="my_customer", resourceId=d["resourceId"]
        )["status"]
        for d in listed
    ]
    seen["device_gone"] = directory.refused(
        "mobiledevices.get", customerId="my_customer", resourceId="AFiQxQ-none"
    )

    # 2-step verification off; a second time is refused.
    user = directory.call("users.get", userKey=leaver)
    uid = user["id"]
    seen["two_sv_before"] = user.get("isEnrolledIn2Sv")
    directory.call("twoStepVerification.turnOff", userKey=uid)
    seen["two_sv_after"] = directory.call("users.get", userKey=uid).get("isEnrolledIn2Sv")
    seen["two_sv_again"] = directory.refused("twoStepVerification.turnOff", userKey=uid)

    # The leaver's membership of a shared drive, as the admin.
    drives = drive_admin.call("drives.list", useDomainAdminAccess=True, pageSize=100)
    drive_id = next(d["id"] for d in drives.get("drives", []) if d["name"] == drive_name)
    admin_access = {"supportsAllDrives": True, "useDomainAdminAccess": True}
    perms = drive_admin.call(
        "permissions.list",
        fileId=drive_id,
        pageSize=100,
        fields="nextPageToken,permissions(id,type,emailAddress,domain,role)",
        **admin_access,
    ).get("permissions", [])
    seen["drive_members"] = sorted((p.get("emailAddress"), p["role"]) for p in perms)
    mine = next(p for p in perms if p.get("emailAddress", "").lower() == leaver.lower())
    seen["member"] = drive_admin.call(
        "permissions.get", fileId=drive_id, permissionId=mine["id"], **admin_access
    )
    drive_admin.call(
        "permissions.delete", fileId=drive_id, permissionId=mine["id"], **admin_access
    )
    seen["member_gone"] = drive_admin.refused(
        "permissions.get", fileId=drive_id, permissionId=mine["id"], **admin_access
    )
    seen["drive_without_admin_access"] = drive_admin.refused(
        "permissions.list", fileId=drive_id, supportsAllDrives=True
    )

    # A client job's scan, as a user of ours: their own files with their permissions, then a
    # shared drive's files with hasAugmentedPermissions and one file's own permissions.
    mine = drive_owner.call(
        "files.list",
        q="'me' in owners and trashed = false",
        fields="nextPageToken,files(id,name,permissions(id,type,emailAddress,domain,role))",
        pageSize=1000,
    ).get("files", [])
    seen["own_file_grantees"] = sorted(
        p.get("emailAddress") or p.get("domain") or p["type"]
        for f in mine
        for p in f.get("permissions", [])
    )
    in_drive = drive_owner.call(
        "files.list",
        corpora="drive",
        driveId=drive_id,
        includeItemsFromAllDrives=True,
        supportsAllDrives=True,
        q="trashed = false",
        fields="nextPageToken,files(id,name,hasAugmentedPermissions)",
        pageSize=1000,
    ).get("files", [])
    augmented = [f for f in in_drive if f.get("hasAugmentedPermissions")]
    seen["augmented"] = [f["name"] for f in augmented]
    # The new owner's own membership of the drive, read on one of its files: inherited.
    me = drive_owner.call(
        "permissions.list", fileId=drive_id, supportsAllDrives=True, pageSize=100
    ).get("permissions", [])
    my_id = next(p["id"] for p in me if p.get("emailAddress", "").lower() == new_owner.lower())
    seen["inherited_get"] = drive_owner.call(
        "permissions.get",
        fileId=augmented[0]["id"],
        permissionId=my_id,
        supportsAllDrives=True,
        fields="id,emailAddress,role,permissionDetails",
    ).get("permissionDetails")
    seen["augmented_grantees"] = sorted(
        (p.get("emailAddress"), [d.get("inherited") for d in p.get("permissionDetails", [])])
        for f in augmented
        for p in drive_owner.call(
            "permissions.list",
            fileId=f["id"],
            supportsAllDrives=True,
            pageSize=100,
            fields="nextPageToken,permissions(id,type,emailAddress,domain,role,"
            "permissionDetails(inherited))",
        ).get("permissions", [])
    )

    # The archive, as the new owner: the transfer's folder, moved into the drive and stamped.
    fields = "nextPageToken,files(id,name,parents,driveId,appProperties,mimeType)"
    quoted = folder_name.replace("\\", "\\\\").replace("'", "\\'")
    found = drive_owner.call(
        "files.list",
        q=f"name = '{quoted}' and mimeType = 'application/vnd.google-apps.folder'"
        " and 'me' in owners and trashed = false",
        fields=fields,
    ).get("files", [])
    seen["folders_found"] = len(found)
    folder = found[0]
    moved = drive_owner.call(
        "files.update",
        fileId=folder["id"],
        addParents=drive_id,
        removeParents=",".join(folder["parents"]),
        supportsAllDrives=True,
        body={"appProperties": {"revokedLeaverId": uid, "retainUntil": "2027-12-05"}},
    )
    seen["moved"] = {k: moved.get(k) for k in ("parents", "driveId", "appProperties")}
    archived = drive_owner.call(
        "files.list",
        corpora="drive",
        driveId=drive_id,
        includeItemsFromAllDrives=True,
        supportsAllDrives=True,
        q=f"appProperties has {{ key='revokedLeaverId' and value='{uid}' }} and trashed = false",
        fields=fields,
    ).get("files", [])
    seen["archived"] = [f["id"] for f in archived]
    seen["folder"] = drive_owner.call(
        "files.get",
        fileId=folder["id"],
        supportsAllDrives=True,
        fields="id,name,parents,driveId,appProperties,mimeType",
    )
    seen["folder_without_all_drives"] = drive_owner.refused("files.get", fileId=folder["id"])
    seen["folder_id"] = folder["id"]
    seen["drive_id"] = drive_id
    seen["user_id"] = uid
    seen["problems"] = problems
    return seen


# Path prefix -> (service name, version, service path) of the APIs the connector calls.
APIS = [
    ("/admin/directory/v1/", ("admin", "directory_v1", "")),
    ("/admin/datatransfer/v1/", ("admin", "datatransfer_v1", "")),
    ("/gmail/v1/", ("gmail", "v1", "")),
    ("/apps/licensing/v1/", ("licensing", "v1", "")),
    ("/drive/v3/", ("drive", "v3", "drive/v3/")),
]


def methods_of(node, chain=()):
    """Every method of a discovery document: (resource chain, name, method document)."""
    for name, m in node.get("methods", {}).items():
        yield chain, name, m
    for name, r in node.get("resources", {}).items():
        yield from methods_of(r, chain + (name,))


def template_regex(path):
    """A discovery path template as a regex; {x} is one segment, {+x} may hold slashes."""
    import re

    out, names, i = "", [], 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", path):
        out += re.escape(path[i : m.start()])
        out += "(.+)" if m.group(1) else "([^/]+)"
        names.append(m.group(2))
        i = m.end()
    out += re.escape(path[i:])
    return re.compile("^" + out + "$"), names


def typed(value, spec):
    kind = spec.get("type")
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    return value


def run_requests(requests_file):
    import re
    from urllib.parse import parse_qsl, unquote, urlsplit

    from google.auth.credentials import AnonymousCredentials

    with open(requests_file, encoding="utf-8") as f:
        sent = json.load(f)
    services = {}
    out = {"checked": 0, "methods": [], "problems": problems}
    for r in sent:
        where = f"{r['method']} {r['path']}" + (f"?{r['query']}" if r.get("query") else "")
        api = next((a for prefix, a in APIS if r["path"].startswith(prefix)), None)
        if api is None:
            problems.append(f"{where}: no API of the connector has this path")
            continue
        name, version, service_path = api
        if (name, version) not in services:
            services[(name, version)] = Api(
                name, version, "http://google.invalid/" + service_path, AnonymousCredentials()
            )
        svc = services[(name, version)]
        rel = r["path"][1 + len(service_path) :]
        hits = []
        for chain, mname, m in methods_of(svc.doc):
            if m["httpMethod"] != r["method"]:
                continue
            rx, names = template_regex(m["path"])
            hit = rx.match(rel)
            if hit:
                # The most specific template wins: no {+x}, then the most literal text.
                literal = len(re.sub(r"\{[^}]*\}", "", m["path"]))
                hits.append(((("{+" in m["path"]), -literal), chain, mname, m, names, hit))
        if not hits:
            problems.append(f"{where}: no {name} {version} method has this path")
            continue
        _, chain, mname, m, names, hit = sorted(hits, key=lambda h: h[0])[0]
        params = {n: unquote(v) for n, v in zip(names, hit.groups())}
        declared = {**svc.doc.get("parameters", {}), **m.get("parameters", {})}
        query = parse_qsl(r.get("query") or "", keep_blank_values=True)
        for k, v in query:
            if k not in declared:
                problems.append(f"{where}: query parameter {k!r} is not one of {m['id']}'s")
                continue
            if k in params:
                problems.append(f"{where}: {k!r} given twice")
            params[k] = typed(v, declared[k])
        body = None
        if r.get("body"):
            body = json.loads(r["body"])
            if "request" in m:
                check(svc.doc, m["request"], body, f"{where} (body)", nulls=True)
            else:
                problems.append(f"{where}: {m['id']} takes no body")
        node = svc.service
        for c in chain:
            node = getattr(node, c)()
        kwargs = {k.replace("$", "_").replace(".", "_"): v for k, v in params.items()}
        if body is not None:
            kwargs["body"] = body
        try:
            built = getattr(node, mname)(**kwargs)
        except (TypeError, ValueError) as e:
            problems.append(f"{where}: Google's client refuses to build {m['id']}: {e}")
            continue
        out["checked"] += 1
        if m["id"] not in out["methods"]:
            out["methods"].append(m["id"])
        url = urlsplit(built.uri)
        if built.method != r["method"]:
            problems.append(f"{where}: Google's client sends {built.method}")
        if url.path != r["path"]:
            same = unquote(url.path) == unquote(r["path"])
            what = "encodes the path as" if same else "builds the path"
            problems.append(f"{where}: Google's client {what} {url.path}")
        theirs = sorted(kv for kv in parse_qsl(url.query, keep_blank_values=True) if kv != ("alt", "json"))
        ours = sorted(query)
        if theirs != ours:
            problems.append(f"{where}: Google's client builds the query {theirs}, sent {ours}")
        if body is not None and json.loads(built.body) != body:
            problems.append(f"{where}: Google's client builds the body {built.body}")
    return out


def run_storm(url, key, admin):
    """Reads the admin until an answer comes (at most 4 refusals): each refusal as Google's
    client reads it, then the answer's address (None after 4 refusals)."""
    directory = services(url, key, admin)["directory"]
    seen = {"refused": [], "then": None}
    for _ in range(4):
        try:
            seen["then"] = directory.call("users.get", userKey=admin)["primaryEmail"]
            break
        except HttpError as e:
            seen["refused"].append(refusal(e))
    seen["problems"] = problems
    return seen


def main():
    mode, url = sys.argv[1:3]
    key = None
    if mode != "requests":
        with open(sys.argv[3], encoding="utf-8") as f:
            key = json.load(f)
    if mode == "all":
        seen = run_all(url, key, *sys.argv[4:11])
    elif mode == "requests":
        seen = run_requests(url)
    elif mode == "storm":
        seen = run_storm(url, key, sys.argv[4])
    elif mode == "drive":
        seen = run_drive(url, key, *sys.argv[4:10])
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected all, storm, drive or requests")
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main()
