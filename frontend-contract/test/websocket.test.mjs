// The graphql-transport-ws endpoint, with the graphql-ws client the SPA will use.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from './server.mjs';
import { operation } from './graphql.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

/** Runs one operation over a fresh connection; resolves to { results, closeEvents } or rejects. */
async function overWebSocket(name, { connectionParams, variables } = {}) {
  const closeEvents = [];
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams,
    lazy: true,
    retryAttempts: 0,
    on: { closed: (event) => closeEvents.push(event) },
  });
  const results = [];
  try {
    for await (const result of client.iterate({ query: operation(name), variables, operationName: name })) {
      results.push(result);
    }
    return { results, closeEvents };
  } catch (error) {
    error.closeEvents = closeEvents;
    throw error;
  } finally {
    await client.dispose();
  }
}

test('Viewer over the WebSocket returns the token subject', async () => {
  const token = await server.token('teacher', { courses: ['101'], subject: 'ws-teacher' });
  const { results } = await overWebSocket('Viewer', { connectionParams: { authorization: `Bearer ${token}` } });
  assert.equal(results.length, 1);
  assert.equal(results[0].errors, undefined, JSON.stringify(results[0].errors));
  assert.equal(results[0].data.viewer.subject, 'ws-teacher');
  assert.deepEqual(results[0].data.viewer.courseScopes, ['101']);
});

test('a WebSocket connection without a token is refused', async () => {
  const err = await overWebSocket('Viewer').then(
    (r) => assert.fail(`expected the connection to be refused, got ${JSON.stringify(r.results)}`),
    (e) => e,
  );
  // graphql-ws rejects with the CloseEvent of the refused connection.
  assert.equal(typeof err.code, 'number', `expected a close event, got ${err}`);
  // graphql-transport-ws: a refused connection_init closes with 4403 Forbidden.
  assert.equal(err.code, 4403, `close code ${err.code} (${err.reason})`);
  assert.equal(err.closeEvents.length, 1);
});

test('a WebSocket connection with an invalid token is refused', async () => {
  const err = await overWebSocket('Viewer', { connectionParams: { authorization: 'Bearer not-a-jwt' } }).then(
    (r) => assert.fail(`expected the connection to be refused, got ${JSON.stringify(r.results)}`),
    (e) => e,
  );
  assert.equal(typeof err.code, 'number', `expected a close event, got ${err}`);
  assert.equal(err.code, 4403, `close code ${err.code} (${err.reason})`);
});
