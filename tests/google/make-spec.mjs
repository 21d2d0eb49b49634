// Writes one Swagger 2.0 description of the Google APIs the Google Workspace connector calls
// (Admin SDK Directory, Data Transfer, Gmail settings, Licensing, Drive files.list), made from Google's own discovery
// documents, and prints its path.
//
// The discovery documents are the ones google-api-python-client ships
// (googleapiclient/discovery_cache/documents, 2.202.0 in tests/python/.venv); npm
// google-discovery-to-swagger converts each to Swagger 2.0. Then, and only then:
// - the five descriptions are merged (their paths do not overlap: /admin/directory/v1,
//   /admin/datatransfer/v1, /gmail/v1, /apps/licensing/v1, /drive/v3) and trimmed to the operations below,
//   with every definition they reference, transitively;
// - top-level consumes/produces application/json are added: the converter omits them and Prism
//   then answers 415 to every body;
// - discovery documents declare no status codes (the converter writes 200 everywhere). What
//   Google's reference says is added, and only that: the calls whose reference says "If
//   successful, the response body is empty" (deletes, signOut, verificationCodes.invalidate)
//   also declare 204, and every operation declares 404 with Google's error body (Google's
//   "Resource Not Found" answers; https://developers.google.com/workspace/admin/directory/v1/limits
//   and .../reference-overview for the error format), and 403 with the same body (rate limits
//   and quota: userRateLimitExceeded, quotaExceeded, rateLimitExceeded).
//
// The result is committed (google-apis.swagger.json beside this script), so tests need only Prism
// (tests/github/node_modules); run `npm ci && node make-spec.mjs` here, with the Python client
// installed in tests/python/.venv, to make it again after changing OPERATIONS.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** The operations the connector (and the stand-in) use: path -> methods */
export const OPERATIONS = {
  "/admin/directory/v1/users": ["get"],
  "/admin/directory/v1/users/{userKey}": ["get", "put", "delete"],
  "/admin/directory/v1/users/{userKey}/signOut": ["post"],
  "/admin/directory/v1/users/{userKey}/tokens": ["get"],
  "/admin/directory/v1/users/{userKey}/tokens/{clientId}": ["get", "delete"],
  "/admin/directory/v1/users/{userKey}/asps": ["get"],
  "/admin/directory/v1/users/{userKey}/asps/{codeId}": ["get", "delete"],
  "/admin/directory/v1/users/{userKey}/verificationCodes/invalidate": ["post"],
  "/admin/directory/v1/groups": ["get"],
  "/admin/directory/v1/groups/{groupKey}/members/{memberKey}": ["get", "delete"],
  "/admin/directory/v1/customer/{customer}/roles": ["get"],
  "/admin/directory/v1/customer/{customer}/roleassignments": ["get"],
  "/admin/directory/v1/customer/{customer}/roleassignments/{roleAssignmentId}": ["get", "delete"],
  "/admin/datatransfer/v1/transfers": ["get", "post"],
  "/admin/datatransfer/v1/transfers/{dataTransferId}": ["get"],
  "/gmail/v1/users/{userId}/settings/vacation": ["get", "put"],
  "/gmail/v1/users/{userId}/settings/autoForwarding": ["get", "put"],
  "/gmail/v1/users/{userId}/settings/forwardingAddresses": ["get", "post"],
  "/apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}": ["get", "delete"],
  "/drive/v3/files": ["get"],
  "/admin/directory/v1/customer/{customerId}/devices/mobile": ["get"],
  "/admin/directory/v1/customer/{customerId}/devices/mobile/{resourceId}": ["get"],
  "/admin/directory/v1/customer/{customerId}/devices/mobile/{resourceId}/action": ["post"],
  "/admin/directory/v1/users/{userKey}/twoStepVerification/turnOff": ["post"],
  "/drive/v3/files/{fileId}": ["get", "patch"],
  "/drive/v3/files/{fileId}/permissions": ["get"],
  "/drive/v3/files/{fileId}/permissions/{permissionId}": ["get", "delete"],
  "/drive/v3/drives": ["get"],
};

