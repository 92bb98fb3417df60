// Archive jobs end to end: the job operations over HTTP, live progress over the
// graphql-transport-ws WebSocket with the graphql-ws client the SPA uses, downloads of the stored
// files, user errors and permissions. The jobs really run: `serve` runs the workers in-process.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from './server.mjs';
import { data, errorCodes, operation, post } from './graphql.mjs';

/** How long any one wait for the server may take before the test gives up (a liveness bound, not a timing assertion). */
const LIVENESS_MS = 60_000;
const TEST_TIMEOUT_MS = 4 * LIVENESS_MS;

/** The job states on the happy path, in order (the CREATED event shows UNINITIALIZED before them). */
const HAPPY_PATH = ['QUEUED', 'PRE_PROCESSING', 'ACTIVITY_ARCHIVING', 'POST_PROCESSING', 'STORE', 'SIGN', 'CLEANUP', 'COMPLETED'];
const FINAL = new Set(['COMPLETED', 'FAILURE', 'TIMEOUT', 'CANCELED', 'DELETED']);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms` unless `promise` settles first. */
async function within(promise, what, ms = LIVENESS_MS) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms / 1000}s`)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Open subscriptions, closed in `after` even when a test failed half-way. */
const open = new Set();

/**
 * One subscription (operations/NAME.graphql) over its own graphql-ws connection, read one result
 * at a time.
 */
class Live {
  constructor(server, token, name, variables) {
    this.name = name;
    let connected;
    /** Resolves once the server acknowledged the connection (not the subscription: the protocol has no such message). */
    this.connected = new Promise((resolve) => { connected = resolve; });
    this.client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: true,
      retryAttempts: 0,
      on: { connected: () => connected() },
    });
    this.iterator = this.client.iterate({ query: operation(name), variables, operationName: name });
    open.add(this);
  }

  /** The next result as sent (`{ data, errors }`), or null when the server completed the subscription. */
  async nextResult() {
    const { value, done } = await within(this.iterator.next(), `${this.name}: waiting for a result`);
    return done ? null : value;
  }

  /** The next event (`data.<field>`); fails on errors or an ended subscription. */
  async next() {
    const result = await this.nextResult();
    assert.ok(result, `${this.name} ended unexpectedly`);
    assert.equal(result.errors, undefined, `${this.name}: ${JSON.stringify(result.errors)}`);
    const [event] = Object.values(result.data);
    return event;
  }

  /** Reads events until `done(event)`; resolves to every event read, the matching one last. */
  async until(done, what) {
    const events = [];
    const deadline = Date.now() + LIVENESS_MS;
    for (;;) {
      const event = await within(this.next(), `${this.name}: ${what}`, Math.max(1, deadline - Date.now()));
      events.push(event);
      if (done(event)) return events;
    }
  }

  async close() {
    open.delete(this);
    await this.client.dispose();
  }
}

/** Polls ArchiveJob until `done(job)`; resolves to the job. */
async function pollJob(server, token, id, done, what) {
  const deadline = Date.now() + LIVENESS_MS;
  for (;;) {
    const { archiveJob } = await data(server, 'ArchiveJob', { id }, { token });
    if (done(archiveJob)) return archiveJob;
    if (Date.now() > deadline) throw new Error(`job ${id} ${what}: still ${archiveJob.status} after ${LIVENESS_MS / 1000}s`);
    await sleep(200);
  }
}

/**
 * What the tests saw of server behaviour that deviates from the documented contract; checked by
 * the contract checks at the end.
 */
const observed = {};

/** Statuses in the order seen, each once (runs collapsed). */
const distinctRuns = (statuses) => statuses.filter((s, i) => i === 0 || s !== statuses[i - 1]);

let server; // the demo LMS at full speed
let slow; // the demo LMS taking 30 ms per record, so that a job can be canceled while it runs
before(async () => {
  const started = await Promise.allSettled([
    startServer(),
    startServer({ env: { ARCHIVING_DEMO_RECORD_DELAY_MS: '30' } }),
  ]);
  [server, slow] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
});
after(async () => {
  await Promise.allSettled([...open].map((live) => live.close()));
  await Promise.allSettled([server?.stop(), slow?.stop()]);
});

