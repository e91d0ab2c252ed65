import { ConfigError, type ServiceInstance } from '@trellis/core';
import { compileCallMatch, parseRoutingRules, Router, type RoutingRules } from '@trellis/loadbalancer';
import { call, instance, seeded } from './fixtures.js';
import { refusal } from '../../core/test/config-refusal.js';

const v1 = [instance('v1-a', { version: 'v1' }), instance('v1-b', { version: 'v1' })];
const v2 = [instance('v2-a', { version: 'v2', tags: ['canary'], zone: 'eu-1', labels: { tier: 'gold' } })];
const all: readonly ServiceInstance[] = [...v1, ...v2];
const ids = (list: readonly ServiceInstance[]): string[] => list.map((i) => i.id);

describe('compileCallMatch', () => {
  it('matches on method, one or several, whatever the case in the rule', () => {
    const one = compileCallMatch({ method: 'get' });
    const several = compileCallMatch({ method: ['PUT', 'delete'] });
    expect(one(call({ method: 'GET' }))).toBe(true);
    expect(one(call({ method: 'POST' }))).toBe(false);
    expect(several(call({ method: 'DELETE' }))).toBe(true);
    expect(several(call({ method: 'GET' }))).toBe(false);
  });

  it('matches the path exactly, by prefix or by an anchored regex, ignoring the query', () => {
    const exact = compileCallMatch({ path: '/users/1' });
    expect(exact(call({ path: '/users/1' }))).toBe(true);
    expect(exact(call({ path: '/users/1?x=1' }))).toBe(true);
    expect(exact(call({ path: '/users/12' }))).toBe(false);
    const prefix = compileCallMatch({ path: { prefix: '/admin/' } });
    expect(prefix(call({ path: '/admin/users' }))).toBe(true);
    expect(prefix(call({ path: '/users?next=/admin/' }))).toBe(false);
    const regex = compileCallMatch({ path: { regex: '/users/[0-9]+' } });
    expect(regex(call({ path: '/users/42?full=1' }))).toBe(true);
    expect(regex(call({ path: '/users/42/posts' }))).toBe(false);
    expect(regex(call({ path: '/v2/users/42' }))).toBe(false);
  });

  it('matches headers by value, prefix, regex, presence or absence, whatever the case of names', () => {
    const match = compileCallMatch({
      headers: {
        'X-Canary': 'always',
        'x-client': { prefix: 'ios-' },
        'x-build': { regex: '[0-9]{3}' },
        'x-debug': { present: false },
      },
    });
    const headers = { 'x-canary': 'always', 'X-Client': 'ios-17', 'x-build': '123' };
    expect(match(call({ headers }))).toBe(true);
    expect(match(call({ headers: { ...headers, 'x-debug': '1' } }))).toBe(false);
    expect(match(call({ headers: { ...headers, 'x-build': '1234' } }))).toBe(false);
    expect(match(call({ headers: { ...headers, 'x-canary': 'never' } }))).toBe(false);
    expect(match(call({ headers: { 'x-client': 'ios-17', 'x-build': '123' } }))).toBe(false);
  });

  it('matches on the target service and on the calling service', () => {
    expect(compileCallMatch({ service: 'users' })(call())).toBe(true);
    expect(compileCallMatch({ service: 'mail' })(call())).toBe(false);
    expect(compileCallMatch({ caller: 'forum' }, { caller: 'forum' })(call())).toBe(true);
    expect(compileCallMatch({ caller: 'forum' }, { caller: 'chat' })(call())).toBe(false);
    expect(compileCallMatch({ caller: 'forum' })(call())).toBe(false);
  });

  it('matches every call when empty, and only when every field holds', () => {
    expect(compileCallMatch({})(call())).toBe(true);
    const both = compileCallMatch({ method: 'GET', path: { prefix: '/users' } });
    expect(both(call({ method: 'GET', path: '/users/1' }))).toBe(true);
    expect(both(call({ method: 'POST', path: '/users/1' }))).toBe(false);
    expect(both(call({ method: 'GET', path: '/mail' }))).toBe(false);
  });

  it('refuses a bad match, naming the field', () => {
    expect(refusal(() => compileCallMatch({ path: { regex: '(' } })).field).toBe('match.path.regex');
    expect(refusal(() => compileCallMatch({ path: { exact: '/a', prefix: '/b' } })).field).toBe('match.path');
    expect(refusal(() => compileCallMatch({ heders: {} } as never)).field).toBe('match.heders');
    expect(refusal(() => compileCallMatch({ method: [] }, {}, 'faults[0].match')).field).toBe('faults[0].match.method');
  });
});

