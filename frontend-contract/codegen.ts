import type { CodegenConfig } from '@graphql-codegen/cli';

// Generates the SPA's typed documents from the committed SDL and operations/.
// The output in src/gql/ is committed; `npm test` fails when it is stale.
// OUT_DIR lets the staleness check generate into a temporary directory.
const outDir = process.env.CODEGEN_OUT_DIR ?? 'src/gql/';

const config: CodegenConfig = {
  overwrite: true,
  schema: '../schema.graphql',
  documents: ['operations/**/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    [outDir]: {
      preset: 'client',
      config: {
        useTypeImports: true,
        scalars: {
          DateTime: 'string',
          BigInt: 'string',
        },
      },
    },
  },
};

export default config;
