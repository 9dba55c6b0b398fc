import neostandard from 'neostandard';

/**
 * ESLint with neostandard (as fastify/demo uses) for what it catches — unused code, shadowed or undefined
 * names, unsafe comparisons, promise misuse — without its formatting rules: the code keeps its own style
 * (semicolons, single quotes, wide lines), which tsc and review already hold steady.
 */
export default [
  ...neostandard({
    ts: true,
    noStyle: true,
    ignores: ['dist/**', 'worker/**', 'openapi/**', 'node_modules/**', 'test/**/.venv*/**', 'test/reliability/.venv/**'],
  }),
  {
    rules: {
      // `void promise` is how this code says "fire and forget, on purpose" (the promise handles its own errors).
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
];
