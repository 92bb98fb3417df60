// Scopes and authentication: a teacher of course 101, no token, a bad token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';
import { data, errorCodes, post } from './graphql.mjs';

let server;
let admin;
let teacher;
before(async () => {
  server = await startServer();
  admin = await server.token('admin');
  teacher = await server.token('teacher', { courses: ['101'], subject: 'teacher-101' });
});
after(async () => { await server?.stop(); });

/**
 * A nullable root field that failed. By the GraphQL spec `data` should be
 * `{ field: null }`; this server (async-graphql) answers `data: null` when it was the only field.
 * Either way the field must carry no value.
 */
function assertFieldFailed(body, field, code) {
  assert.deepEqual(errorCodes(body), [code], JSON.stringify(body));
  assert.deepEqual(body.errors[0].path, [field]);
  assert.equal(body.data?.[field] ?? null, null, JSON.stringify(body));
}

describe('teacher scoped to course 101', () => {
  test('Viewer shows the role and the scope', async () => {
    const { viewer } = await data(server, 'Viewer', {}, { token: teacher });
    assert.equal(viewer.subject, 'teacher-101');
    assert.deepEqual(viewer.roles, ['TEACHER']);
    assert.deepEqual(viewer.courseScopes, ['101']);
    assert.deepEqual(viewer.categoryScopes, []);
    assert.ok(viewer.capabilities.includes('VIEW'));
  });

  test('Courses shows exactly course 101', async () => {
    const { courses } = await data(server, 'Courses', { first: 50 }, { token: teacher });
    assert.equal(courses.totalCount, 1);
    assert.deepEqual(courses.edges.map((e) => e.node.lmsId), ['101']);
    assert.equal(courses.pageInfo.hasNextPage, false);
  });

  test('Course 101 by lmsId works; 102 is NOT_FOUND', async () => {
    const { course } = await data(server, 'Course', { lmsId: '101', activitiesFirst: 100 }, { token: teacher });
    assert.equal(course.lmsId, '101');
    const { body } = await post(server, 'Course', { lmsId: '102' }, { token: teacher });
    assertFieldFailed(body, 'course', 'NOT_FOUND');
  });

  test('node(id) of a course out of scope is NOT_FOUND (id taken with the admin token)', async () => {
    const { course } = await data(server, 'Course', { lmsId: '102' }, { token: admin });
    assert.ok(course.id);
    const { body } = await post(server, 'Node', { id: course.id }, { token: teacher });
    assertFieldFailed(body, 'node', 'NOT_FOUND');
    // …and the same id with the admin token resolves.
    const { node } = await data(server, 'Node', { id: course.id }, { token: admin });
    assert.equal(node.__typename, 'Course');
    assert.equal(node.lmsId, '102');
  });

  test('Activities and ArchivingOverview count only course 101', async () => {
    const { course } = await data(server, 'Course', { lmsId: '101', activitiesFirst: 100 }, { token: admin });
    const { activities } = await data(server, 'Activities', { first: 100 }, { token: teacher });
    assert.equal(activities.totalCount, course.activities.totalCount);
    assert.ok(activities.nodes.every((a) => a.course.lmsId === '101'));
    const { archivingOverview } = await data(server, 'ArchivingOverview', {}, { token: teacher });
    assert.equal(archivingOverview.activities.total, course.activities.totalCount);
  });

  test('ArchivingOverview of a course out of scope is NOT_FOUND', async () => {
    const { course } = await data(server, 'Course', { lmsId: '102' }, { token: admin });
    const { body } = await post(server, 'ArchivingOverview', { courseId: course.id }, { token: teacher });
    assert.deepEqual(errorCodes(body), ['NOT_FOUND'], JSON.stringify(body));
  });
});

describe('authentication', () => {
  for (const name of ['Viewer', 'Courses', 'Policy']) {
    test(`${name} without a token is UNAUTHENTICATED`, async () => {
      const { body } = await post(server, name, {});
      assert.deepEqual(errorCodes(body), ['UNAUTHENTICATED'], JSON.stringify(body));
      assert.equal(body.data, null);
    });
  }

  test('a token signed with another secret is UNAUTHENTICATED', async () => {
    const [h, p] = admin.split('.');
    const forged = `${h}.${p}.${Buffer.from('x'.repeat(32)).toString('base64url')}`;
    const { body } = await post(server, 'Viewer', {}, { token: forged });
    assert.deepEqual(errorCodes(body), ['UNAUTHENTICATED'], JSON.stringify(body));
  });

  test('garbage token is UNAUTHENTICATED', async () => {
    const { body } = await post(server, 'Viewer', {}, { token: 'not-a-jwt' });
    assert.deepEqual(errorCodes(body), ['UNAUTHENTICATED'], JSON.stringify(body));
  });
});
