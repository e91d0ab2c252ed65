import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TrellisApp } from '@trellis/app';
import { UpstreamStatusError } from '@trellis/core';
import { MemoryRegistry } from '@trellis/registry';
import { appOptions } from '../src/app-options.js';
import { GreetingsClient } from '../src/greetings-client.js';

// The service as main.ts makes it, on an in-memory registry and a free port; and a caller that
// finds it by name through that registry, with the service's own client. So each test goes
// through discovery, the client and the controller, as a call from another service would.
const registry = new MemoryRegistry();
const service = new TrellisApp({ ...appOptions, registry, port: 0, logLevel: 'silent', drainMs: 0 });
const caller = new TrellisApp({ service: 'caller', registry, clients: [GreetingsClient], logLevel: 'silent' });
const greetings = caller.container.get(GreetingsClient);

before(async () => {
  await service.start();
});

// Closed, so that no server, connection or timer keeps the test process running.
after(async () => {
  await caller.close();
  await service.close();
  await registry.close();
});

/** The 400 a call was answered: the field the service named. */
async function refusedField(call: Promise<unknown>): Promise<unknown> {
  const error = await call.then(
    () => assert.fail('the call succeeded'),
    (e: unknown) => e,
  );
  assert.ok(UpstreamStatusError.is(error), `not an UPSTREAM_STATUS error: ${String(error)}`);
  assert.equal(error.status, 400);
  return (error.body as { field?: unknown }).field;
}

describe('greetings', () => {
  it('greets by name', async () => {
    assert.deepEqual(await greetings.greeting('Ada'), { text: 'Hello, Ada!' });
  });

  it('greets with the salutation asked for, and Hello when none is', async () => {
    assert.deepEqual(await greetings.greet({ name: 'Grace', salutation: 'Good morning' }), {
      text: 'Good morning, Grace!',
    });
    assert.deepEqual(await greetings.greet({ name: 'Grace' }), { text: 'Hello, Grace!' });
  });

  it('answers 400 naming the parameter that is not a name', async () => {
    assert.equal(await refusedField(greetings.greeting('R2-D2')), 'params.name');
    assert.equal(await refusedField(greetings.greet({ name: '' })), 'body.name');
  });
});
