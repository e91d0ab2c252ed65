import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import Fastify from 'fastify';
import { TrellisError, type ErrorCode } from '@trellis/core';
import {
  AclInputError,
  AclNotFoundError,
  AclStore,
  DataCorruptError,
  DataDirError,
  RegistryServer,
} from '@trellis/registry-server';
import { AclRulesError, parseAclRules } from '../src/acl/acl-rules.js';
import { decodeNodeRegistration } from '../src/catalog/catalog-registration.js';
import { ExternalNodes, NodeRegistrationError } from '../src/catalog/external-nodes.js';
import { decodeServiceDefinition, RequestDecodeError } from '../src/catalog/service-definition.js';
import { BadQueryParamError, parseBlockingParams } from '../src/http/blocking-query.js';
import { BodyEncodingError, registerBodyEncoding } from '../src/http/body-encoding.js';
import { KvRequestError, KvStore } from '../src/kv/kv-store.js';
import { decodeSessionDefinition, SessionRequestError } from '../src/session/session-definition.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('nothing was thrown');
}

function expectCode(error: unknown, type: abstract new (...args: never[]) => Error, code: ErrorCode): void {
  expect(error).toBeInstanceOf(type);
  expect(TrellisError.is(error)).toBe(true);
  expect(TrellisError.hasCode(error, code)).toBe(true);
  expect(error).toMatchObject({ code, name: type.name, retryable: false });
}

describe('the errors of the registry server are Trellis errors with a code', () => {
  const acl = () => new AclStore({ initialManagementToken: 'root' });

  it('AclInputError: INVALID_ACL_INPUT', () => {
    const error = thrown(() => acl().savePolicy({ name: 'bad name!', rules: '' }));
    expectCode(error, AclInputError, 'INVALID_ACL_INPUT');
    expect(AclInputError.is(error)).toBe(true);
    expect(AclNotFoundError.is(error)).toBe(false);
  });

  it('AclNotFoundError: ACL_NOT_FOUND', () => {
    const error = thrown(() => acl().rotateToken('no-such-accessor'));
    expectCode(error, AclNotFoundError, 'ACL_NOT_FOUND');
    expect(AclNotFoundError.is(error)).toBe(true);
    expect((error as Error).message).toBe('ACL not found');
  });

  it('AclRulesError: INVALID_ACL_RULES', () => {
    expectCode(
      thrown(() => parseAclRules('nonsense "x" { policy = "read" }')),
      AclRulesError,
      'INVALID_ACL_RULES',
    );
  });

  it('DataDirError: DATA_DIR_UNUSABLE', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-codes-'));
    dirs.push(dir);
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const error = thrown(() => new RegistryServer({ logLevel: 'silent', dataDir: file }));
    expectCode(error, DataDirError, 'DATA_DIR_UNUSABLE');
    expect(DataDirError.is(error)).toBe(true);
    expect(DataCorruptError.is(error)).toBe(false);
    expect(error).toMatchObject({ path: file });
  });

  it('DataCorruptError: DATA_CORRUPT, and a DataDirError too', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-codes-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'snapshot.json'), '{');
    const error = thrown(() => new RegistryServer({ logLevel: 'silent', dataDir: dir }));
    expectCode(error, DataCorruptError, 'DATA_CORRUPT');
    expect(DataDirError.is(error)).toBe(true);
    expect(error).toBeInstanceOf(DataDirError);
  });

  it('RequestDecodeError: INVALID_REQUEST', () => {
    expectCode(
      thrown(() => decodeServiceDefinition('{"Name":"web","Port":"80"}')),
      RequestDecodeError,
      'INVALID_REQUEST',
    );
  });

  it('NodeRegistrationError: NODE_REGISTRATION_REFUSED', () => {
    const registration = decodeNodeRegistration(
      JSON.stringify({ Node: 'db-1', Address: '10.0.0.9', Checks: [{ CheckID: 'c', Name: 'c', ServiceID: 'none' }] }),
    );
    expectCode(
      thrown(() => new ExternalNodes().register(registration, 2)),
      NodeRegistrationError,
      'NODE_REGISTRATION_REFUSED',
    );
  });

  it('BadQueryParamError: INVALID_QUERY_PARAM', () => {
    expectCode(
      thrown(() => parseBlockingParams({ index: 'x' })),
      BadQueryParamError,
      'INVALID_QUERY_PARAM',
    );
  });

  it('SessionRequestError: INVALID_SESSION_REQUEST', () => {
    expectCode(
      thrown(() => decodeSessionDefinition('{"Behavior":"explode"}', 'node-1')),
      SessionRequestError,
      'INVALID_SESSION_REQUEST',
    );
  });

  it('KvRequestError: INVALID_KV_REQUEST', () => {
    const kv = new KvStore();
    try {
      expectCode(
        thrown(() => kv.set('', 'v')),
        KvRequestError,
        'INVALID_KV_REQUEST',
      );
    } finally {
      kv.close();
    }
  });

  it('BodyEncodingError: INVALID_BODY_ENCODING, answered with its status as before', async () => {
    const app = Fastify();
    const seen: unknown[] = [];
    registerBodyEncoding(app);
    app.setErrorHandler((error, _request, reply) => {
      seen.push(error);
      return reply.code((error as BodyEncodingError).statusCode).send((error as Error).message);
    });
    app.put('/', async () => 'ok');
    try {
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      const reply = await fetch(url, { method: 'PUT', headers: { 'content-encoding': 'br' }, body: 'x' });
      expect(reply.status).toBe(415);
      expectCode(seen[0], BodyEncodingError, 'INVALID_BODY_ENCODING');
    } finally {
      await app.close();
    }
  });
});