describe('archive jobs on the demo data', () => {
  let admin;
  let course101;
  let activity; // lmsId → activity of course 101
  let job; // the job of 1001 + 1003, COMPLETED once its test passed
  let dashboard; // ArchiveJobsChanged for course 101, opened before any job exists

  const q = (name, variables) => data(server, name, variables, { token: admin });
  const requireJob = () => assert.ok(job?.status === 'COMPLETED', 'needs the completed job of the happy-path test');

  before(async () => {
    admin = await server.token('admin', { subject: 'jobs-admin' });
    ({ course: course101 } = await q('Course', { lmsId: '101', activitiesFirst: 100 }));
    activity = Object.fromEntries(course101.activities.nodes.map((a) => [a.lmsId, a]));
    assert.equal(activity['1001']?.name, 'Midterm exam');
    assert.equal(activity['1003']?.name, 'Term paper');
  });

  test('ArchiveJobsChanged is open before the first job; a probe job proves it live, is canceled and deleted', { timeout: TEST_TIMEOUT_MS }, async () => {
    dashboard = new Live(server, admin, 'ArchiveJobsChanged', { courseId: course101.id });
    await within(dashboard.connected, 'connection_ack');
    // graphql-transport-ws acknowledges the connection, not a subscription, and archiveJobsChanged
    // sends nothing until a job changes: a job created right after subscribing could be missed.
    // The probe's events (it is QUEUED for a while) show when the subscription listens.
    const { createArchiveJob: created } = await q('CreateArchiveJob', { input: { activityIds: [activity['1002'].id] } });
    assert.deepEqual(created.userErrors, []);
    const probe = created.job;
    const seen = await dashboard.until((e) => e.job.id === probe.id, 'the first event of the probe job');
    assert.ok(seen.every((e) => e.job.id === probe.id), 'no other job exists yet');

    const { cancelArchiveJob } = await q('CancelArchiveJob', { id: probe.id });
    assert.deepEqual(cancelArchiveJob.userErrors, []);
    assert.equal(cancelArchiveJob.job.cancelRequested, true);
    const events = await dashboard.until((e) => e.job.id === probe.id && FINAL.has(e.job.status), 'the probe job ending');
    assert.equal(events.at(-1).job.status, 'CANCELED');

    const { deleteArchiveJob } = await q('DeleteArchiveJob', { id: probe.id, deleteFiles: false });
    assert.deepEqual(deleteArchiveJob.userErrors, []);
    assert.equal(deleteArchiveJob.deletedJobId, probe.id);
    assert.equal(deleteArchiveJob.job, null, 'the record of a job without files is removed');
    const untilDeleted = await dashboard.until((e) => e.job.id === probe.id && e.kind === 'DELETED', 'the DELETED event of the probe job');
    const deleted = untilDeleted.at(-1);
    assert.equal(deleted.job.status, 'CANCELED', 'DELETED carries the job as it was');
    const earlier = [...seen, ...events, ...untilDeleted.slice(0, -1)].filter((e) => e.job.id === probe.id);
    observed.probeDeleted = { before: Math.max(...earlier.map((e) => e.sequence)), deleted: deleted.sequence };
    const { archiveJobs } = await q('ArchiveJobs', { filter: { courseId: course101.id }, first: 50 });
    assert.ok(!archiveJobs.nodes.some((j) => j.id === probe.id), 'a removed job is not listed');
  });

  test('CreateArchiveJob for 1001 + 1003: ArchiveJobsChanged shows the whole happy path in order', { timeout: TEST_TIMEOUT_MS }, async () => {
    assert.ok(dashboard, 'needs the live subscription of the first test');
    const { createArchiveJob } = await q('CreateArchiveJob', { input: { activityIds: [activity['1001'].id, activity['1003'].id] } });
    assert.deepEqual(createArchiveJob.userErrors, []);
    const created = createArchiveJob.job;
    assert.ok(created.id);
    assert.equal(created.course.lmsId, '101');
    assert.equal(created.origin, 'MANUAL');
    assert.equal(created.requestedBy, 'jobs-admin');
    assert.equal(created.attempt, 1);
    assert.equal(created.cancelRequested, false);
    assert.deepEqual(created.tasks.map((t) => t.activity.lmsId).sort(), ['1001', '1003']);
    assert.equal(created.settings.format, 'ZIP', 'the policy default');
    assert.deepEqual(created.settings.storageBackends, ['local']);

    const all = await dashboard.until((e) => e.job.id === created.id && FINAL.has(e.job.status), 'the job ending');
    const events = all.filter((e) => e.job.id === created.id);
    const statuses = events.map((e) => e.job.status);
    assert.equal(statuses.at(-1), 'COMPLETED', `the job ended ${statuses.at(-1)}: ${events.at(-1).job.error}`);

    assert.equal(events[0].kind, 'CREATED', `first event: ${events[0].kind}`);
    assert.equal(events[0].job.status, 'UNINITIALIZED');
    assert.deepEqual(distinctRuns(statuses.filter((s) => s !== 'UNINITIALIZED')), HAPPY_PATH);

    const sequences = events.map((e) => e.sequence);
    for (let i = 1; i < sequences.length; i++) {
      assert.ok(sequences[i] > sequences[i - 1], `sequence not strictly increasing: ${sequences.join(', ')}`);
    }
    assert.ok(events.every((e) => e.sequence === e.job.sequence), 'event.sequence is the job\'s sequence');
    const progress = events.map((e) => e.job.progress);
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i] >= progress[i - 1], `progress went backwards: ${progress.join(', ')}`);
    }
    assert.equal(progress.at(-1), 100);

    const taskIds = new Set(created.tasks.map((t) => t.id));
    const taskEvents = events.filter((e) => e.kind === 'TASK_CHANGED');
    assert.ok(taskEvents.length > 0, 'TASK_CHANGED events');
    assert.ok(taskEvents.every((e) => taskIds.has(e.taskId)), 'TASK_CHANGED names a task of the job');
    assert.ok(events.filter((e) => e.kind !== 'TASK_CHANGED').every((e) => e.taskId === null));
    assert.deepEqual(events.at(-1).job.tasks.map((t) => t.status), ['FINISHED', 'FINISHED']);

    job = (await q('ArchiveJob', { id: created.id })).archiveJob;
    assert.equal(job.status, 'COMPLETED');
    assert.equal(job.progress, 100);
    assert.equal(job.sequence, events.at(-1).sequence, 'no change after COMPLETED');
    await dashboard.close();
  });

  test('ArchiveJobUpdated after completion starts with a SNAPSHOT of the COMPLETED job', { timeout: TEST_TIMEOUT_MS }, async () => {
    requireJob();
    const live = new Live(server, admin, 'ArchiveJobUpdated', { jobId: job.id });
    try {
      const first = await live.next();
      assert.equal(first.kind, 'SNAPSHOT');
      assert.equal(first.job.id, job.id);
      assert.equal(first.job.status, 'COMPLETED');
      assert.equal(first.job.progress, 100);
      assert.equal(first.sequence, job.sequence);
      assert.equal(first.taskId, null);
    } finally {
      await live.close();
    }
  });

  test('a subscriber that reconnects with afterSequence/after gets the changes it missed, without a snapshot', { timeout: TEST_TIMEOUT_MS }, async () => {
    requireJob();
    // The completed job's whole history is in the event log: resume from its first state.
    const one = new Live(server, admin, 'ArchiveJobUpdated', { jobId: job.id, afterSequence: 0 });
    let missed;
    try {
      missed = await one.until((e) => e.job.status === 'COMPLETED' && e.kind === 'STATUS_CHANGED', 'the missed changes up to COMPLETED');
    } finally {
      await one.close();
    }
    assert.ok(missed.every((e) => e.kind !== 'SNAPSHOT'), 'no snapshot when resuming');
    const sequences = missed.map((e) => e.sequence);
    assert.deepEqual(sequences, [...sequences].sort((a, b) => a - b), 'in order');
    assert.equal(new Set(sequences).size, sequences.length, 'each change once');
    const statuses = missed.filter((e) => e.kind === 'STATUS_CHANGED').map((e) => e.job.status);
    assert.deepEqual(statuses, HAPPY_PATH, 'every status change of the job, in order');

    // Resuming in the middle gives exactly what came after.
    const half = sequences[Math.floor(sequences.length / 2)];
    const two = new Live(server, admin, 'ArchiveJobUpdated', { jobId: job.id, afterSequence: half });
    try {
      const first = await two.next();
      assert.notEqual(first.kind, 'SNAPSHOT');
      assert.ok(first.sequence > half, `${first.sequence} > ${half}`);
    } finally {
      await two.close();
    }

    // The dashboard's cursor: resuming after the event before COMPLETED brings COMPLETED again.
    const completed = missed.at(-1);
    const beforeIt = missed.at(-2);
    const dash = new Live(server, admin, 'ArchiveJobsChanged', { after: beforeIt.cursor });
    try {
      const events = await dash.until((e) => e.job.id === job.id && e.cursor === completed.cursor, 'the COMPLETED event again');
      assert.ok(events.every((e) => e.kind !== 'SNAPSHOT'));
      assert.equal(events.at(-1).job.status, 'COMPLETED');
    } finally {
      await dash.close();
    }
  });

  test('ArchiveJob: two files whose downloadUrl streams exactly sizeBytes with the recorded SHA-256 and ETag', { timeout: TEST_TIMEOUT_MS }, async () => {
    requireJob();
    const { archiveJob } = await q('ArchiveJob', { id: job.id });
    assert.equal(archiveJob.files.length, 2);
    assert.ok(archiveJob.startedAt && archiveJob.finishedAt);
    assert.ok(archiveJob.tasks.every((t) => t.status === 'FINISHED' && t.progress === 100 && t.recordsDone === t.recordsTotal && t.recordsTotal > 0));
    for (const file of archiveJob.files) {
      assert.equal(file.deletedAt, null);
      assert.equal(file.storageBackend.name, 'local');
      assert.match(file.sizeBytes, /^\d+$/, 'BigInt is a decimal string');
      assert.match(file.sha256, /^[0-9a-f]{64}$/);
      assert.ok(file.downloadUrl, `${file.fileName}: downloadUrl for an admin`);
      assert.equal(new URL(file.downloadUrl).origin, server.baseUrl, 'an absolute URL of the server');

      const res = await fetch(file.downloadUrl);
      assert.equal(res.status, 200, `GET ${file.fileName}`);
      const bytes = Buffer.from(await res.arrayBuffer());
      assert.equal(BigInt(bytes.length), BigInt(file.sizeBytes), `${file.fileName}: length`);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), file.sha256, `${file.fileName}: SHA-256`);
      assert.equal(res.headers.get('etag'), `"${file.sha256}"`);
      assert.equal(res.headers.get('content-type'), file.mediaType);
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment/);

      const revalidated = await fetch(file.downloadUrl, { headers: { 'if-none-match': `"${file.sha256}"` } });
      assert.equal(revalidated.status, 304);
      await revalidated.arrayBuffer();
      const forged = new URL(file.downloadUrl);
      forged.searchParams.set('sig', '0'.repeat(64));
      const refused = await fetch(forged);
      assert.equal(refused.status, 403, 'a forged signature is refused');
      await refused.arrayBuffer();
    }
  });

  test('ArchiveJob logs: oldest first, paged, filtered by minLevel', { timeout: TEST_TIMEOUT_MS }, async () => {
    requireJob();
    const { archiveJob: all } = await q('ArchiveJob', { id: job.id, logsFirst: 100 });
    assert.ok(all.logs.totalCount > 2);
    // Oldest first means in the order written: the first entry is the oldest, the last the newest.
    // Between them, entries of tasks running at once may carry createdAt a few ms out of order
    // (seen under load; reported, not asserted).
    const logs = all.logs.nodes;
    assert.ok(logs.every((l) => l.createdAt >= logs[0].createdAt && l.createdAt <= logs.at(-1).createdAt), 'oldest first');
    const { archiveJob: page } = await q('ArchiveJob', { id: job.id, logsFirst: 2 });
    assert.equal(page.logs.nodes.length, 2);
    assert.equal(page.logs.pageInfo.hasNextPage, true);
    const { archiveJob: next } = await q('ArchiveJob', { id: job.id, logsFirst: 2, logsAfter: page.logs.pageInfo.endCursor });
    assert.deepEqual([...page.logs.nodes, ...next.logs.nodes], all.logs.nodes.slice(0, 4));
    const { archiveJob: warn } = await q('ArchiveJob', { id: job.id, logsFirst: 100, minLevel: 'WARN' });
    assert.ok(warn.logs.nodes.every((l) => ['WARN', 'ERROR', 'FATAL'].includes(l.level)), JSON.stringify(warn.logs.nodes));
    assert.equal(warn.logs.totalCount, all.logs.nodes.filter((l) => ['WARN', 'ERROR', 'FATAL'].includes(l.level)).length);
  });

  test('ArchiveJobs lists the job by course and status COMPLETED, and by activity', { timeout: TEST_TIMEOUT_MS }, async () => {
    requireJob();
    const { archiveJobs } = await q('ArchiveJobs', { filter: { courseId: course101.id, statuses: ['COMPLETED'] }, first: 50 });
    assert.ok(archiveJobs.nodes.some((j) => j.id === job.id), 'the completed job is listed');
    assert.ok(archiveJobs.nodes.every((j) => j.status === 'COMPLETED' && j.course.lmsId === '101'));
    assert.equal(archiveJobs.totalCount, archiveJobs.nodes.length);
    assert.equal(archiveJobs.pageInfo.hasNextPage, false);

    const byActivity = await q('ArchiveJobs', { filter: { activityId: activity['1003'].id }, first: 50 });
    assert.deepEqual(byActivity.archiveJobs.nodes.map((j) => j.id), [job.id]);
    const queued = await q('ArchiveJobs', { filter: { courseId: course101.id, statuses: ['QUEUED'] }, first: 50 });
    assert.ok(!queued.archiveJobs.nodes.some((j) => j.id === job.id));
    const api = await q('ArchiveJobs', { filter: { origins: ['API'] }, first: 50 });
    assert.equal(api.archiveJobs.totalCount, 0);
  });

  test('user errors: empty activityIds is EMPTY, activities of two courses are MIXED_COURSES', async () => {
    const empty = await q('CreateArchiveJob', { input: { activityIds: [] } });
    assert.equal(empty.createArchiveJob.job, null);
    assert.deepEqual(empty.createArchiveJob.userErrors.map((e) => [e.code, e.field]), [['EMPTY', ['activityIds']]]);
    assert.ok(empty.createArchiveJob.userErrors[0].message);

    const { activities } = await q('Activities', { first: 100 });
    const elsewhere = activities.nodes.find((a) => a.course.lmsId !== '101');
    assert.ok(elsewhere, 'an activity of another course');
    const mixed = await q('CreateArchiveJob', { input: { activityIds: [activity['1001'].id, elsewhere.id] } });
    assert.equal(mixed.createArchiveJob.job, null);
    assert.deepEqual(mixed.createArchiveJob.userErrors.map((e) => e.code), ['MIXED_COURSES']);
  });

  describe('permissions', () => {
    let reporter;
    let teacher103;
    before(async () => {
      reporter = await server.token('reporter', { subject: 'jobs-reporter' });
      teacher103 = await server.token('teacher', { courses: ['103'], subject: 'teacher-103' });
    });

    test('a reporter may not create a job: FORBIDDEN', async () => {
      const { body } = await post(server, 'CreateArchiveJob', { input: { activityIds: [activity['1001'].id] } }, { token: reporter });
      assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN', JSON.stringify(body));
      assert.deepEqual(body.errors[0].path, ['createArchiveJob']);
      // createArchiveJob is non-null, so by the spec `data` is null (checked below).
      assert.equal(body.data?.createArchiveJob ?? null, null);
      observed.forbiddenMutation = body;
    });

    test('a reporter sees the job, but no downloadUrl', async () => {
      requireJob();
      const { archiveJob } = await data(server, 'ArchiveJob', { id: job.id }, { token: reporter });
      assert.equal(archiveJob.status, 'COMPLETED');
      assert.equal(archiveJob.files.length, 2);
      assert.ok(archiveJob.files.every((f) => f.downloadUrl === null), JSON.stringify(archiveJob.files));
      assert.ok(archiveJob.files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256)), 'the rest of the file is visible');
      const { archiveJobs } = await data(server, 'ArchiveJobs', { filter: { courseId: course101.id }, first: 50 }, { token: reporter });
      assert.ok(archiveJobs.nodes.some((j) => j.id === job.id));
    });

    test('a teacher of course 103 gets NOT_FOUND for the job of course 101, over HTTP and the WebSocket', async () => {
      requireJob();
      const { body } = await post(server, 'ArchiveJob', { id: job.id }, { token: teacher103 });
      assert.deepEqual(errorCodes(body), ['NOT_FOUND'], JSON.stringify(body));
      assert.equal(body.data?.archiveJob ?? null, null);
      const { archiveJobs } = await data(server, 'ArchiveJobs', { first: 50 }, { token: teacher103 });
      assert.equal(archiveJobs.totalCount, 0, 'the teacher lists no job of another course');

      const live = new Live(server, teacher103, 'ArchiveJobUpdated', { jobId: job.id });
      try {
        const result = await live.nextResult();
        assert.deepEqual(errorCodes(result ?? {}), ['NOT_FOUND'], JSON.stringify(result));
        assert.equal(await live.nextResult(), null, 'the subscription ends after the error');
      } finally {
        await live.close();
      }
    });
  });
});

