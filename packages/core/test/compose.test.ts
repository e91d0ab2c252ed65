import { CallContext, compose, type Call, type Filter, type Service } from '@trellis/core';

const instance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };

function recordingFilter(name: string, log: string[]): Filter {
  return async (c, ctx, next) => {
    log.push(`${name}>`);
    const reply = await next(c, ctx);
    log.push(`<${name}`);
    return reply;
  };
}

describe('compose', () => {
  it('runs filters outermost first and unwinds in reverse', async () => {
    const log: string[] = [];
    const terminal: Service = async (c) => {
      log.push('service');
      return { status: 200, headers: {}, body: c.path, instance };
    };
    const send = compose([recordingFilter('a', log), recordingFilter('b', log)], terminal);
    const reply = await send(call, new CallContext());
    expect(reply.body).toBe('/users/1');
    expect(log).toEqual(['a>', 'b>', 'service', '<b', '<a']);
  });

  it('returns the service itself when there are no filters', () => {
    const terminal: Service = async () => ({ status: 204, headers: {}, body: undefined, instance });
    expect(compose([], terminal)).toBe(terminal);
  });

  it('lets a filter change the call and the reply', async () => {
    const addHeader: Filter = (c, ctx, next) => next({ ...c, headers: { ...c.headers, 'x-caller': 'forum' } }, ctx);
    const upper: Filter = async (c, ctx, next) => {
      const reply = await next(c, ctx);
      return { ...reply, body: String(reply.body).toUpperCase() };
    };
    const echo: Service = async (c) => ({ status: 200, headers: {}, body: c.headers['x-caller'], instance });
    await expect(compose([upper, addHeader], echo)(call, new CallContext())).resolves.toMatchObject({ body: 'FORUM' });
  });

  it('lets a filter answer without calling next', async () => {
    const reached: string[] = [];
    const shortCircuit: Filter = async () => ({ status: 429, headers: {}, body: 'limited', instance });
    const terminal: Service = async () => {
      reached.push('service');
      return { status: 200, headers: {}, body: 'ok', instance };
    };
    const reply = await compose([shortCircuit], terminal)(call, new CallContext());
    expect(reply.status).toBe(429);
    expect(reached).toEqual([]);
  });

  it('propagates a rejection from the service through every filter', async () => {
    const log: string[] = [];
    const failing: Service = () => Promise.reject(new Error('boom'));
    await expect(compose([recordingFilter('a', log)], failing)(call, new CallContext())).rejects.toThrow('boom');
    expect(log).toEqual(['a>']);
  });

  it('builds a chain that can be called many times independently', async () => {
    let count = 0;
    const counting: Filter = (c, ctx, next) => {
      count++;
      return next(c, ctx);
    };
    const send = compose([counting], async (c) => ({ status: 200, headers: {}, body: c.path, instance }));
    const replies = await Promise.all([
      send(call, new CallContext()),
      send({ ...call, path: '/users/2' }, new CallContext()),
    ]);
    expect(replies.map((r) => r.body)).toEqual(['/users/1', '/users/2']);
    expect(count).toBe(2);
  });
});
