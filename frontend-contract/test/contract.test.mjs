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
