import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { closeAll, health, put, startServer, type Running } from './helpers.js';

// Each case: a body, and the field the 400 message must name.
const cases: [what: string, body: string, field: string][] = [
  ['malformed JSON', '{"Name": "users",', 'JSON'],
  ['an empty body', '', 'body'],
  ['a body that is not an object', '["users"]', 'body'],
  ['a missing Name', '{"Port": 80}', 'Name'],
  ['an empty Name', '{"Name": ""}', 'Name'],
  ['a Name that is not a string', '{"Name": 42}', 'Name'],
  ['an ID that is not a string', '{"Name": "users", "ID": 7}', 'ID'],
  ['a Port given as a string', '{"Name": "users", "Port": "80"}', 'Port'],
  ['a Port out of range', '{"Name": "users", "Port": 65536}', 'Port'],
  ['a negative Port', '{"Name": "users", "Port": -1}', 'Port'],
  ['a fractional Port', '{"Name": "users", "Port": 80.5}', 'Port'],
  ['an Address that is not a string', '{"Name": "users", "Address": ["10.0.0.1"]}', 'Address'],
  ['Tags that are not strings', '{"Name": "users", "Tags": ["a", 1]}', 'Tags'],
  ['Tags that are not an array', '{"Name": "users", "Tags": "a,b"}', 'Tags'],
  ['Meta that is not an object', '{"Name": "users", "Meta": "v=1"}', 'Meta'],
  ['a Meta value that is not a string', '{"Name": "users", "Meta": {"version": 2}}', 'Meta["version"]'],
  ['a Meta key Consul refuses', '{"Name": "users", "Meta": {"a.b": "x"}}', 'Meta["a.b"]'],
  ['Weights.Passing of 0', '{"Name": "users", "Weights": {"Passing": 0}}', 'Weights.Passing'],
  ['Weights.Warning that is not an integer', '{"Name": "users", "Weights": {"Warning": "1"}}', 'Weights.Warning'],
  ['a Check that is not an object', '{"Name": "users", "Check": "10s"}', 'Check'],
  ['a Check without TTL', '{"Name": "users", "Check": {"Notes": "x"}}', 'Check.TTL'],
  ['a TTL that is not a Go duration', '{"Name": "users", "Check": {"TTL": "10 seconds"}}', 'Check.TTL'],
  ['a TTL without unit', '{"Name": "users", "Check": {"TTL": "10"}}', 'Check.TTL'],
  ['a TTL of zero', '{"Name": "users", "Check": {"TTL": "0s"}}', 'Check.TTL'],
  ['a TTL that is a boolean', '{"Name": "users", "Check": {"TTL": true}}', 'Check.TTL'],
  ['an unknown Status', '{"Name": "users", "Check": {"TTL": "10s", "Status": "ok"}}', 'Check.Status'],
  [
    'a DeregisterCriticalServiceAfter that is not a Go duration',
    '{"Name": "users", "Check": {"TTL": "10s", "DeregisterCriticalServiceAfter": "1 minute"}}',
    'Check.DeregisterCriticalServiceAfter',
  ],
  [
    'a check kind this server does not run',
    '{"Name": "users", "Check": {"TCP": "127.0.0.1:22", "Interval": "5s"}}',
    'Check.TCP',
  ],
  ['an HTTP check without Interval', '{"Name": "users", "Check": {"HTTP": "http://x/health"}}', 'Check.Interval'],
  [
    'an HTTP check with a zero Interval',
    '{"Name": "users", "Check": {"HTTP": "http://x/health", "Interval": "0s"}}',
    'Check.Interval',
  ],
  [
    'an HTTP check URL that is not absolute',
    '{"Name": "users", "Check": {"HTTP": "/health", "Interval": "5s"}}',
    'Check.HTTP',
  ],
  [
    'an HTTP check URL that is not http',
    '{"Name": "users", "Check": {"HTTP": "ftp://x/health", "Interval": "5s"}}',
    'Check.HTTP',
  ],
  [
    'an HTTP check that also has a TTL',
    '{"Name": "users", "Check": {"HTTP": "http://x/", "Interval": "5s", "TTL": "10s"}}',
    'Check.TTL',
  ],
  [
    'an HTTP check Timeout that is not a Go duration',
    '{"Name": "users", "Check": {"HTTP": "http://x/", "Interval": "5s", "Timeout": "soon"}}',
    'Check.Timeout',
  ],
  [
    'an HTTP check Method that is not a token',
    '{"Name": "users", "Check": {"HTTP": "http://x/", "Interval": "5s", "Method": "GET /"}}',
    'Check.Method',
  ],
  [
    'an HTTP check Header that is not a map of lists',
    '{"Name": "users", "Check": {"HTTP": "http://x/", "Interval": "5s", "Header": {"X-A": "b"}}}',
    'Check.Header["X-A"]',
  ],
  [
    'an HTTP check Header value with a line break',
    '{"Name": "users", "Check": {"HTTP": "http://x/", "Interval": "5s", "Header": {"X-A": ["b\\r\\nX-B: c"]}}}',
    'Check.Header["X-A"]',
  ],
  [
    'an HTTP check TLSSkipVerify that is not a boolean',
    '{"Name": "users", "Check": {"HTTP": "https://x/", "Interval": "5s", "TLSSkipVerify": "yes"}}',
    'Check.TLSSkipVerify',
  ],
  ['Checks that are not an array', '{"Name": "users", "Checks": {"TTL": "10s"}}', 'Checks'],
  ['a bad TTL in Checks', '{"Name": "users", "Checks": [{"TTL": "10s"}, {"TTL": "x"}]}', 'Checks[1].TTL'],
];

describe('a registration the server cannot accept', () => {
  let running: Running;
  let indexBefore: number;

  beforeAll(async () => {
    running = await startServer();
    // State to compare against: one service, already there.
    await running.consul.agent.service.register({ name: 'users', id: 'users-0', port: 1 });
    indexBefore = (await health(running.url, 'users')).index;
  });
  afterAll(closeAll);

  it.each(cases)('answers 400 naming the field, and changes nothing, for %s', async (_what, body, field) => {
    const reply = await put(`${running.url}/v1/agent/service/register`, body);
    expect(reply.status).toBe(400);
    expect(reply.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(reply.text).toContain(field);

    const after = await health(running.url, 'users');
    expect(after.index).toBe(indexBefore);
    expect(after.entries.map((e) => [e.Service.ID, e.Service.Port])).toEqual([['users-0', 1]]);
  });

  it('answers 400 for an invalid ?passing value', async () => {
    const reply = await fetch(`${running.url}/v1/health/service/users?passing=maybe`);
    expect(reply.status).toBe(400);
    expect(await reply.text()).toContain('passing');
  });

  it('reaches the consul client as an error carrying the message', async () => {
    await expect(running.consul.agent.service.register({ name: 'users', port: 'eighty' as never })).rejects.toThrow(
      'Request decode failed: Port must be an integer from 0 to 65535',
    );
  });
});
