import { ClosedError, ManualClock, RegistryRejectedError } from '@trellis/core';
import { MemoryRegistry } from '@trellis/registry';
import { registration } from './fixtures.js';

describe('MemoryRegistry', () => {
  let clock: ManualClock;
  let registry: MemoryRegistry;

  beforeEach(() => {
    clock = new ManualClock();
    registry = new MemoryRegistry({ clock });
  });
  afterEach(() => registry.close());

  it('lists a registered instance at once, by service, sorted by id', async () => {
    await registry.register(registration('users-b'));
    await registry.register(registration('users-a'));
    await registry.register(registration('mail-1', 'mail'));
    expect((await registry.list('users')).map((i) => i.id)).toEqual(['users-a', 'users-b']);
    expect((await registry.list('mail')).map((i) => i.id)).toEqual(['mail-1']);
    expect(await registry.list('chat')).toEqual([]);
  });

  it('replaces an instance registered again under the same id', async () => {
    await registry.register(registration('users-1'));
    const moved = registration('users-1');
    await registry.register({ ...moved, instance: { ...moved.instance, port: 5000 } });
    expect((await registry.list('users')).map((i) => i.port)).toEqual([5000]);
  });

  it('hides an instance whose TTL passes without a heartbeat, and shows it again on the next one', async () => {
    await registry.register(registration('users-1'));
    clock.advance(2_999);
    expect(await registry.list('users')).toHaveLength(1);
    clock.advance(1);
    expect(await registry.list('users')).toEqual([]);
    await registry.heartbeat('users-1');
    expect(await registry.list('users')).toHaveLength(1);
  });

  it('keeps an instance that heartbeats inside its TTL', async () => {
    await registry.register(registration('users-1'));
    for (let i = 0; i < 10; i++) {
      clock.advance(2_000);
      await registry.heartbeat('users-1');
    }
    expect(await registry.list('users')).toHaveLength(1);
  });

  it('removes an instance that stays unhealthy past deregisterAfterMs', async () => {
    await registry.register(registration('users-1'));
    clock.advance(3_000 + 59_999);
    await expect(registry.heartbeat('users-1')).resolves.toBeUndefined();
    clock.advance(3_000 + 60_000);
    await expect(registry.heartbeat('users-1')).rejects.toMatchObject({ code: 'REGISTRY_REJECTED', status: 404 });
    expect(clock.pendingTimers).toBe(0);
  });

  it('removes an instance on deregister, and refuses unknown ids with 404', async () => {
    await registry.register(registration('users-1'));
    await registry.deregister('users-1');
    expect(await registry.list('users')).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    const error: unknown = await registry.deregister('users-1').catch((e: unknown) => e);
    expect(RegistryRejectedError.is(error) && error.status).toBe(404);
    await expect(registry.heartbeat('nope')).rejects.toThrow('unknown instance id "nope"');
  });

  it('refuses every operation after close', async () => {
    await registry.register(registration('users-1'));
    await registry.close();
    expect(clock.pendingTimers).toBe(0);
    await expect(registry.list('users')).rejects.toBeInstanceOf(ClosedError);
    await expect(registry.register(registration('users-2'))).rejects.toBeInstanceOf(ClosedError);
  });
});
