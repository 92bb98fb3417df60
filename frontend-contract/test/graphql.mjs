// Reads the operations the SPA ships (operations/*.graphql) and sends them.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print, visit } from 'graphql';

const operationsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'operations');

/** Every fragment definition under operations/ (e.g. operations/fragments/*.graphql), by name. */
let fragmentsByName;
function fragments() {
  if (!fragmentsByName) {
    fragmentsByName = new Map();
    for (const file of readdirSync(operationsDir, { recursive: true })) {
      if (!String(file).endsWith('.graphql')) continue;
      for (const def of parse(readFileSync(join(operationsDir, String(file)), 'utf8')).definitions) {
        if (def.kind !== Kind.FRAGMENT_DEFINITION) continue;
        if (fragmentsByName.has(def.name.value)) throw new Error(`fragment ${def.name.value} is defined twice in operations/`);
        fragmentsByName.set(def.name.value, def);
      }
    }
  }
  return fragmentsByName;
}

/** Names of the fragments a document spreads but does not define. */
function spreadNames(doc) {
  const names = new Set();
  visit(doc, { FragmentSpread: (node) => { names.add(node.name.value); } });
  return names;
}

/**
 * The text of operations/NAME.graphql, followed by the fragments it uses (transitively) from other
 * files, as the generated documents in src/gql/ carry them.
 */
export function operation(name) {
  const text = readFileSync(join(operationsDir, `${name}.graphql`), 'utf8');
  const doc = parse(text);
  const defined = new Set(doc.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => d.name.value));
  const queue = [...spreadNames(doc)];
  const extra = [];
  while (queue.length) {
    const fragmentName = queue.shift();
    if (defined.has(fragmentName)) continue;
    const def = fragments().get(fragmentName);
    if (!def) throw new Error(`operations/${name}.graphql uses the unknown fragment ${fragmentName}`);
    defined.add(fragmentName);
    extra.push(def);
    queue.push(...spreadNames(def));
  }
  return extra.length ? `${text}\n${extra.map((d) => print(d)).join('\n\n')}\n` : text;
}

/** POSTs operations/NAME.graphql with variables; resolves to the parsed GraphQL response. */
export async function post(server, name, variables = {}, { token } = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: operation(name), variables, operationName: name }),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { throw new Error(`POST /graphql ${name}: HTTP ${res.status}, not JSON: ${text}`); }
  return { status: res.status, body };
}

/** Like post(), but fails on any GraphQL error and returns `data`. */
export async function data(server, name, variables, opts) {
  const { status, body } = await post(server, name, variables, opts);
  if (status !== 200 || body.errors) {
    throw new Error(`${name} failed: HTTP ${status} ${JSON.stringify(body)}`);
  }
  return body.data;
}

/** The `extensions.code`s of a response's errors. */
export const errorCodes = (body) => (body.errors ?? []).map((e) => e.extensions?.code);