describe('Router', () => {
  const canary: RoutingRules = {
    routes: [
      { name: 'testers', match: { headers: { 'x-canary': 'always' } }, to: { version: 'v2' } },
      { name: 'admin', match: { path: { prefix: '/admin' } }, to: { tags: ['canary'], zone: 'eu-1' } },
    ],
    default: {
      split: [
        { subset: { version: 'v1' }, weight: 90 },
        { subset: { version: 'v2' }, weight: 10 },
      ],
    },
  };

  it('sends matched calls to their subset, by version, tags, zone or labels', () => {
    const router = new Router({
      routes: [
        { match: { headers: { 'x-canary': 'always' } }, to: { version: 'v2' } },
        { match: { path: { prefix: '/gold' } }, to: { labels: { tier: 'gold' } } },
        { match: { path: { prefix: '/admin' } }, to: { tags: ['canary'], zone: 'eu-1' } },
        { match: { path: { prefix: '/old' } }, to: { version: 'v1' } },
      ],
    });
    expect(ids(router.route(all, call({ headers: { 'x-canary': 'always' } })))).toEqual(['v2-a']);
    expect(ids(router.route(all, call({ path: '/gold/1' })))).toEqual(['v2-a']);
    expect(ids(router.route(all, call({ path: '/admin' })))).toEqual(['v2-a']);
    expect(ids(router.route(all, call({ path: '/old/1' })))).toEqual(['v1-a', 'v1-b']);
    expect(router.route(all, call({ path: '/other' }))).toBe(all);
  });

  it('takes the first matching route', () => {
    const router = new Router({
      routes: [
        { match: { method: 'GET' }, to: { version: 'v1' } },
        { match: { path: { prefix: '/users' } }, to: { version: 'v2' } },
      ],
    });
    expect(ids(router.route(all, call({ method: 'GET', path: '/users/1' })))).toEqual(['v1-a', 'v1-b']);
    expect(ids(router.route(all, call({ method: 'POST', path: '/users/1' })))).toEqual(['v2-a']);
  });

  it('splits the default route 90/10, within 1.5 points over 20 000 seeded calls', () => {
    const router = new Router(canary, { random: seeded(21) });
    let toV2 = 0;
    for (let i = 0; i < 20_000; i++) if (router.route(all, call())[0]?.meta.version === 'v2') toV2++;
    expect(Math.abs(toV2 / 20_000 - 0.1)).toBeLessThan(0.015);
  });

  it('gives the weight of a subset with no instance to the others', () => {
    const router = new Router(canary, { random: seeded(22) });
    for (let i = 0; i < 200; i++) expect(ids(router.route(v1, call()))).toEqual(['v1-a', 'v1-b']);
  });

  it('leaves a call with nowhere to go when its destination has no instance', () => {
    const router = new Router(canary);
    expect(router.route(v1, call({ headers: { 'x-canary': 'always' } }))).toEqual([]);
  });

  it('routes on the caller given as an option', () => {
    const rules: RoutingRules = { routes: [{ match: { caller: 'forum' }, to: { version: 'v2' } }] };
    expect(ids(new Router(rules, { caller: 'forum' }).route(all, call()))).toEqual(['v2-a']);
    expect(new Router(rules, { caller: 'chat' }).route(all, call())).toBe(all);
  });

  it('filters a subset once per instance list, not once per call', () => {
    const router = new Router({ default: { to: { version: 'v1' } } });
    expect(router.route(all, call())).toBe(router.route(all, call()));
  });

  it('replaces the table whole, or refuses it and keeps the old one', () => {
    const router = new Router(canary, { random: seeded(23) });
    const canaryCall = call({ headers: { 'x-canary': 'always' } });
    expect(() =>
      router.update({
        routes: [
          { match: { headers: { 'x-canary': 'always' } }, to: { version: 'v1' } },
          { to: { version: 'v1' }, split: [{ subset: { version: 'v2' }, weight: 1 }] },
        ],
      }),
    ).toThrow(ConfigError);
    expect(router.rules).toEqual(canary);
    expect(ids(router.route(all, canaryCall))).toEqual(['v2-a']);
    router.update({ routes: [{ match: { headers: { 'x-canary': 'always' } }, to: { version: 'v1' } }] });
    expect(ids(router.route(all, canaryCall))).toEqual(['v1-a', 'v1-b']);
  });

  it('refuses invalid rules from the constructor', () => {
    expect(() => new Router({ routes: [{ to: { version: '' } }] })).toThrow(
      'invalid configuration "routes[0].to.version"',
    );
  });
});

