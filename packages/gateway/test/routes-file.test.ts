import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@trellis/core';
import { parseRoutes, type Gateway, type RoutesReload } from '@trellis/gateway';
import { gatewaySystem, echo, type Echoed } from './gateway-fixtures.js';
import { within } from './ws-client.js';

/** The next reload of the gateway's routes, within 10 s. */
function nextReload(gateway: Gateway): Promise<RoutesReload> {
  return within(
    10_000,
    'a reload of the routes file',
    new Promise((resolve) => {
      const watch = gateway.onReloaded((reload) => {
        watch.dispose();
        resolve(reload);
      });
    }),
  );
}

describe('routes from a file, reloaded without a restart', () => {
  const system = gatewaySystem();
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gateway-routes-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  // Replaced whole (written aside, then renamed), as deploy tools do: a reload never sees half a
  // file, which a busy machine's 50 ms poll otherwise can, between writeFile's truncate and write.
  const write = async (file: string, routes: unknown): Promise<void> => {
    await fs.writeFile(`${file}.next`, JSON.stringify({ routes }));
    await fs.rename(`${file}.next`, file);
  };

  it('applies a changed file, and refuses an invalid one keeping the routes before, shown on the admin page', async () => {
    await system.service('one', echo);
    await system.service('two', echo);
    const file = path.join(dir, 'routes.json');
    await write(file, [{ match: { pathPrefix: '/' }, service: 'one' }]);
    const { url, gateway } = await system.gateway({ routesFile: file, routesFilePollMs: 50 });
    const serviceAt = async (): Promise<string> => ((await (await fetch(`${url}/x`)).json()) as Echoed).service;
    expect(await serviceAt()).toBe('one');

    let reload = nextReload(gateway);
    await write(file, [{ match: { pathPrefix: '/' }, service: 'two' }]);
    expect(await reload).toMatchObject({ ok: true, source: file });
    expect(await serviceAt()).toBe('two');

    reload = nextReload(gateway);
    await write(file, [
      { match: { pathPrefix: '/' }, service: 'two' },
      { match: { pathPrefix: 'no-slash' }, service: 'one' },
    ]);
    expect(await reload).toMatchObject({ ok: false, routes: 1 });
    expect(gateway.lastReload?.error).toContain('routes[1].match.pathPrefix');
    expect(await serviceAt()).toBe('two');

    const status = (await (await fetch(`${url}/gateway.json`)).json()) as {
      lastReload: { ok: boolean; error: string };
    };
    expect(status.lastReload.ok).toBe(false);
    const page = await (await fetch(`${url}/gateway`)).text();
    expect(page).toContain('refused');
    expect(page).toContain('routes[1].match.pathPrefix');
  });

  it('refuses to start on an invalid file, naming the field', async () => {
    const file = path.join(dir, 'routes.json');
    await write(file, [{ match: { pathPrefix: '/' } }]);
    await expect(system.gateway({ routesFile: file })).rejects.toThrow(
      'invalid configuration "routes[0]": needs exactly one of "service", "static" or "redirect"',
    );
  });
});

describe('route validation', () => {
  it('names the field that is wrong', () => {
    const wrong = (routes: unknown): string => {
      try {
        parseRoutes(routes);
      } catch (error) {
        if (error instanceof ConfigError) return error.field;
        throw error;
      }
      return 'accepted';
    };
    expect(
      wrong([{ match: { pathPrefix: '/' }, service: 'a' }, {}, { match: { pathPrefix: 'x' }, service: 'b' }]),
    ).toBe('routes[1].match');
    expect(wrong([{ match: { pathPrefix: 'x' }, service: 'b' }])).toBe('routes[0].match.pathPrefix');
    expect(wrong([{ match: { pathPrefix: '/' }, service: 'b', retyr: false }])).toBe('routes[0].retyr');
    expect(wrong([{ match: { header: { name: 'x', regex: '(' } }, service: 'b' }])).toBe(
      'routes[0].match.header.regex',
    );
    expect(wrong([{ match: { path: '/' }, service: 'b', stripPrefix: true }])).toBe('routes[0].stripPrefix');
  });
});
