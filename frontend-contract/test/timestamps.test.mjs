// The timestamp operations an admin SPA sends, against a server without a Time-Stamp Authority
// (the Rust tests run a real one): the policy says none is configured, a completed job's files
// carry no token, SignArchiveFile answers TSA_NOT_CONFIGURED, FilesToRetimestamp lists nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';
import { data, post } from './graphql.mjs';

const LIVENESS_MS = 120_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let admin;
before(async () => {
  server = await startServer();
  admin = await server.token('admin', { subject: 'timestamps-admin' });
});
after(async () => { await server?.stop(); });

const q = (name, variables) => data(server, name, variables, { token: admin });

describe('timestamps without a Time-Stamp Authority', () => {
  test('the policy shows none configured', async () => {
    const { policy } = await q('Policy');
    assert.equal(policy.timestamping, true);
    assert.deepEqual(policy.timestampAuthority, {
      configured: false, url: null, trustAnchorSubjects: [], failurePolicy: 'FAIL', basicAuth: false, maxRetries: 5,
    });
  });

  test('a job completes unsigned; SignArchiveFile is TSA_NOT_CONFIGURED, and FORBIDDEN without MANAGE', { timeout: LIVENESS_MS + 10_000 }, async () => {
    const { activities } = await q('Activities', { first: 100, filter: { kinds: ['QUIZ'] } });
    const { createArchiveJob } = await q('CreateArchiveJob', { input: { activityIds: [activities.nodes[0].id] } });
    assert.deepEqual(createArchiveJob.userErrors, []);
    const deadline = Date.now() + LIVENESS_MS;
    let job;
    for (;;) {
      ({ archiveJob: job } = await q('ArchiveJob', { id: createArchiveJob.job.id }));
      if (['COMPLETED', 'FAILURE', 'TIMEOUT', 'CANCELED'].includes(job.status)) break;
      assert.ok(Date.now() < deadline, `job still ${job.status}`);
      await sleep(200);
    }
    assert.equal(job.status, 'COMPLETED', job.error);
    const file = job.files[0];
    assert.deepEqual(file.timestamps, []);

    const { signArchiveFile } = await q('SignArchiveFile', { fileId: file.id });
    assert.equal(signArchiveFile.file, null);
    assert.equal(signArchiveFile.timestamp, null);
    assert.deepEqual(signArchiveFile.userErrors.map((e) => [e.field, e.code]), [[['fileId'], 'TSA_NOT_CONFIGURED']]);

    const reporter = await server.token('reporter');
    const { body } = await post(server, 'SignArchiveFile', { fileId: file.id }, { token: reporter });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['FORBIDDEN']);
  });

  test('FilesToRetimestamp lists nothing, and refuses a negative look-ahead', async () => {
    const { filesToRetimestamp } = await q('FilesToRetimestamp', { withinDays: 365, first: 10 });
    assert.equal(filesToRetimestamp.totalCount, 0);
    assert.deepEqual(filesToRetimestamp.nodes, []);
    const { body } = await post(server, 'FilesToRetimestamp', { withinDays: -1 }, { token: admin });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['BAD_USER_INPUT']);
  });
});
