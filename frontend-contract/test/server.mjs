// Starts a real Archiving Manager for the tests: fresh data dir, explicit JWT
// secret, free port; waits for /readyz; mints tokens with the `token` command;
// stops the server (and removes the data dir) at the end, also on failure.
// Several servers may run at once, each with extra settings:
// `startServer({ env: { ARCHIVING_DEMO_RECORD_DELAY_MS: '30' } })`.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export const BIN = process.env.ARCHIVING_MANAGER_BIN
  ? resolve(process.env.ARCHIVING_MANAGER_BIN)
  : resolve(here, '../../target/debug/archiving-manager');

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;

/** Servers still running in this process and their data dirs, cleaned up if the process goes away. */
const running = new Set();
const dataDirs = new Set();
function killAllSync() {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  running.clear();
  for (const dir of dataDirs) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
  dataDirs.clear();
}
process.once('exit', killAllSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => { killAllSync(); process.exit(128 + osConstants.signals[signal]); });
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Settings startServer() owns; `extraEnv` cannot override them. */
const MANAGED_ENV = ['ARCHIVING_DATA_DIR', 'ARCHIVING_LISTEN', 'ARCHIVING_JWT_SECRET'];

/**
 * The environment for `serve` and `token`: inherited, minus any ARCHIVING_* setting of the caller,
 * plus `extraEnv` (this server's own settings).
 */
function serverEnv(dataDir, port, secret, extraEnv = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ARCHIVING_')) env[k] = v;
  }
  for (const [k, v] of Object.entries(extraEnv)) env[k] = String(v);
  env.ARCHIVING_DATA_DIR = dataDir;
  env.ARCHIVING_LISTEN = `127.0.0.1:${port}`;
  env.ARCHIVING_JWT_SECRET = secret;
  env.NO_COLOR = '1';
  return env;
}

async function startOnce(extraEnv) {
  const dataDir = await mkdtemp(join(tmpdir(), 'archiving-manager-test-'));
  dataDirs.add(dataDir);
  const port = await freePort();
  const secret = randomBytes(32).toString('hex'); // 64 chars
  const env = serverEnv(dataDir, port, secret, extraEnv);
  const child = spawn(BIN, ['serve'], { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);

  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  let exited = null;
  const exitedP = new Promise((r) => child.once('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(child);
    r(exited);
  }));
  child.once('error', (err) => { stderr += `\nspawn error: ${err.message}`; });

  const baseUrl = `http://127.0.0.1:${port}`;
  const server = {
    baseUrl,
    graphqlUrl: `${baseUrl}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql/ws`,
    dataDir,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    /** Mints a token: `token('admin')`, `token('teacher', { courses: ['101'] })`. */
    async token(role, { courses = [], categories = [], subject, ttl } = {}) {
      const args = ['token', '--role', role];
      for (const c of courses) args.push('--course', String(c));
      for (const c of categories) args.push('--category', String(c));
      if (subject) args.push('--subject', subject);
      if (ttl) args.push('--ttl', ttl);
      const { stdout: out } = await execFileP(BIN, args, { env, cwd: dataDir });
      const jwt = out.trim();
      if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(jwt)) throw new Error(`token command printed no JWT: ${JSON.stringify(out)}`);
      return jwt;
    },
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exitedP;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
      dataDirs.delete(dataDir);
    },
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited !== null) {
      await server.stop();
      const err = new Error(`archiving-manager serve exited (${JSON.stringify(exited)}) before /readyz answered 200.\n--- stderr ---\n${stderr}`);
      err.addressInUse = /address (already )?in use|EADDRINUSE/i.test(stderr);
      throw err;
    }
    try {
      const res = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return server;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`archiving-manager serve was not ready within ${READY_TIMEOUT_MS / 1000}s (GET /readyz).\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`);
    }
    await sleep(100);
  }
}

/**
 * Starts a server; retries on a port lost to someone else between picking and binding.
 * `env`: extra environment variables for this server (e.g. `ARCHIVING_DEMO_RECORD_DELAY_MS`).
 */
export async function startServer({ env: extraEnv = {} } = {}) {
  const managed = Object.keys(extraEnv).filter((k) => MANAGED_ENV.includes(k));
  if (managed.length) throw new Error(`startServer() sets ${managed.join(', ')} itself`);
  if (!existsSync(BIN)) {
    throw new Error(`Server binary not found at ${BIN}. Run \`cargo build\` in the repository root first (or set ARCHIVING_MANAGER_BIN).`);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(extraEnv);
    } catch (err) {
      if (!err.addressInUse || attempt >= 3) throw err;
    }
  }
}
