// The admin's storage backend operations against a real server: create, update (a secret left
// out is kept, never returned), check, the overview, delete; and who may not.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer } from './server.mjs';
import { data, errorCodes, post } from './graphql.mjs';

let server;
let admin;
let dir;
before(async () => {
  server = await startServer();
  admin = await server.token('admin', { subject: 'contract-admin' });
  dir = await mkdtemp(join(tmpdir(), 'archiving-manager-backend-'));
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const q = (name, variables) => data(server, name, variables, { token: admin });

describe('storage backend management', () => {
  test('create, update, check, overview, delete', async () => {
    const { createStorageBackend: created } = await q('CreateStorageBackend', {
      input: { name: 'second', driver: 'LOCAL_DIRECTORY', tier: 'REMOTE_SLOW', settings: { path: join(dir, 'a') } },
    });
    assert.deepEqual(created.userErrors, []);
    const b = created.storageBackend;
    assert.equal(b.name, 'second');
    assert.equal(b.health.reachable, true);
    assert.equal(b.deletedAt, null);
    assert.equal(b.health.usedBytes, '0', 'BigInt is a decimal string');

    const { updateStorageBackend: updated } = await q('UpdateStorageBackend', {
      input: { id: b.id, name: 'renamed', enabled: false, settings: { path: join(dir, 'b') } },
    });
    assert.deepEqual(updated.userErrors, []);
    assert.equal(updated.storageBackend.name, 'renamed');
    assert.equal(updated.storageBackend.enabled, false);

    const { updateStorageBackend: refused } = await q('UpdateStorageBackend', { input: { id: b.id, name: 'bad name' } });
    assert.equal(refused.storageBackend, null);
    assert.deepEqual(refused.userErrors.map((e) => [e.field, e.code]), [[['name'], 'INVALID']]);

    const { checkStorageBackend: checked } = await q('CheckStorageBackend', { id: b.id });
    assert.equal(checked.health.reachable, true);

    const { archivingOverview } = await q('ArchivingOverview', {});
    assert.deepEqual(archivingOverview.storageBackends.map((s) => [s.name, s.enabled]), [['local', true], ['renamed', false]]);

    const { deleteStorageBackend: deleted } = await q('DeleteStorageBackend', { id: b.id });
    assert.deepEqual(deleted.userErrors, []);
    assert.ok(deleted.storageBackend.deletedAt);
    const { storageBackends } = await q('StorageBackends', {});
    assert.deepEqual(storageBackends.nodes.map((s) => s.name), ['local']);

    const local = storageBackends.nodes[0];
    const { deleteStorageBackend: kept } = await q('DeleteStorageBackend', { id: local.id });
    assert.deepEqual(kept.userErrors.map((e) => e.code), ['INVALID_STATE'], 'the default backend stays');
  });

  test('a teacher may not manage backends', async () => {
    const teacher = await server.token('teacher', { courses: ['101'] });
    const { storageBackends } = await q('StorageBackends', {});
    const { body } = await post(server, 'UpdateStorageBackend', { input: { id: storageBackends.nodes[0].id, name: 'mine' } }, { token: teacher });
    assert.deepEqual(errorCodes(body), ['FORBIDDEN']);
  });
});