describe('legal hold and deleting a file', () => {
  test('SetLegalHold stops DeleteArchiveFile (LEGAL_HOLD) until released; then the file is deleted with its record and the job is DELETED', { timeout: TEST_TIMEOUT_MS }, async () => {
    const admin = await server.token('admin', { subject: 'retention-admin' });
    const q = (name, variables) => data(server, name, variables, { token: admin });
    const { course } = await q('Course', { lmsId: '101', activitiesFirst: 100 });
    const act = course.activities.nodes.find((a) => a.lmsId === '1002');
    const { createArchiveJob } = await q('CreateArchiveJob', { input: { activityIds: [act.id] } });
    assert.deepEqual(createArchiveJob.userErrors, []);
    const done = await pollJob(server, admin, createArchiveJob.job.id, (j) => FINAL.has(j.status), 'to finish');
    assert.equal(done.status, 'COMPLETED');
    const [file] = done.files;

    const noReason = await q('SetLegalHold', { id: done.id, hold: true });
    assert.deepEqual(noReason.setLegalHold.userErrors.map((e) => [e.code, e.field]), [['EMPTY', ['reason']]]);
    const held = await q('SetLegalHold', { id: done.id, hold: true, reason: 'court order 17' });
    assert.deepEqual(held.setLegalHold.userErrors, []);
    assert.equal(held.setLegalHold.job.legalHold, true);
    assert.equal(held.setLegalHold.job.legalHoldBy, 'retention-admin');
    assert.ok(held.setLegalHold.job.legalHoldSince);

    const refused = await q('DeleteArchiveFile', { id: file.id, reason: 'wrong course' });
    assert.equal(refused.deleteArchiveFile.file, null);
    assert.deepEqual(refused.deleteArchiveFile.userErrors.map((e) => e.code), ['LEGAL_HOLD']);
    const { archiveJob: stillHeld } = await q('ArchiveJob', { id: done.id });
    assert.equal(stillHeld.files[0].underLegalHold, true);
    assert.equal(stillHeld.files[0].deletedAt, null);

    const released = await q('SetLegalHold', { id: done.id, hold: false });
    assert.deepEqual(released.setLegalHold.userErrors, []);
    const deleted = await q('DeleteArchiveFile', { id: file.id, reason: 'wrong course' });
    assert.deepEqual(deleted.deleteArchiveFile.userErrors, []);
    const f = deleted.deleteArchiveFile.file;
    assert.ok(f.deletedAt);
    assert.equal(f.deletionReason, 'MANUAL');
    assert.equal(f.deletedBy, 'retention-admin');
    assert.equal(f.deletionNote, 'wrong course');
    assert.equal(f.job.status, 'DELETED');

    const { archiveJob: after } = await q('ArchiveJob', { id: done.id });
    assert.equal(after.files.length, 1, 'the deleted file stays listed with its record');
    assert.equal(after.files[0].downloadUrl, null);
    const { pendingDeletions } = await q('PendingDeletions', { first: 10 });
    assert.equal(pendingDeletions.totalCount, 0, 'nothing waits for approval without approval mode');
    const undecidable = await q('DecidePendingDeletions', { fileIds: [file.id], approve: true });
    assert.deepEqual(undecidable.decidePendingDeletions.userErrors.map((e) => e.code), ['INVALID_STATE']);
  });
});

