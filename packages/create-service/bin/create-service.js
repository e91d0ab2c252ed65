#!/usr/bin/env node
// The package's bin, outside dist/ so that npm links it even before a build; the CLI is compiled.
await import('../dist/cli.js');
