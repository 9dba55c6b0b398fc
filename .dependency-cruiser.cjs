/**
 * The one-way flow of clipgate's stages (DESIGN §1, brief: "a stage never imports the stage above it"),
 * checked by `npm run lint:layers` as part of the test command. From the top: api → tasks → models →
 * (cache, embeddings, loras, dispatch, ledger, queue, sessions, webhooks, http) → contracts. The files at
 * src/ itself (app.ts, gateway.ts, server.ts, async-delivery.ts) compose the stages and may import any.
 */
const below = (stages) => `^src/(${stages.join('|')})/`;
const lower = ['cache', 'embeddings', 'loras', 'dispatch', 'ledger', 'queue', 'sessions', 'webhooks', 'http'];

module.exports = {
  forbidden: [
    {
      name: 'nothing-below-api-imports-api',
      comment: 'Transports sit on top: a task type, a store or the dispatcher never reaches into the HTTP layer.',
      severity: 'error',
      from: { path: below(['tasks', 'models', 'contracts', ...lower]) },
      to: { path: '^src/api/' },
    },
    {
      name: 'nothing-below-tasks-imports-tasks',
      comment: 'Task types use the stages below them, never the other way round.',
      severity: 'error',
      from: { path: below(['models', 'contracts', ...lower]) },
      to: { path: '^src/tasks/' },
    },
    {
      name: 'nothing-below-models-imports-models',
      comment: 'Resolution uses caches, embeddings and LoRAs; they never know about it.',
      severity: 'error',
      from: { path: below(['contracts', ...lower]) },
      to: { path: '^src/models/' },
    },
    {
      name: 'contracts-import-only-contracts',
      comment: 'Shared contracts live in one place and depend on nothing but each other and the error catalogue.',
      severity: 'error',
      from: { path: '^src/contracts/' },
      to: { path: '^src/', pathNot: ['^src/contracts/', '^src/errors\\.ts$'] },
    },
    {
      name: 'no-composition-imports',
      comment: 'The files that compose the stages (src/*.ts) are imported by no stage.',
      severity: 'error',
      from: { path: '^src/[^/]+/' },
      to: { path: '^src/(app|gateway|server|async-delivery)\\.ts$' },
    },
    {
      name: 'no-circular',
      comment: 'No module waits on itself at load time (a cycle through type-only imports costs nothing at run time).',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'src-never-imports-tests-or-bench',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