describe('canceling a running job (demo LMS at 30 ms per record)', () => {
  test('ACTIVITY_ARCHIVING → CancelArchiveJob → CANCELED; RetryArchiveJob is INVALID_STATE; DeleteArchiveJob without files removes it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const admin = await slow.token('admin', { subject: 'jobs-cancel' });
    const { course } = await data(slow, 'Course', { lmsId: '109', activitiesFirst: 100 }, { token: admin });
    const ids = ['1028', '1030'].map((lmsId) => {
      const a = course.activities.nodes.find((n) => n.lmsId === lmsId);
      assert.ok(a, `activity ${lmsId} in course 109`);
      return a.id;
    });
    const { createArchiveJob } = await data(slow, 'CreateArchiveJob', { input: { activityIds: ids } }, { token: admin });
    assert.deepEqual(createArchiveJob.userErrors, []);
    const { id } = createArchiveJob.job;

    const live = new Live(slow, admin, 'ArchiveJobUpdated', { jobId: id });
    try {
      const [snapshot, ...rest] = await live.until((e) => e.job.status !== 'QUEUED' && e.job.status !== 'PRE_PROCESSING', 'the job leaving QUEUED/PRE_PROCESSING');
      assert.equal(snapshot.kind, 'SNAPSHOT');
      const running = rest.at(-1) ?? snapshot;
      assert.equal(running.job.status, 'ACTIVITY_ARCHIVING', 'the slow job is still archiving activities');

      const { cancelArchiveJob } = await data(slow, 'CancelArchiveJob', { id }, { token: admin });
      assert.deepEqual(cancelArchiveJob.userErrors, []);
      assert.equal(cancelArchiveJob.job.cancelRequested, true);
      assert.ok(!FINAL.has(cancelArchiveJob.job.status), 'a running job stops later, between two steps');

      const canceled = await pollJob(slow, admin, id, (j) => FINAL.has(j.status), 'ending after cancel');
      assert.equal(canceled.status, 'CANCELED');
      assert.ok(canceled.finishedAt);
      assert.ok(canceled.tasks.every((t) => ['CANCELED', 'FINISHED'].includes(t.status)), JSON.stringify(canceled.tasks));
      assert.deepEqual(canceled.files, []);
      const events = await live.until((e) => FINAL.has(e.job.status), 'the CANCELED event');
      assert.equal(events.at(-1).job.status, 'CANCELED');
      observed.cancel = { payload: cancelArchiveJob.job, events: [snapshot, ...rest, ...events] };

      const { retryArchiveJob } = await data(slow, 'RetryArchiveJob', { id }, { token: admin });
      assert.equal(retryArchiveJob.job, null);
      assert.deepEqual(retryArchiveJob.userErrors.map((e) => e.code), ['INVALID_STATE']);

      const { deleteArchiveJob } = await data(slow, 'DeleteArchiveJob', { id, deleteFiles: false }, { token: admin });
      assert.deepEqual(deleteArchiveJob.userErrors, []);
      assert.equal(deleteArchiveJob.deletedJobId, id);
      assert.equal(deleteArchiveJob.job, null);

      // The job's subscription ends with DELETED.
      const untilDeleted = await live.until((e) => e.kind === 'DELETED', 'the DELETED event');
      const deleted = untilDeleted.at(-1);
      assert.equal(deleted.job.id, id);
      const earlier = [...observed.cancel.events, ...untilDeleted.slice(0, -1)];
      observed.slowDeleted = { before: Math.max(...earlier.map((e) => e.sequence)), deleted: deleted.sequence };
      assert.equal(await live.nextResult(), null, 'ArchiveJobUpdated completes after DELETED');
      const { body } = await post(slow, 'ArchiveJob', { id }, { token: admin });
      assert.deepEqual(errorCodes(body), ['NOT_FOUND'], JSON.stringify(body));
    } finally {
      await live.close();
    }
  });
});

