// ESLint over the package's scripts (js/), which `make lint` runs beside `tsc -p js` (their
// types): the recommended rules, and a few that keep the scripts' own style.
import js from '@eslint/js';

export default [
  {
    files: ['js/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      ...js.configs.recommended.rules,
      // tsc (js/tsconfig.json: checkJs with the DOM's declarations) knows the browser's
      // globals, and reports every name it does not know.
      'no-undef': 'off',
      // One name, one meaning: a parameter named like an import (`token`, `message`) hides it.
      'no-shadow': 'error',
      'prefer-const': 'error',
      'no-var': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
];