/** Operations whose reference says the response body is empty on success (204) */
const EMPTY = new Set([
  "delete /admin/directory/v1/users/{userKey}",
  "post /admin/directory/v1/users/{userKey}/signOut",
  "delete /admin/directory/v1/users/{userKey}/tokens/{clientId}",
  "delete /admin/directory/v1/users/{userKey}/asps/{codeId}",
  "post /admin/directory/v1/users/{userKey}/verificationCodes/invalidate",
  "delete /admin/directory/v1/groups/{groupKey}/members/{memberKey}",
  "delete /admin/directory/v1/customer/{customer}/roleassignments/{roleAssignmentId}",
  "delete /apps/licensing/v1/product/{productId}/sku/{skuId}/user/{userId}",
  "post /admin/directory/v1/customer/{customerId}/devices/mobile/{resourceId}/action",
  "post /admin/directory/v1/users/{userKey}/twoStepVerification/turnOff",
  "delete /drive/v3/files/{fileId}/permissions/{permissionId}",
]);

const DOCS = ["admin.directory_v1", "admin.datatransfer_v1", "gmail.v1", "licensing.v1", "drive.v3"];

function documentsDir() {
  const lib = path.join(here, "..", "python", ".venv", "lib");
  if (fs.existsSync(lib)) {
    for (const py of fs.readdirSync(lib)) {
      const d = path.join(lib, py, "site-packages", "googleapiclient", "discovery_cache", "documents");
      if (fs.existsSync(d)) return d;
    }
  }
  console.error(`googleapiclient not found under ${lib}: run scripts/test or tests/python/.venv/bin/pip install google-api-python-client==2.202.0`);
  process.exit(2);
}

const docsDir = documentsDir();
const texts = DOCS.map((d) => fs.readFileSync(path.join(docsDir, `${d}.json`), "utf8"));
const out = path.join(here, "google-apis.swagger.json");

const convert = require("google-discovery-to-swagger").convert;
// Definitions and shared parameters are named per document (Drive and Directory both have a
// `User`): every document but the Directory's gets its name as a prefix, refs rewritten to match.
const renameRefs = (v, prefix) => {
  if (Array.isArray(v)) return v.map((x) => renameRefs(x, prefix));
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string") {
        o[k] = x.replace(/^#\/(definitions|parameters)\//, `#/$1/${prefix}`);
      } else o[k] = renameRefs(x, prefix);
    }
    return o;
  }
  return v;
};
const converted = texts.map((t, i) => {
  const c = convert(JSON.parse(t));
  if (i === 0) return c;
  const prefix = `${DOCS[i].split(".")[0].replace("admin.", "")}_`;
  const named = (m) => Object.fromEntries(Object.entries(m ?? {}).map(([k, x]) => [`${prefix}${k}`, x]));
  return {
    ...c,
    definitions: renameRefs(named(c.definitions), prefix),
    parameters: named(c.parameters),
    paths: renameRefs(c.paths, prefix),
  };
});
const definitions = {};
const parameters = {};
const paths = {};
for (const c of converted) {
  Object.assign(definitions, c.definitions ?? {});
  Object.assign(parameters, c.parameters ?? {});
  // Drive's description has basePath /drive/v3 and paths under it; the others have /.
  const base = (c.basePath ?? "/").replace(/\/$/, "");
  for (const [rel, ops] of Object.entries(c.paths)) {
    const p = `${base}${rel}`;
    if (!(p in OPERATIONS)) continue;
    paths[p] = { ...(paths[p] ?? {}) };
    for (const [m, op] of Object.entries(ops)) {
      if (m === "parameters") paths[p][m] = op;
      else if (OPERATIONS[p].includes(m)) paths[p][m] = op;
    }
  }
}
for (const [p, methods] of Object.entries(OPERATIONS)) {
  for (const m of methods) {
    if (!paths[p]?.[m]) {
      console.error(`${m} ${p} is not in Google's discovery documents`);
      process.exit(2);
    }
  }
}

