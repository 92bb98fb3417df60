// The SPA's operations against a real server with the demo data, as an admin.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';
import { data, operation, post } from './graphql.mjs';

const ALL_COURSE_LMS_IDS = ['101', '102', '103', '104', '105', '106', '107', '108', '109'];

let server;
let admin;
before(async () => {
  server = await startServer();
  admin = await server.token('admin', { subject: 'contract-admin' });
});
after(async () => { await server?.stop(); });

const q = (name, variables) => data(server, name, variables, { token: admin });

/** All courses, walking pages of `first` with the Courses operation. */
async function walkCourses(first, filter) {
  const pages = [];
  let after = null;
  for (let i = 0; i < 50; i++) {
    const { courses } = await q('Courses', { first, after, filter });
    pages.push(courses);
    if (!courses.pageInfo.hasNextPage) return pages;
    assert.ok(courses.pageInfo.endCursor, 'hasNextPage without endCursor');
    after = courses.pageInfo.endCursor;
  }
  throw new Error('pagination did not end after 50 pages');
}

/** Top-level categories by name. */
async function topCategories() {
  const { categories } = await q('CategoryTree', {});
  return new Map(categories.nodes.map((c) => [c.name, c]));
}

describe('Viewer', () => {
  test('admin: subject, role, every capability, no scopes', async () => {
    const { viewer } = await q('Viewer');
    assert.equal(viewer.subject, 'contract-admin');
    assert.deepEqual(viewer.roles, ['ADMIN']);
    assert.deepEqual([...viewer.capabilities].sort(), ['AUDIT', 'CREATE', 'DELETE', 'DOWNLOAD', 'MANAGE', 'PRIVACY', 'VIEW']);
    assert.deepEqual(viewer.courseScopes, []);
    assert.deepEqual(viewer.categoryScopes, []);
  });
});

