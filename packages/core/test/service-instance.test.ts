import { instanceOrigin } from '@trellis/core';

describe('instanceOrigin', () => {
  it('joins address and port into an HTTP origin', () => {
    expect(instanceOrigin({ address: '127.0.0.1', port: 4001 })).toBe('http://127.0.0.1:4001');
    expect(instanceOrigin({ address: 'users.internal', port: 80 })).toBe('http://users.internal:80');
  });

  it('brackets IPv6 addresses', () => {
    expect(instanceOrigin({ address: '::1', port: 4001 })).toBe('http://[::1]:4001');
  });
});
