// Validates GraphQL documents against GitHub's public schema (@octokit/graphql-schema) with
// graphql-js `validate`, so the connector's queries are checked against what GitHub really
// serves (the stand-in answers by operation name and would accept a wrong field). The schema is
// loaded from the introspection result (schema.json), as the package's own validate does: its
// schema.graphql defines two fields twice and fails SDL validation.
//
// Input: a JSON array of documents on stdin. Output: one line per error, prefixed with the
// document's operation name(s); exit code 1 when any document is invalid, 2 on bad input.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildClientSchema, parse, validate, Kind } from "graphql";

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaFile = path.join(here, "node_modules", "@octokit", "graphql-schema", "schema.json");
const schema = buildClientSchema(JSON.parse(fs.readFileSync(schemaFile, "utf8")));

let documents;
try {
  documents = JSON.parse(fs.readFileSync(0, "utf8"));
  if (!Array.isArray(documents) || !documents.every((d) => typeof d === "string")) throw new Error("not an array of strings");
} catch (e) {
  console.error(`expected a JSON array of GraphQL documents on stdin: ${e.message}`);
  process.exit(2);
}

let failed = 0;
documents.forEach((source, i) => {
  let ast;
  try {
    ast = parse(source);
  } catch (e) {
    console.log(`document ${i + 1}: syntax error: ${e.message}`);
    failed++;
    return;
  }
  const names = ast.definitions
    .filter((d) => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => d.name?.value ?? "(anonymous)")
    .join(", ");
  for (const error of validate(schema, ast)) {
    const at = (error.locations ?? []).map((l) => `${l.line}:${l.column}`).join(" ");
    console.log(`${names || `document ${i + 1}`}: ${error.message}${at ? ` (at ${at})` : ""}`);
    failed++;
  }
});
process.exit(failed > 0 ? 1 : 0);