describe('CategoryTree', () => {
  test('top level: Faculty of Science (1), Faculty of Humanities (5), Miscellaneous (9)', async () => {
    const { categories } = await q('CategoryTree', {});
    assert.equal(categories.totalCount, 3);
    assert.deepEqual(
      categories.nodes.map((c) => [c.name, c.lmsId, c.depth]).sort((a, b) => a[1] - b[1]),
      [['Faculty of Science', '1', 0], ['Faculty of Humanities', '5', 0], ['Miscellaneous', '9', 0]],
    );
    const science = categories.nodes.find((c) => c.lmsId === '1');
    assert.deepEqual(science.children.nodes.map((c) => c.name).sort(), ['Computer Science', 'Mathematics']);
    assert.ok(science.children.nodes.every((c) => c.depth === 1));
    assert.equal(categories.nodes.find((c) => c.lmsId === '9').children.totalCount, 0);
  });

  test('children of a category via parentId', async () => {
    const science = (await topCategories()).get('Faculty of Science');
    const cs = science.children.nodes.find((c) => c.name === 'Computer Science');
    const { categories } = await q('CategoryTree', { parentId: cs.id });
    assert.deepEqual(categories.nodes.map((c) => c.name), ['Graduate Programs']);
    assert.equal(categories.nodes[0].depth, 2);
  });

  test('all 9 categories are reachable from the top level', async () => {
    const seen = new Set();
    const queue = [null];
    while (queue.length) {
      const parentId = queue.shift();
      const { categories } = await q('CategoryTree', { parentId, first: 100 });
      assert.equal(categories.pageInfo.hasNextPage, false);
      for (const c of categories.nodes) {
        assert.ok(!seen.has(c.lmsId), `category ${c.lmsId} seen twice`);
        seen.add(c.lmsId);
        queue.push(c.id);
      }
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), ['1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });
});

describe('Courses', () => {
  test('admin sees all 9 courses', async () => {
    const { courses } = await q('Courses', { first: 50 });
    assert.equal(courses.totalCount, 9);
    assert.equal(courses.pageInfo.hasNextPage, false);
    assert.deepEqual(courses.edges.map((e) => e.node.lmsId).sort(), ALL_COURSE_LMS_IDS);
    const cs101 = courses.edges.find((e) => e.node.lmsId === '103').node;
    assert.equal(cs101.shortName, 'CS101');
    assert.equal(cs101.fullName, 'Introduction to Programming');
    assert.equal(cs101.category.name, 'Computer Science');
    assert.deepEqual(cs101.category.ancestors.map((a) => a.name), ['Faculty of Science']);
    assert.equal(typeof cs101.archivingEnabled, 'boolean');
  });

  test('pages of 2 walk all 9 courses without duplicates, in the requested order', async () => {
    const pages = await walkCourses(2);
    assert.equal(pages.length, 5);
    assert.deepEqual(pages.map((p) => p.edges.length), [2, 2, 2, 2, 1]);
    assert.ok(pages.every((p) => p.totalCount === 9), 'totalCount is the whole count on every page');
    const ids = pages.flatMap((p) => p.edges.map((e) => e.node.id));
    assert.equal(new Set(ids).size, 9, `duplicates in ${ids}`);
    const lmsIds = pages.flatMap((p) => p.edges.map((e) => e.node.lmsId));
    assert.deepEqual([...lmsIds].sort(), ALL_COURSE_LMS_IDS);
    // Default order is SHORT_NAME ASC; the walk must keep it across pages.
    const names = pages.flatMap((p) => p.edges.map((e) => e.node.shortName));
    assert.deepEqual(names, [...names].sort());
  });

  test('orderBy FULL_NAME DESC', async () => {
    const { courses } = await q('Courses', { first: 50, orderBy: { field: 'FULL_NAME', direction: 'DESC' } });
    const names = courses.edges.map((e) => e.node.fullName);
    assert.deepEqual(names, [...names].sort().reverse());
  });

  test('filter by "Faculty of Science" returns only its courses, including sub-categories', async () => {
    const science = (await topCategories()).get('Faculty of Science');
    assert.ok(science, 'Faculty of Science is a top-level category');
    const { courses } = await q('Courses', { first: 50, filter: { categoryId: science.id } });
    const lmsIds = courses.edges.map((e) => e.node.lmsId).sort();
    assert.deepEqual(lmsIds, ['101', '102', '103', '104', '109']);
    assert.equal(courses.totalCount, 5);
    for (const { node } of courses.edges) {
      const path = [...node.category.ancestors.map((a) => a.id), node.category.id];
      assert.ok(path.includes(science.id), `${node.shortName} (${node.category.name}) is not under Faculty of Science`);
    }
    // The sub-sub-category "Graduate Programs" (CS510) is included.
    assert.ok(courses.edges.some((e) => e.node.category.name === 'Graduate Programs'));
    // Without sub-categories: the faculty itself holds no course.
    const direct = await q('Courses', { first: 50, filter: { categoryId: science.id, includeSubcategories: false } });
    assert.equal(direct.courses.totalCount, 0);
  });

  test('filter by category pages without duplicates', async () => {
    const science = (await topCategories()).get('Faculty of Science');
    const pages = await walkCourses(2, { categoryId: science.id });
    const ids = pages.flatMap((p) => p.edges.map((e) => e.node.lmsId));
    assert.deepEqual([...ids].sort(), ['101', '102', '103', '104', '109']);
  });

  test('search is case-insensitive over short and full name', async () => {
    const { courses } = await q('Courses', { first: 50, filter: { search: 'introduction to PROGRAMMING' } });
    assert.deepEqual(courses.edges.map((e) => e.node.shortName), ['CS101']);
    const math = await q('Courses', { first: 50, filter: { search: 'math' } });
    assert.deepEqual(math.courses.edges.map((e) => e.node.shortName).sort(), ['MATH101', 'MATH201']);
  });
});

describe('Course', () => {
  test('by lmsId: CS101 with its activities', async () => {
    const { course } = await q('Course', { lmsId: '103', activitiesFirst: 100 });
    assert.equal(course.lmsId, '103');
    assert.equal(course.shortName, 'CS101');
    assert.equal(course.fullName, 'Introduction to Programming');
    assert.equal(course.category.name, 'Computer Science');
    const { activities } = course;
    assert.ok(activities.totalCount > 0);
    assert.equal(activities.nodes.length, activities.totalCount);
    for (const a of activities.nodes) {
      assert.ok(['QUIZ', 'ASSIGN'].includes(a.kind), a.kind);
      assert.equal(typeof a.name, 'string');
      assert.equal(a.archiveState, 'NEVER_ARCHIVED', 'nothing is archived on a fresh server');
      assert.equal(a.lastArchivedAt, null);
      assert.equal(typeof a.isOpen, 'boolean');
    }
  });

  test('by id gives the same course; kinds filters its activities', async () => {
    const byLms = (await q('Course', { lmsId: '103', activitiesFirst: 100 })).course;
    const byId = (await q('Course', { id: byLms.id, activitiesFirst: 100 })).course;
    assert.deepEqual(byId, byLms);
    const quizzes = (await q('Course', { id: byLms.id, kinds: ['QUIZ'], activitiesFirst: 100 })).course.activities;
    assert.ok(quizzes.nodes.every((a) => a.kind === 'QUIZ'));
    assert.equal(quizzes.totalCount, byLms.activities.nodes.filter((a) => a.kind === 'QUIZ').length);
  });

  test('admin: unknown lmsId is NOT_FOUND', async () => {
    const { body } = await post(server, 'Course', { lmsId: '999' }, { token: admin });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['NOT_FOUND']);
    assert.equal(body.data?.course ?? null, null);
  });

  test('both id and lmsId is BAD_USER_INPUT', async () => {
    const { course } = await q('Course', { lmsId: '103' });
    const { body } = await post(server, 'Course', { id: course.id, lmsId: '103' }, { token: admin });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['BAD_USER_INPUT']);
  });
});

describe('Activities', () => {
  test('30 activities, QUIZ and ASSIGN', async () => {
    const { activities } = await q('Activities', { first: 100 });
    assert.equal(activities.totalCount, 30);
    assert.equal(activities.nodes.length, 30);
    assert.equal(new Set(activities.nodes.map((a) => a.id)).size, 30);
    assert.deepEqual([...new Set(activities.nodes.map((a) => a.kind))].sort(), ['ASSIGN', 'QUIZ']);
    const quiz = await q('Activities', { first: 100, filter: { kinds: ['QUIZ'] } });
    const assign = await q('Activities', { first: 100, filter: { kinds: ['ASSIGN'] } });
    assert.ok(quiz.activities.nodes.every((a) => a.kind === 'QUIZ'));
    assert.ok(assign.activities.nodes.every((a) => a.kind === 'ASSIGN'));
    assert.equal(quiz.activities.totalCount + assign.activities.totalCount, 30);
  });

  test('filter by courseId', async () => {
    const { course } = await q('Course', { lmsId: '103', activitiesFirst: 100 });
    const { activities } = await q('Activities', { first: 100, filter: { courseId: course.id } });
    assert.equal(activities.totalCount, course.activities.totalCount);
    assert.ok(activities.nodes.every((a) => a.course.lmsId === '103'));
    assert.deepEqual(activities.nodes.map((a) => a.id).sort(), course.activities.nodes.map((a) => a.id).sort());
  });

  test('filter by archiveStates and search', async () => {
    const never = await q('Activities', { first: 100, filter: { archiveStates: ['NEVER_ARCHIVED'] } });
    assert.equal(never.activities.totalCount, 30);
    const archived = await q('Activities', { first: 100, filter: { archiveStates: ['ARCHIVED', 'CHANGED'] } });
    assert.equal(archived.activities.totalCount, 0);
    const exam = await q('Activities', { first: 100, filter: { search: 'EXAM' } });
    assert.ok(exam.activities.totalCount > 0);
    assert.ok(exam.activities.nodes.every((a) => /exam/i.test(a.name)), 'search matches the name case-insensitively');
  });
});

describe('Node', () => {
  test('resolves a Course, an Activity, a CourseCategory and a StorageBackend by id', async () => {
    const { course } = await q('Course', { lmsId: '103', activitiesFirst: 1 });
    const activity = course.activities.nodes[0];
    const { storageBackends } = await q('StorageBackends', {});
    const cases = [
      [course.id, 'Course', (n) => assert.equal(n.shortName, 'CS101')],
      [activity.id, 'Activity', (n) => { assert.equal(n.name, activity.name); assert.equal(n.course.id, course.id); }],
      [course.category.id, 'CourseCategory', (n) => assert.equal(n.name, 'Computer Science')],
      [storageBackends.nodes[0].id, 'StorageBackend', (n) => assert.equal(n.name, 'local')],
    ];
    for (const [id, typename, check] of cases) {
      const { node } = await q('Node', { id });
      assert.equal(node.__typename, typename);
      assert.equal(node.id, id);
      check(node);
    }
  });

  test('a malformed id is BAD_USER_INPUT', async () => {
    const { body } = await post(server, 'Node', { id: 'not-an-id' }, { token: admin });
    assert.deepEqual(body.errors?.map((e) => e.extensions?.code), ['BAD_USER_INPUT']);
  });
});

describe('StorageBackends, Policy, ArchivingOverview', () => {
  test('one local backend, the default', async () => {
    const { storageBackends } = await q('StorageBackends', {});
    assert.equal(storageBackends.totalCount, 1);
    const [local] = storageBackends.nodes;
    assert.equal(local.name, 'local');
    assert.equal(local.driver, 'LOCAL_DIRECTORY');
    assert.equal(local.isDefault, true);
    assert.equal(local.enabled, true);
  });

  test('policy: ZIP, kept 3650 days', async () => {
    const { policy } = await q('Policy');
    assert.equal(policy.format, 'ZIP');
    assert.equal(policy.retentionDays, 3650);
    assert.equal(typeof policy.filenamePattern, 'string');
    assert.ok(policy.jobTimeoutSeconds > 0);
    assert.ok(Array.isArray(policy.locked));
    assert.ok(Array.isArray(policy.storageBackends));
  });

  test('overview: 30 activities never archived, nothing stored, no jobs', async () => {
    const { archivingOverview: o } = await q('ArchivingOverview', {});
    assert.deepEqual(o.activities, { total: 30, archived: 0, changed: 0, neverArchived: 30 });
    assert.deepEqual(o.jobs, []);
    assert.equal(o.storedFiles, 0);
    assert.equal(o.storedBytes, '0', 'BigInt is a decimal string');
  });

  test('overview of one course counts only its activities', async () => {
    const { course } = await q('Course', { lmsId: '103', activitiesFirst: 100 });
    const { archivingOverview: o } = await q('ArchivingOverview', { courseId: course.id });
    assert.equal(o.activities.total, course.activities.totalCount);
    assert.equal(o.activities.neverArchived, course.activities.totalCount);
  });
});

describe('HTTP GET', () => {
  test('GET /graphql?query=… runs a query', async () => {
    const url = new URL(server.graphqlUrl);
    url.searchParams.set('query', operation('Course'));
    url.searchParams.set('operationName', 'Course');
    url.searchParams.set('variables', JSON.stringify({ lmsId: '103' }));
    const res = await fetch(url, { headers: { authorization: `Bearer ${admin}`, accept: 'application/graphql-response+json, application/json' } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    assert.equal(body.data.course.shortName, 'CS101');

    const viewer = new URL(server.graphqlUrl);
    viewer.searchParams.set('query', operation('Viewer'));
    const res2 = await fetch(viewer, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res2.status, 200);
    assert.equal((await res2.json()).data.viewer.subject, 'contract-admin');
  });
});