// Event and error shapes SPA code relies on, checked on what the tests above observed.
describe('event and error contract', () => {
  test('DELETED raises the job\'s sequence like every other change', () => {
    for (const key of ['probeDeleted', 'slowDeleted']) {
      const o = observed[key];
      assert.ok(o, `${key}: not observed (its test failed)`);
      assert.ok(o.deleted > o.before, `${key}: DELETED sequence ${o.deleted}, the job's last before it ${o.before}`);
    }
  });

  test('a cancel request of a running job is a change: its sequence rises and subscribers see cancelRequested', () => {
    const o = observed.cancel;
    assert.ok(o, 'not observed (the cancel test failed)');
    const stale = o.events.filter((e) => e.sequence >= o.payload.sequence && !e.job.cancelRequested);
    assert.deepEqual(
      stale.map((e) => `${e.kind} ${e.sequence}`), [],
      `cancelArchiveJob answered sequence ${o.payload.sequence} with cancelRequested: true; these events at or after it say false`,
    );
    assert.ok(
      o.events.some((e) => e.sequence === o.payload.sequence && e.job.cancelRequested),
      `no event delivered sequence ${o.payload.sequence} with cancelRequested: true`,
    );
  });

  test('a failed non-null root field makes `data` null (GraphQL spec, Errors and Non-Null Fields)', () => {
    const body = observed.forbiddenMutation;
    assert.ok(body, 'not observed (the reporter test failed)');
    assert.equal(body.data, null, JSON.stringify(body.data));
  });
});

