// The Archiving Manager's GraphiQL. Queries and mutations go to POST /graphql, subscriptions to
// /graphql/ws (graphql-transport-ws). The JSON of the Headers pane is sent as HTTP headers and, for
// subscriptions, as the payload of `connection_init`, where the server reads the same
// `Authorization` value: one header serves both.
(function () {
  'use strict';
  var wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: location.origin + '/graphql',
    subscriptionUrl: wsScheme + '//' + location.host + '/graphql/ws',
  });
  var defaultQuery = [
    '# Archiving Manager: the GraphQL API of the exam archive.',
    '#',
    '# 1. Put a token into the Headers pane below, replacing <token>:',
    '#      {"Authorization": "Bearer <token>"}',
    '#    `archiving-manager serve` prints an admin token when it starts with a generated secret;',
    '#    `archiving-manager token --role teacher --course 101` mints others.',
    '# 2. Run with the ▶ button (Ctrl-Enter). Subscriptions such as',
    '#    `subscription { archiveJobsChanged { kind job { status progress } } }` use the same header.',
    '',
    '{',
    '  viewer { subject roles }',
    '  courses(first: 5) { totalCount edges { node { lmsId shortName fullName } } }',
    '}',
    '',
  ].join('\n');
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: '{\n  "Authorization": "Bearer <token>"\n}',
      defaultEditorToolsVisibility: 'headers',
      // A token is a credential: keep it out of the browser's storage.
      shouldPersistHeaders: false,
    }),
  );
})();