describe('parseRoutingRules', () => {
  it('accepts rules as JSON text, as pushed from KV', () => {
    const json = JSON.stringify({
      routes: [
        {
          name: 'mobile',
          match: { method: 'GET', headers: { 'x-client': { prefix: 'ios-' } } },
          to: { version: 'v2' },
        },
      ],
      default: {
        split: [
          { subset: { version: 'v1' }, weight: 95 },
          { subset: { version: 'v2' }, weight: 5 },
        ],
      },
    });
    const rules = parseRoutingRules(json);
    expect(rules.routes?.[0]?.name).toBe('mobile');
    expect(ids(new Router(rules).route(all, call({ headers: { 'x-client': 'ios-17' } })))).toEqual(['v2-a']);
  });

  it.each([
    [
      'a negative split weight',
      { routes: [{ to: {} }, { split: [{ subset: {}, weight: -1 }] }] },
      'routes[1].split[0].weight',
    ],
    ['a weight that is text', { default: { split: [{ subset: {}, weight: '10' }] } }, 'default.split[0].weight'],
    ['all weights 0', { default: { split: [{ subset: {}, weight: 0 }] } }, 'default.split'],
    ['both to and split', { routes: [{ to: {}, split: [{ subset: {}, weight: 1 }] }] }, 'routes[0].to'],
    ['neither to nor split', { routes: [{ match: {} }] }, 'routes[0].to'],
    ['a bad regex', { routes: [{ match: { path: { regex: '[' } }, to: {} }] }, 'routes[0].match.path.regex'],
    ['an unknown key', { routes: [{ to: { verison: 'v2' } }] }, 'routes[0].to.verison'],
    ['an unknown top-level key', { rotues: [] }, 'rotues'],
    [
      'a header match of the wrong type',
      { routes: [{ match: { headers: { a: 1 } }, to: {} }] },
      'routes[0].match.headers.a',
    ],
    ['routes that are not a list', { routes: {} }, 'routes'],
  ])('refuses %s, naming the field', (_what, input, field) => {
    expect(refusal(() => parseRoutingRules(JSON.stringify(input))).field).toBe(field);
  });

  it('refuses text that is not JSON, or JSON that is not an object', () => {
    expect(refusal(() => parseRoutingRules('{routes:')).field).toBe('rules');
    expect(refusal(() => parseRoutingRules('[]')).field).toBe('rules');
    expect(refusal(() => parseRoutingRules(null)).field).toBe('rules');
  });
});
