import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, put, startServer } from './helpers.js';

afterEach(closeAll);

const limit = 256;

describe('one length limit for names and IDs, which every route accepts', () => {
  it.each([
    ['93 characters', 'x'.repeat(93)],
    ['the limit', 'a'.repeat(limit)],
    ['the limit, every character percent-encoded', 'é'.repeat(limit)],
  ])('lets a service ID of %s heartbeat, be read and deregister', async (_what, id) => {
    const { url } = await startServer(new ManualClock());
    const registered = await put(
      `${url}/v1/agent/service/register`,
      JSON.stringify({ Name: 'web', ID: id, Check: { TTL: '30s' } }),
    );
    expect(registered.status).toBe(200);
    const checkId = encodeURIComponent(`service:${id}`);
    expect((await put(`${url}/v1/agent/check/pass/${checkId}`)).status).toBe(200);
    const service = await get(`${url}/v1/agent/service/${encodeURIComponent(id)}`);
    expect([service.status, (JSON.parse(service.text) as { ID: string }).ID]).toEqual([200, id]);
    expect((await put(`${url}/v1/agent/service/deregister/${encodeURIComponent(id)}`)).status).toBe(200);
  });

  it('refuses a longer one at registration with 400 naming the field and the limit', async () => {
    const { url } = await startServer(new ManualClock());
    const long = 'a'.repeat(limit + 1);
    const cases: [string, string, unknown][] = [
      ['/v1/agent/service/register', 'ID', { Name: 'web', ID: long }],
      ['/v1/agent/service/register', 'Name', { Name: long }],
      ['/v1/agent/service/register', 'Check.CheckID', { Name: 'web', Check: { CheckID: long, TTL: '10s' } }],
      ['/v1/agent/check/register', 'ID', { Name: 'disk', ID: long, TTL: '10s' }],
      ['/v1/agent/check/register', 'ID', { Name: long, TTL: '10s' }],
      ['/v1/catalog/register', 'Node', { Node: long, Address: '10.0.0.1' }],
      ['/v1/catalog/register', 'Service.ID', { Node: 'n', Address: 'a', Service: { Service: 'db', ID: long } }],
      ['/v1/catalog/register', 'Checks[0].CheckID', { Node: 'n', Address: 'a', Checks: [{ CheckID: long }] }],
    ];
    for (const [route, field, body] of cases) {
      const reply = await put(`${url}${route}`, JSON.stringify(body));
      expect([route, reply.status, reply.text]).toEqual([
        route,
        400,
        `Request decode failed: ${field} is longer than ${limit} characters, the limit for names and IDs`,
      ]);
    }
    expect(JSON.parse((await get(`${url}/v1/agent/services`)).text)).toEqual({});
    expect(JSON.parse((await get(`${url}/v1/catalog/nodes`)).text)).toHaveLength(1);
  });
});
