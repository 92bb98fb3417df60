// GraphiQL as a person uses it, in headless Chromium: the page at / renders from the server alone
// (every request elsewhere is blocked and the test fails if the page makes one), a query with a
// token in the Headers pane returns data, and a subscription started from the page receives its
// SNAPSHOT over the WebSocket, authenticated by the same header. On SQLite and on PostgreSQL
// (a fresh database on ARCHIVING_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const execFileP = promisify(execFile);
const POSTGRES = process.env.ARCHIVING_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

/** Runs SQL on the PostgreSQL server's `postgres` database with psql. */
async function psql(sql) {
  try {
    await execFileP('psql', [`${POSTGRES}/postgres`, '-v', 'ON_ERROR_STOP=1', '-qc', sql]);
  } catch (err) {
    throw new Error(
      `PostgreSQL at ${POSTGRES} did not run \`${sql}\` (${err.message.trim()}). Start it (Debian: ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`; psql comes with `apt-get install postgresql-client`) ' +
        'or point ARCHIVING_TEST_POSTGRES_URL at a server where the user may create databases.',
    );
  }
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WAIT_MS = 60_000;

let server;
let browser;
let token;
/** Requests the page tried to make to anywhere but the server. */
const blocked = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not at ${CHROMIUM}: the GraphiQL test drives a real browser. ` +
        'Install it with `apt-get install chromium` (Debian; `.ci/run` does this), or point CHROMIUM_PATH at a Chromium or Chrome binary.',
    );
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root (CI) Chromium's sandbox cannot start. No host name resolves except the server's
    // address, as on a machine without internet access.
    args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
});

after(async () => {
  await browser?.close();
});

/** A page on the server's GraphiQL with every request elsewhere blocked, and its console errors. */
async function openGraphiQL() {
  const context = await browser.newContext();
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${server.baseUrl}/`) || url.startsWith('data:')) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  page.on('pageerror', (err) => problems.push(String(err)));
  await page.goto(`${server.baseUrl}/`);
  await page.locator(QUERY).waitFor({ timeout: WAIT_MS });
  return { page, problems };
}

// GraphiQL's editors (CodeMirror 5, which hangs its API on the element). The Headers pane is the
// tool editor that is not hidden (the Variables pane is the other).
const QUERY = '.graphiql-query-editor .CodeMirror';
const HEADERS = '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror';
const RESPONSE = '.graphiql-response .CodeMirror';

async function setEditor(page, selector, text) {
  await page.evaluate(([sel, value]) => {
    const el = document.querySelector(sel);
    if (!el) throw new Error(`no editor at ${sel}`);
    el.CodeMirror.setValue(value);
  }, [selector, text]);
  // GraphiQL takes an edit into its state (the parsed document, the headers) after a debounce of
  // a few hundred milliseconds; running before that would send what was there before.
  await page.waitForTimeout(1000);
}

async function editorText(page, selector) {
  return page.evaluate((sel) => document.querySelector(sel)?.CodeMirror.getValue() ?? null, selector);
}

/** Runs what is in the query editor and waits until the response pane satisfies `done`. */
async function run(page, done) {
  await page.locator('.graphiql-execute-button').click();
  const deadline = Date.now() + WAIT_MS;
  let text = '';
  while (Date.now() < deadline) {
    text = (await editorText(page, RESPONSE)) ?? '';
    if (text && done(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no fitting response within ${WAIT_MS / 1000}s; the pane shows: ${text}`);
}

for (const backend of ['sqlite', 'postgres']) describe(`GraphiQL on ${backend}`, () => {
  let database;
  before(async () => {
    const env = {};
    if (backend === 'postgres') {
      database = `am_graphiql_${randomBytes(6).toString('hex')}`;
      await psql(`CREATE DATABASE ${database}`);
      env.ARCHIVING_DATABASE_URL = `${POSTGRES}/${database}`;
    }
    server = await startServer({ env });
    token = await server.token('admin');
  });
  after(async () => {
    await server?.stop();
    if (database) await psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  test('the page renders without the internet and explains the token header', async () => {
    const { page, problems } = await openGraphiQL();
    const headers = await editorText(page, HEADERS);
    assert.match(headers, /"Authorization": "Bearer <token>"/, 'the Headers pane shows how to send a token');
    assert.match(await editorText(page, QUERY), /Authorization/, 'the default query says where the token goes');
    assert.deepEqual(blocked, [], 'the page asked for nothing outside the server');
    assert.deepEqual(problems, [], 'no errors in the browser console');
    await page.context().close();
  });

  test('a query with a token from the Headers pane returns data', async () => {
    const { page, problems } = await openGraphiQL();
    await setEditor(page, HEADERS, JSON.stringify({ Authorization: `Bearer ${token}` }));
    await setEditor(page, QUERY, '{ viewer { subject roles } courses(first: 3) { totalCount } }');
    const text = await run(page, (t) => t.includes('"data"') || t.includes('"errors"'));
    const body = JSON.parse(text);
    assert.equal(body.errors, undefined, text);
    assert.deepEqual(body.data.viewer.roles, ['ADMIN']);
    assert.ok(body.data.courses.totalCount > 0, text);

    // Without replacing the placeholder the server says what is wrong, with a code.
    await setEditor(page, HEADERS, '{"Authorization": "Bearer <token>"}');
    const refused = JSON.parse(await run(page, (t) => t.includes('UNAUTHENTICATED')));
    assert.equal(refused.errors[0].extensions.code, 'UNAUTHENTICATED');
    assert.deepEqual(blocked, []);
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  test('a subscription from the page receives its SNAPSHOT over the WebSocket', async () => {
    // A job to watch, created over HTTP.
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const gql = async (query, variables = {}) => {
      const res = await fetch(server.graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const body = await res.json();
      assert.equal(body.errors, undefined, JSON.stringify(body));
      return body.data;
    };
    // Quiz 1001 of course 101 of the demo LMS: archivable.
    const { course } = await gql('{ course(lmsId: "101") { activities { nodes { id lmsId } } } }');
    const quiz = course.activities.nodes.find((a) => a.lmsId === '1001');
    const { createArchiveJob } = await gql(
      'mutation($ids: [ID!]!) { createArchiveJob(input: { activityIds: $ids }) { job { id } userErrors { message } } }',
      { ids: [quiz.id] },
    );
    assert.deepEqual(createArchiveJob.userErrors, []);
    const jobId = createArchiveJob.job.id;

    const { page, problems } = await openGraphiQL();
    await setEditor(page, HEADERS, JSON.stringify({ Authorization: `Bearer ${token}` }));
    await setEditor(page, QUERY, `subscription { archiveJobUpdated(jobId: "${jobId}") { kind sequence job { id status } } }`);
    const text = await run(page, (t) => t.includes('archiveJobUpdated') || t.includes('"errors"'));
    const body = JSON.parse(text);
    assert.equal(body.errors, undefined, text);
    assert.equal(body.data.archiveJobUpdated.kind, 'SNAPSHOT', text);
    assert.equal(body.data.archiveJobUpdated.job.id, jobId);
    assert.deepEqual(blocked, []);
    assert.deepEqual(problems, []);
    await page.context().close();
  });
});