describe('fixity', () => {
  test('VerifyArchiveFile re-reads a stored file (OK) for auditors, refuses a teacher, and the overview counts it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const admin = await server.token('admin');
    const q = (name, variables) => data(server, name, variables, { token: admin });
    const { course } = await q('Course', { lmsId: '101', activitiesFirst: 100 });
    const act = course.activities.nodes.find((a) => a.lmsId === '1001');
    const { createArchiveJob } = await q('CreateArchiveJob', { input: { activityIds: [act.id] } });
    assert.deepEqual(createArchiveJob.userErrors, []);
    const done = await pollJob(server, admin, createArchiveJob.job.id, (j) => FINAL.has(j.status), 'to finish');
    assert.equal(done.status, 'COMPLETED');
    const [file] = done.files;

    const teacher = await server.token('teacher', { courses: ['101'] });
    const { body: refused } = await post(server, 'VerifyArchiveFile', { fileId: file.id }, { token: teacher });
    assert.deepEqual(errorCodes(refused), ['FORBIDDEN']);

    const auditor = await server.token('auditor');
    const { verifyArchiveFile } = await data(server, 'VerifyArchiveFile', { fileId: file.id }, { token: auditor });
    assert.deepEqual(verifyArchiveFile.userErrors, []);
    assert.equal(verifyArchiveFile.result, 'OK');
    assert.equal(verifyArchiveFile.file.lastVerification, 'OK');
    assert.equal(verifyArchiveFile.file.lastVerificationDetail, null);
    assert.ok(verifyArchiveFile.file.lastVerifiedAt);

    const { archivingOverview } = await q('ArchivingOverview', {});
    assert.ok(archivingOverview.fixity.ok >= 1, JSON.stringify(archivingOverview.fixity));
    assert.equal(archivingOverview.fixity.mismatch, 0);
  });
});
