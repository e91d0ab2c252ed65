import { ConsulKv, parseRules, RuleStore, type Rules } from '@trellis/config';
import type { RoutesReload } from '@trellis/gateway';
import { echo, gatewaySystem, type Echoed } from './gateway-fixtures.js';

// The control plane feeds a gateway its routes: `gateway.routes` in trellis/rules/gateway.

describe('a gateway taking its routes from its rules in the registry', () => {
  const system = gatewaySystem();
  const meta = { author: 'test', reason: 'routes from the control plane' };

  it('applies the rules’ routes over the code’s, refuses an invalid set whole, and returns to the code’s when they go', async () => {
    await system.service('users', echo);
    await system.service('mail', echo);
    const { gateway, url } = await system.gateway({ routes: [{ match: { pathPrefix: '/' }, service: 'users' }] });
    const kv = new ConsulKv({ url: await system.registryUrl() });
    const store = new RuleStore<Rules>({ kv, validate: parseRules });
    const servedBy = async (path: string): Promise<string> =>
      ((await (await fetch(`${url}${path}`)).json()) as Echoed).service;
    const reloaded = (source: string, ok: boolean): Promise<RoutesReload> =>
      new Promise((resolve) => {
        const subscription = gateway.onReloaded((reload) => {
          if (reload.source !== source || reload.ok !== ok) return;
          subscription.dispose();
          resolve(reload);
        });
      });
    try {
      expect(await servedBy('/x')).toBe('users');

      const fromRules = reloaded('rules', true);
      await store.set(
        'gateway',
        {
          gateway: {
            routes: [
              { match: { pathPrefix: '/mail/' }, service: 'mail' },
              { match: { pathPrefix: '/' }, service: 'users' },
            ],
          },
        },
        meta,
      );
      expect(await fromRules).toMatchObject({ routes: 2 });
      expect(await servedBy('/mail/1')).toBe('mail');

      // Valid as a document, refused by the gateway's route schema: the routes before stay.
      const refused = reloaded('rules', false);
      await store.set(
        'gateway',
        { gateway: { routes: [{ match: { pathPrefix: 'no-slash' }, service: 'mail' }] } },
        meta,
      );
      expect((await refused).error).toContain('pathPrefix');
      expect(await servedBy('/mail/1')).toBe('mail');
      expect(gateway.app.describe().rules?.find((r) => r.service === 'gateway')?.refused).toMatchObject({
        field: 'gateway.routes[0].match.pathPrefix',
      });

      const backToCode = reloaded('code', true);
      await kv.delete('trellis/rules/gateway');
      await backToCode;
      expect(await servedBy('/mail/1')).toBe('users');
    } finally {
      await kv.close();
    }
  });
});
