// Writes GitHub's OpenAPI description reduced to the operations the GitHub connector uses, plus
// every component they reference (transitively), and prints the path of the result.
//
// Prism loads the full 14 MB description in ~15 s and the trimmed one in ~1 s. Trimming only
// removes operations and unreferenced components: every kept operation and component is copied
// unchanged, so Prism still checks the stand-in against exactly what GitHub declares.
//
// The result is cached in .cache/ under a name derived from the operation list, the source
// description and the @octokit/openapi version, so it is regenerated when either changes. It is
// written to a temp file and renamed, so concurrent test processes never read a half-written file.
//
// Usage: node trim-spec.mjs [ghec|ghes-3.19|api.github.com]   (default ghec: the only description
// with /orgs/{org}/credential-authorizations)

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The operations the connector (and the stand-in) use: path -> methods */
export const OPERATIONS = {
  "/orgs/{org}": ["get"],
  "/user/{account_id}": ["get"],
  "/users/{username}": ["get"],
  "/orgs/{org}/memberships/{username}": ["get", "delete"],
  "/orgs/{org}/invitations": ["get"],
  "/orgs/{org}/invitations/{invitation_id}": ["delete"],
  "/orgs/{org}/outside_collaborators": ["get"],
  "/orgs/{org}/outside_collaborators/{username}": ["delete"],
  "/orgs/{org}/teams": ["get"],
  "/orgs/{org}/teams/{team_slug}": ["get"],
  "/orgs/{org}/teams/{team_slug}/memberships/{username}": ["get", "delete"],
  "/orgs/{org}/repos": ["get"],
  "/repos/{owner}/{repo}/collaborators": ["get"],
  "/repos/{owner}/{repo}/collaborators/{username}": ["get", "delete"],
  "/repos/{owner}/{repo}/invitations": ["get"],
  "/repos/{owner}/{repo}/invitations/{invitation_id}": ["delete"],
  "/orgs/{org}/credential-authorizations": ["get"],
  "/orgs/{org}/credential-authorizations/{credential_id}": ["delete"],
  "/orgs/{org}/personal-access-tokens": ["get"],
  "/orgs/{org}/personal-access-tokens/{pat_id}": ["post"],
  "/app/installations/{installation_id}/access_tokens": ["post"],
};

const flavour = process.argv[2] ?? "ghec";
if (!/^[a-z0-9.-]+$/.test(flavour)) {
  console.error(`expected a description name such as ghec or ghes-3.19, found ${JSON.stringify(flavour)}`);
  process.exit(2);
}
const pkgDir = path.join(here, "node_modules", "@octokit", "openapi");
const source = path.join(pkgDir, "generated", `${flavour}.json`);
if (!fs.existsSync(source)) {
  console.error(`${source} not found: run scripts/test or npm ci --prefix tests/github`);
  process.exit(2);
}

const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
const key = createHash("sha256")
  .update(JSON.stringify({ OPERATIONS, flavour, version, script: fs.readFileSync(fileURLToPath(import.meta.url), "utf8") }))
  .digest("hex")
  .slice(0, 16);
const cacheDir = path.join(here, ".cache");
const out = path.join(cacheDir, `${flavour}-trimmed-${key}.json`);
if (fs.existsSync(out)) {
  console.log(out);
  process.exit(0);
}

const spec = JSON.parse(fs.readFileSync(source, "utf8"));
const trimmed = {
  openapi: spec.openapi,
  info: spec.info,
  servers: spec.servers,
  externalDocs: spec.externalDocs,
  paths: {},
  components: {},
};

const pending = [];
const seen = new Set();
/** Queues every `$ref` found anywhere in `node` */
function collectRefs(node) {
  if (Array.isArray(node)) {
    node.forEach(collectRefs);
  } else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") {
        if (!seen.has(v)) {
          seen.add(v);
          pending.push(v);
        }
      } else {
        collectRefs(v);
      }
    }
  }
}

const missing = [];
for (const [p, methods] of Object.entries(OPERATIONS)) {
  const item = spec.paths[p];
  const kept = {};
  for (const [k, v] of Object.entries(item ?? {})) {
    // Path-level fields (parameters, summary, ...) are kept; only unused operations are dropped.
    if (!["get", "put", "post", "delete", "patch", "head", "options", "trace"].includes(k) || methods.includes(k)) {
      kept[k] = v;
    }
  }
  const found = methods.filter((m) => item?.[m]);
  if (found.length !== methods.length) {
    missing.push(`${methods.filter((m) => !item?.[m]).join(",")} ${p}`);
  }
  if (found.length > 0) {
    trimmed.paths[p] = kept;
    collectRefs(kept);
  }
}
if (missing.length > 0) {
  // GitHub Enterprise Server has no credential-authorizations; that is expected there only.
  console.error(`${flavour}: not declared: ${missing.join("; ")}`);
  if (flavour === "ghec") process.exit(1);
}

while (pending.length > 0) {
  const ref = pending.pop();
  const m = /^#\/components\/([^/]+)\/(.+)$/.exec(ref);
  if (!m) {
    console.error(`expected a local #/components/... reference, found ${ref}`);
    process.exit(1);
  }
  const [, kind, name] = m;
  const value = spec.components?.[kind]?.[name];
  if (value === undefined) {
    console.error(`${ref} is referenced but not declared`);
    process.exit(1);
  }
  trimmed.components[kind] ??= {};
  trimmed.components[kind][name] = value;
  collectRefs(value);
}
for (const kind of Object.keys(trimmed.components)) {
  trimmed.components[kind] = Object.fromEntries(Object.entries(trimmed.components[kind]).sort(([a], [b]) => a.localeCompare(b)));
}

fs.mkdirSync(cacheDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify(trimmed, null, 1));
fs.renameSync(tmp, out);
console.log(out);
