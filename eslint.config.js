// @ts-check
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// The mechanical rules of STYLE.md, so that review can look at design.
export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '.examples-check/**', '**/.test-output/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The other projects are the browser scripts of the dashboard and the /trellis page (DOM types, no Node).
        project: [
          './tsconfig.check.json',
          './packages/registry-server/src/dashboard/page/tsconfig.json',
          './packages/app/src/trellis-page/page/tsconfig.json',
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/consistent-type-exports': 'error',
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's describe and it return promises that the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'List exports by name (STYLE.md: explicit index lists).' },
      ],
      // A Service is `async (call) => reply` whether or not it awaits.
      '@typescript-eslint/require-await': 'off',
      // An AbortSignal's reason is whatever the aborter chose; pass it on as it is.
      '@typescript-eslint/prefer-promise-reject-errors': [
        'error',
        { allowThrowingAny: true, allowThrowingUnknown: true },
      ],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/test/**/*.ts'],
    rules: {
      // Tests assert on loosely typed JSON from real servers.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  // Plain JS scripts give their types in JSDoc (`// @ts-check`), which this rule cannot see.
  { files: ['**/*.js'], rules: { '@typescript-eslint/explicit-module-boundary-types': 'off' } },
  // The example services' web pages: plain browser modules, no build step.
  {
    files: ['examples/*/public/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'document',
          'window',
          'location',
          'fetch',
          'WebSocket',
          'FormData',
          'URL',
          'URLSearchParams',
          'CSS',
          'setTimeout',
          'Response',
          'Node',
          'HTMLElement',
          'HTMLFormElement',
          'HTMLInputElement',
          'HTMLAnchorElement',
          'HTMLButtonElement',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  prettier,
);
