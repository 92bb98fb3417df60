// The operations are valid against the committed SDL, and src/gql/ is what codegen makes of them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

async function run(cmd, args, env = {}) {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env }, maxBuffer: 16 << 20 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    return { code: err.code ?? 1, output: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}` };
  }
}

async function listFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath ?? entry.path, entry.name)));
  }
  return out.sort();
}

test('every operation validates against ../schema.graphql (graphql-inspector, deprecated usage fails)', async () => {
  const { code, output } = await run(bin('graphql-inspector'), [
    'validate', 'operations/**/*.graphql', '../schema.graphql', '--deprecated',
  ]);
  assert.equal(code, 0, `graphql-inspector validate failed:\n${output}`);
  assert.match(output, /All documents are valid/);
  assert.doesNotMatch(output, /deprecated/i, `deprecated usage:\n${output}`);
});

test('generated types in src/gql/ are up to date (else run `npm run codegen`)', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'frontend-contract-codegen-'));
  try {
    const { code, output } = await run(bin('graphql-codegen'), ['--config', 'codegen.ts', '--silent'], {
      CODEGEN_OUT_DIR: `${tmp}/`,
    });
    assert.equal(code, 0, `graphql-codegen failed:\n${output}`);
    const committedDir = join(root, 'src', 'gql');
    const fresh = await listFiles(tmp);
    const committed = await listFiles(committedDir).catch(() => []);
    const stale = 'src/gql/ is stale: run `npm run codegen` and commit the result';
    assert.deepEqual(committed, fresh, `${stale} (file lists differ)`);
    for (const file of fresh) {
      const [a, b] = await Promise.all([readFile(join(tmp, file)), readFile(join(committedDir, file))]);
      assert.ok(a.equals(b), `${stale} (src/gql/${file} differs)`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('the README names every operation, and only operations, fragments, types, enum values and variables that exist', async () => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const { buildSchema, parse } = await import('graphql');
  const schema = buildSchema(await readFile(join(root, '..', 'schema.graphql'), 'utf8'));
  const operations = new Map();
  const fragments = new Set();
  for (const file of (await listFiles(join(root, 'operations'))).filter((f) => f.endsWith('.graphql'))) {
    for (const def of parse(await readFile(join(root, 'operations', file), 'utf8')).definitions) {
      if (def.kind === 'OperationDefinition') operations.set(def.name.value, def);
      if (def.kind === 'FragmentDefinition') fragments.add(def.name.value);
    }
  }
  const named = new Set([...readme.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]));
  for (const name of operations.keys()) assert.ok(named.has(name), `README.md does not describe the operation ${name}`);
  // Names in backticks that look like operations must be operations, fragments, types or enum values.
  for (const name of named) {
    const known = operations.has(name) || fragments.has(name) || schema.getType(name) || /^[A-Z_]+$/.test(name);
    assert.ok(known, `README.md names \`${name}\`, which is neither an operation, a fragment nor a schema type`);
  }
  // Enum values the README names exist in the schema.
  const enumValues = new Set();
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.getValues) for (const v of type.getValues()) enumValues.add(v.name);
  }
  // (Environment variables are the other upper-case names it may mention.)
  const isEnv = (n) => n.startsWith('ARCHIVING_') || n === 'CHROMIUM_PATH';
  for (const [, name] of readme.matchAll(/`([A-Z][A-Z_]+)`/g)) {
    if (!isEnv(name)) assert.ok(enumValues.has(name), `README.md names \`${name}\`, not an enum value of the schema`);
  }
  // Arguments the README attributes to operations are variables of those operations.
  for (const [, arg] of readme.matchAll(/`(afterSequence|after|minLevel|orderBy|lmsId)`/g)) {
    const used = [...operations.values()].some((op) => op.variableDefinitions.some((v) => v.variable.name.value === arg)
      || JSON.stringify(op).includes(`"value":"${arg}"`));
    assert.ok(used, `README.md mentions \`${arg}\`, which no operation uses`);
  }
});
