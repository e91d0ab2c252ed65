import {
  ClosedError,
  ConfigError,
  ConnectionError,
  NoInstancesError,
  RegistryRejectedError,
  RegistryUnavailableError,
  TrellisError,
  UpstreamStatusError,
} from '@trellis/core';

describe('the error family', () => {
  it('gives each error a stable code, a retryable flag and what it concerns', () => {
    const refused = new ConnectionError('users', 'users-1', false, new Error('connect ECONNREFUSED'));
    expect(refused).toBeInstanceOf(TrellisError);
    expect(refused).toBeInstanceOf(Error);
    expect(refused).toMatchObject({
      code: 'CONNECTION_FAILED',
      retryable: true,
      service: 'users',
      instance: 'users-1',
      sent: false,
    });
    expect(refused.message).toContain('ECONNREFUSED');
    expect(refused.name).toBe('ConnectionError');
    expect((refused.cause as Error).message).toBe('connect ECONNREFUSED');

    expect(new NoInstancesError('users')).toMatchObject({ code: 'NO_INSTANCES', retryable: false, service: 'users' });
    expect(new RegistryUnavailableError('http://127.0.0.1:8500', 'ECONNREFUSED')).toMatchObject({
      code: 'REGISTRY_UNAVAILABLE',
      retryable: true,
    });
    expect(new RegistryRejectedError('register', 400, 'Missing service name')).toMatchObject({
      code: 'REGISTRY_REJECTED',
      status: 400,
      retryable: false,
    });
    expect(new ConfigError('port', 'must be an integer from 0 to 65535')).toMatchObject({
      code: 'INVALID_CONFIG',
      field: 'port',
    });
    expect(new ClosedError('Discovery')).toMatchObject({ code: 'CLOSED' });
  });

  it('marks only gateway-type statuses as retryable', () => {
    const retryable = [400, 404, 429, 500, 501, 502, 503, 504].filter(
      (status) => new UpstreamStatusError('users', 'users-1', status, null).retryable,
    );
    expect(retryable).toEqual([502, 503, 504]);
    expect(new UpstreamStatusError('users', 'users-1', 404, { error: 'no user 9' })).toMatchObject({
      code: 'UPSTREAM_STATUS',
      status: 404,
      body: { error: 'no user 9' },
      message: 'service "users" answered HTTP 404 from instance "users-1"',
    });
  });

  it('says in the message what failed and where', () => {
    expect(new NoInstancesError('users').message).toBe(
      'no instance of service "users" to call: none is registered and passing its health checks',
    );
    expect(new ConfigError('port', 'must be an integer from 0 to 65535').message).toBe(
      'invalid configuration "port": must be an integer from 0 to 65535',
    );
  });

  it('recognises Trellis errors by brand, not by class identity', () => {
    const fromAnotherCopy = Object.assign(new Error('x'), { code: 'NO_INSTANCES' });
    Object.defineProperty(fromAnotherCopy, Symbol.for('@trellis/core.TrellisError'), { value: true });
    expect(TrellisError.is(fromAnotherCopy)).toBe(true);
    expect(NoInstancesError.is(fromAnotherCopy)).toBe(true);
    expect(ConnectionError.is(fromAnotherCopy)).toBe(false);
  });

  it('does not mistake other errors or values for Trellis errors', () => {
    for (const value of [
      new Error('x'),
      Object.assign(new Error('x'), { code: 'NO_INSTANCES' }),
      null,
      undefined,
      'NO_INSTANCES',
      42,
    ]) {
      expect(TrellisError.is(value)).toBe(false);
      expect(NoInstancesError.is(value)).toBe(false);
    }
  });

  it('matches each subclass check only to its own code', () => {
    const errors = [
      new NoInstancesError('users'),
      new ConnectionError('users', 'users-1', true, 'reset'),
      new RegistryUnavailableError('r', 'down'),
      new RegistryRejectedError('register', 403, 'Permission denied'),
      new ConfigError('ttl', 'bad'),
      new ClosedError('x'),
    ];
    const checks = [
      NoInstancesError,
      ConnectionError,
      RegistryUnavailableError,
      RegistryRejectedError,
      ConfigError,
      ClosedError,
    ];
    errors.forEach((error, i) => {
      checks.forEach((check, j) => expect(check.is(error)).toBe(i === j));
    });
  });

  it('keeps the brand off the enumerable fields, so errors serialise cleanly', () => {
    expect(Object.keys(new ClosedError('x'))).not.toContain(Symbol.for('@trellis/core.TrellisError').toString());
    expect(JSON.parse(JSON.stringify(new ConfigError('port', 'bad')))).toEqual({
      code: 'INVALID_CONFIG',
      retryable: false,
      field: 'port',
      problem: 'bad',
      name: 'ConfigError',
    });
  });
});
