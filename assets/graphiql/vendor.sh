#!/usr/bin/env bash
# Refreshes the files GraphiQL needs from the npm registry, at exact versions (npm checks each
# package's integrity), so that the page the server embeds needs no CDN. Commit what changes.
#
#   assets/graphiql/vendor.sh
set -euo pipefail
cd "$(dirname "$0")"

GRAPHIQL=3.9.0 # the last major with a browser (UMD) bundle; it includes graphql-ws for subscriptions
REACT=18.3.1   # the last React with UMD bundles, within GraphiQL 3's peer range

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)

# take PACKAGE-VERSION.tgz FILE-IN-PACKAGE NAME-HERE
take() {
  mkdir -p "$tmp/x" && rm -rf "$tmp/x/package"
  tar xzf "$tmp/$1" -C "$tmp/x" "package/$2"
  cp "$tmp/x/package/$2" "vendor/$3"
}
rm -rf vendor && mkdir vendor
take "graphiql-$GRAPHIQL.tgz" graphiql.min.js graphiql.min.js
take "graphiql-$GRAPHIQL.tgz" graphiql.min.css graphiql.min.css
take "graphiql-$GRAPHIQL.tgz" LICENSE LICENSE.graphiql
take "react-$REACT.tgz" umd/react.production.min.js react.production.min.js
take "react-$REACT.tgz" LICENSE LICENSE.react
take "react-dom-$REACT.tgz" umd/react-dom.production.min.js react-dom.production.min.js
take "react-dom-$REACT.tgz" LICENSE LICENSE.react-dom
# The bundle's sourcemap reference points at a file that is not shipped: drop it, so that
# browsers' developer tools do not ask the server for it.
sed -i '/^\/\/# sourceMappingURL=/d' vendor/*.js vendor/*.css
printf 'graphiql %s\nreact %s\nreact-dom %s\n' "$GRAPHIQL" "$REACT" "$REACT" > vendor/VERSIONS
(cd vendor && sha256sum -- *.js *.css VERSIONS LICENSE.* > SHA256SUMS)
