// Validates Kubernetes objects against the official Kubernetes OpenAPI schemas, through the
// `kubernetes-models` package (its validators are generated from the Kubernetes OpenAPI spec).
//
//   node k8s_schema.mjs MODELS_DIR OBJECTS_JSON
//
// MODELS_DIR: the kubernetes-models package directory. OBJECTS_JSON: [{"where", "object"}, ...].
// Prints one JSON line per object: {"where", "kind", "ok", "error"?}. An apiVersion/kind the
// package has no model for is an error (a typo in either must not pass silently).
// Limit: the generated schemas do not forbid unknown fields (kubectl's strict field validation
// does); validate.py's own checks cover the fields the project relies on.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modelsDir, objectsFile] = process.argv.slice(2);
const items = JSON.parse(fs.readFileSync(objectsFile, 'utf8'));

for (const { where, object } of items) {
  const kind = object?.kind ?? '';
  const apiVersion = object?.apiVersion ?? '';
  const line = { where, kind: `${apiVersion} ${kind}`, ok: false };
  try {
    if (!/^[A-Za-z0-9.\/-]+$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind)) {
      throw new Error('apiVersion or kind missing or malformed');
    }
    const file = path.join(modelsDir, ...apiVersion.split('/'), `${kind}.js`);
    if (!fs.existsSync(file)) {
      throw new Error(`no schema for ${apiVersion} ${kind}`);
    }
    const mod = await import(pathToFileURL(file).href);
    const Model = mod[kind];
    new Model(object).validate();
    line.ok = true;
  } catch (e) {
    line.error = String(e.message ?? e).slice(0, 1000);
  }
  console.log(JSON.stringify(line));
}