// Google's JSON error body (https://cloud.google.com/apis/design/errors, the v1 format the
// Admin SDK and Gmail answer: {"error": {"code", "message", "errors": [{"domain", "reason",
// "message"}], "status"}}).
definitions.GoogleError = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "integer" },
        message: { type: "string" },
        status: { type: "string" },
        errors: {
          type: "array",
          items: {
            type: "object",
            properties: {
              domain: { type: "string" },
              reason: { type: "string" },
              message: { type: "string" },
              locationType: { type: "string" },
              location: { type: "string" },
            },
          },
        },
      },
    },
  },
};
const errorResponse = (d) => ({ description: d, schema: { $ref: "#/definitions/GoogleError" } });
for (const [p, ops] of Object.entries(paths)) {
  for (const [m, op] of Object.entries(ops)) {
    if (m === "parameters") continue;
    // A method that also takes uploads (Drive files.update) gets `consumes:
    // application/octet-stream` from the converter, which is the /upload/ URI's; the path kept
    // here takes the metadata as JSON (Drive's reference: "metadata URI, for metadata-only
    // requests").
    if (op.consumes?.includes("application/octet-stream")) op.consumes = ["application/json"];
    op.responses = { ...op.responses };
    if (EMPTY.has(`${m} ${p}`)) op.responses["204"] = { description: "If successful, the response body is empty" };
    op.responses["400"] = errorResponse("Invalid input, or Gmail's failedPrecondition for a suspended user");
    op.responses["403"] = errorResponse("Not authorized, or a rate limit: userRateLimitExceeded, rateLimitExceeded, quotaExceeded");
    op.responses["404"] = errorResponse("Resource Not Found");
    op.responses["409"] = errorResponse("Entity already exists (a transfer or a member)");
    op.responses["412"] = errorResponse("Precondition failed");
    op.responses["503"] = errorResponse("Backend error");
  }
}

// Keep only the definitions reachable from the kept operations.
const kept = {};
const visit = (v) => {
  if (Array.isArray(v)) return v.forEach(visit);
  if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string" && x.startsWith("#/definitions/")) {
        const name = x.slice("#/definitions/".length);
        if (!(name in kept)) {
          kept[name] = definitions[name];
          visit(definitions[name]);
        }
      } else visit(x);
    }
  }
};
visit(paths);
const keptParams = {};
const visitParams = (v) => {
  if (Array.isArray(v)) return v.forEach(visitParams);
  if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string" && x.startsWith("#/parameters/")) {
        const name = x.slice("#/parameters/".length);
        keptParams[name] = parameters[name];
      } else visitParams(x);
    }
  }
};
visitParams(paths);

// Google's batch endpoint is in no discovery document: declared by hand from
// https://developers.google.com/workspace/admin/directory/v1/guides/batch (a multipart/mixed body
// of application/http requests, a multipart/mixed answer). Prism checks only its content types;
// the stand-in replays each part through Prism, which checks each inner request and answer.
paths["/batch/admin/directory_v1"] = {
  post: {
    description: "Sends up to 1000 Directory calls in one HTTP request; each still counts against the quota.",
    operationId: "batch.directory_v1",
    consumes: ["multipart/mixed"],
    produces: ["multipart/mixed", "application/json"],
    parameters: [{ name: "body", in: "body", required: true, schema: { type: "string" } }],
    responses: {
      200: { description: "One application/http answer per part, Content-ID response-<id>", schema: { type: "string" } },
      400: { description: "Not a batch", schema: { $ref: "#/definitions/GoogleError" } },
      401: { description: "Invalid credentials", schema: { $ref: "#/definitions/GoogleError" } },
      403: { description: "Not authorized, or a rate limit", schema: { $ref: "#/definitions/GoogleError" } },
    },
    security: [{ Oauth2: ["https://www.googleapis.com/auth/admin.directory.user"] }],
  },
};

const first = converted[0];
const spec = {
  swagger: "2.0",
  info: { title: "Google Workspace APIs used by revoked (trimmed)", version: "v1" },
  host: "admin.googleapis.com",
  basePath: "/",
  schemes: ["https"],
  consumes: ["application/json"],
  produces: ["application/json"],
  securityDefinitions: first.securityDefinitions,
  parameters: keptParams,
  definitions: kept,
  paths,
};
const tmp = `${out}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify(spec, null, 1) + "\n");
fs.renameSync(tmp, out);
console.log(out);
