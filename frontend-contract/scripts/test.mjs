// `npm test`: every test/*.test.mjs under node's test runner (TAP, ending in its `# pass`/`# fail` summary).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'node_modules', '.bin', 'graphql-codegen'))) {
  console.error('node_modules is missing: run `npm ci` in frontend-contract/ first.');
  process.exit(1);
}
const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => join('test', f));
const { status, signal } = spawnSync(
  process.execPath,
  ['--test', '--test-reporter=tap', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(status ?? (signal ? 1 : 0));
