// The policy and switch operations an admin SPA sends, against a real server of their own (the
// other suites read the demo data with the default policy).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';
import { data, post } from './graphql.mjs';

let server;
let admin;
before(async () => {
  server = await startServer();
  admin = await server.token('admin', { subject: 'contract-admin' });
});
after(async () => { await server?.stop(); });

const q = (name, variables) => data(server, name, variables, { token: admin });

async function categoryId(name) {
  const { categories } = await q('CategoryTree', { first: 100, childrenFirst: 100 });
  for (const c of categories.nodes) {
    if (c.name === name) return c.id;
    for (const child of c.children.nodes) if (child.name === name) return child.id;
  }
  throw new Error(`no category ${name}`);
}

describe('UpdatePolicy', () => {
  test('changes the given fields, locks, and answers the policy', async () => {
    const { updatePolicy } = await q('UpdatePolicy', {
      input: { format: { value: 'TAR_ZST', locked: true }, retentionDays: { keepForever: true }, maxConcurrentJobs: 3, jobLogLevel: 'WARN' },
    });
    assert.deepEqual(updatePolicy.userErrors, []);
    const p = updatePolicy.policy;
    assert.equal(p.format, 'TAR_ZST');
    assert.equal(p.retentionDays, null);
    assert.equal(p.maxConcurrentJobs, 3);
    assert.equal(p.maxConcurrentJobsSet, true);
    assert.equal(p.jobLogLevel, 'WARN');
    assert.deepEqual(p.locked, ['FORMAT']);
    const { policy } = await q('Policy');
    assert.equal(policy.format, 'TAR_ZST');
    assert.deepEqual(policy.activityKinds.map((k) => [k.kind, k.enabled, k.source.origin]), [['QUIZ', true, 'DEFAULT'], ['ASSIGN', true, 'DEFAULT']]);
  });

  test('report options change one by one and lock as a whole', async () => {
    const { updatePolicy } = await q('UpdatePolicy', { input: { reportOptions: { value: { html: false }, locked: true } } });
    assert.deepEqual(updatePolicy.userErrors, []);
    assert.deepEqual(updatePolicy.policy.reportOptions, { html: false, rightAnswers: true, feedback: true, answerHistory: true });
    assert.ok(updatePolicy.policy.locked.includes('REPORT_OPTIONS'));
    const { updatePolicy: unlocked } = await q('UpdatePolicy', { input: { reportOptions: { value: { html: true }, locked: false } } });
    assert.deepEqual(unlocked.policy.reportOptions, { html: true, rightAnswers: true, feedback: true, answerHistory: true });
    assert.ok(!unlocked.policy.locked.includes('REPORT_OPTIONS'));
  });

  test('invalid values are userErrors naming the field, and change nothing', async () => {
    const { updatePolicy } = await q('UpdatePolicy', { input: { filenamePattern: { value: '${nope}' }, maxConcurrentJobs: 0 } });
    assert.equal(updatePolicy.policy, null);
    assert.deepEqual(updatePolicy.userErrors.map((e) => [e.field, e.code]), [
      [['filenamePattern', 'value'], 'INVALID_FILENAME_PATTERN'],
      [['maxConcurrentJobs'], 'INVALID'],
    ]);
    const { policy } = await q('Policy');
    assert.equal(policy.maxConcurrentJobs, 3);
  });

  test('a reporter is FORBIDDEN', async () => {
    const reporter = await server.token('reporter');
    const { body } = await post(server, 'UpdatePolicy', { input: { timestamping: { value: false } } }, { token: reporter });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['FORBIDDEN']);
  });
});

describe('SetCategoryArchiving, SetActivityKindArchiving', () => {
  test('a category switched off is inherited below it, and shows who decided', async () => {
    const science = await categoryId('Faculty of Science');
    const maths = await categoryId('Mathematics');
    const { setCategoryArchiving } = await q('SetCategoryArchiving', { input: { categoryId: science, enabled: false } });
    assert.deepEqual(setCategoryArchiving.userErrors, []);
    assert.equal(setCategoryArchiving.category.archivingEnabled, false);
    assert.equal(setCategoryArchiving.category.archivingSetting, false);
    const { node } = await q('CategoryArchiving', { id: maths });
    assert.equal(node.archivingEnabled, false);
    assert.equal(node.archivingSetting, null);
    assert.equal(node.archivingEnabledSource.origin, 'INHERITED');
    assert.equal(node.archivingEnabledSource.category.name, 'Faculty of Science');
    await q('SetCategoryArchiving', { input: { categoryId: science, enabled: null } });
    const again = await q('CategoryArchiving', { id: maths });
    assert.equal(again.node.archivingEnabledSource.origin, 'DEFAULT');
  });

  test('a kind switched off globally shows on activities, a category overrides it', async () => {
    const maths = await categoryId('Mathematics');
    const { setActivityKindArchiving: global } = await q('SetActivityKindArchiving', { input: { kind: 'QUIZ', enabled: false } });
    assert.equal(global.category, null);
    assert.deepEqual([global.activityKind.enabled, global.activityKind.setting, global.activityKind.source.origin], [false, false, 'GLOBAL']);
    const { setActivityKindArchiving: local } = await q('SetActivityKindArchiving', { input: { categoryId: maths, kind: 'QUIZ', enabled: true } });
    assert.equal(local.activityKind.source.origin, 'CATEGORY');
    assert.equal(local.activityKind.source.category.name, 'Mathematics');
    const { activities } = await q('Activities', { first: 100, filter: { kinds: ['QUIZ'] } });
    const byCourse = new Map(activities.nodes.map((a) => [a.course.lmsId, a]));
    assert.equal(byCourse.get('101').archivingEnabled, true, 'Mathematics overrides the global switch');
    assert.equal(byCourse.get('103').archivingEnabled, false);
    assert.equal(byCourse.get('103').archivingEnabledSource.origin, 'GLOBAL');
    assert.equal(byCourse.get('103').archivingEnabledSource.activityKind, 'QUIZ');
  });
});
