import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { identityOf } from './acl-enforcement.js';
import { aclNeed, methodNotAllowed, openToAll, type RouteAcl } from './route-acl.js';
import {
  AclInputError,
  AclNotFoundError,
  type AclPolicy,
  type AclStore,
  type AclToken,
  type PolicyLink,
} from './acl-store.js';
import { consistencyHeaders, text } from '../http/consul-http.js';

const aclRead: RouteAcl = { needs: () => [aclNeed('read')] };
const aclWrite: RouteAcl = { needs: () => [aclNeed('write')] };

const allMethods: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/**
 * `/v1/acl/...`: Consul's policy and token endpoints (create, read, update, delete, list, and
 * `token/self`), with Consul's field names. Who may call them is decided by the enforcement
 * hook (`acl:read` for reads, `acl:write` for writes; a management token has both). With ACLs
 * off (`acl` undefined) every one answers 401 "ACL support disabled", as Consul does.
 *
 * @example
 * registerAclApi(app, store); // or registerAclApi(app, undefined) with ACLs off
 */
export function registerAclApi(app: FastifyInstance, acl: AclStore | undefined): void {
  const routes = (url: string, handlers: Partial<Record<HTTPMethods, Handler>>): void => {
    const disabled: Handler = async (_request, reply) => text(reply, 401, 'ACL support disabled');
    for (const [method, handler] of Object.entries(handlers)) {
      // Reading tokens and policies needs acl:read, changing them acl:write; token/self needs
      // only a known token.
      const needs: RouteAcl = url === '/v1/acl/token/self' ? openToAll : method === 'GET' ? aclRead : aclWrite;
      if (handler !== undefined) {
        app.route({ method, url, config: { acl: needs }, handler: acl === undefined ? disabled : handler });
      }
    }
    const allowed = Object.keys(handlers);
    app.route({
      method: allMethods.filter((m) => !allowed.includes(m) && !(m === 'HEAD' && allowed.includes('GET'))),
      url,
      config: { acl: methodNotAllowed },
      handler: async (request, reply) =>
        text(reply.header('Allow', allowed.join(', ')), 405, `method ${request.method} not allowed`),
    });
  };
  const store = (): AclStore => acl as AclStore;
  const json = (reply: FastifyReply, body: unknown): FastifyReply =>
    reply.code(200).headers(consistencyHeaders(store().index)).type('application/json').send(JSON.stringify(body));
  // Consul's error mapping: a bad request 400, an unknown ID 403 "ACL not found".
  const guarded =
    (handler: Handler): Handler =>
    async (request, reply) => {
      try {
        return await handler(request, reply);
      } catch (error) {
        if (error instanceof AclInputError) return text(reply, 400, error.message);
        if (error instanceof AclNotFoundError) return text(reply, 403, error.message);
        throw error;
      }
    };
  const idParam = (request: FastifyRequest, name: string): string =>
    (request.params as Record<string, string>)[name] ?? '';
  // Secrets are shown to a token that may write ACLs, as Consul redacts them for acl:read.
  const showSecrets = (request: FastifyRequest): boolean => identityOf(request)?.authorizer.allowsAcl('write') ?? false;

  const savePolicy = (request: FastifyRequest, reply: FastifyReply, id: string | undefined): FastifyReply => {
    const body = decodeBody(request.body);
    const bodyId = stringField(body, 'ID');
    if (id !== undefined && bodyId !== undefined && bodyId !== '' && bodyId !== id) {
      throw new AclInputError('Policy ID in URL and payload do not match');
    }
    if (id === undefined && bodyId !== undefined && bodyId !== '') {
      throw new AclInputError('Cannot specify an ID when creating a policy; use PUT /v1/acl/policy/:id to update one');
    }
    const description = stringField(body, 'Description');
    const policy = store().savePolicy({
      ...(id === undefined ? {} : { id }),
      name: stringField(body, 'Name') ?? '',
      rules: stringField(body, 'Rules') ?? '',
      ...(description === undefined ? {} : { description }),
    });
    return json(reply, policyJson(policy, true));
  };

  routes('/v1/acl/policy', { PUT: guarded(async (request, reply) => savePolicy(request, reply, undefined)) });
  routes('/v1/acl/policies', {
    GET: async (_request, reply) =>
      json(
        reply,
        store()
          .policies()
          .map((p) => policyJson(p, false)),
      ),
  });
  routes('/v1/acl/policy/:id', {
    GET: guarded(async (request, reply) => {
      const policy = store().policy(idParam(request, 'id'));
      if (policy === undefined) throw new AclNotFoundError();
      return json(reply, policyJson(policy, true));
    }),
    PUT: guarded(async (request, reply) => savePolicy(request, reply, idParam(request, 'id'))),
    DELETE: guarded(async (request, reply) => {
      store().deletePolicy(idParam(request, 'id'));
      return json(reply, true);
    }),
  });

  const saveToken = (request: FastifyRequest, reply: FastifyReply, accessorId: string | undefined): FastifyReply => {
    const body = decodeBody(request.body);
    const bodyAccessor = stringField(body, 'AccessorID');
    if (accessorId !== undefined && bodyAccessor !== undefined && bodyAccessor !== '' && bodyAccessor !== accessorId) {
      throw new AclInputError('Token Accessor ID in URL and payload do not match');
    }
    const secretId = stringField(body, 'SecretID');
    const description = stringField(body, 'Description');
    const id = accessorId ?? (bodyAccessor === '' ? undefined : bodyAccessor);
    const token = store().saveToken(
      {
        ...(id === undefined ? {} : { accessorId: id }),
        ...(secretId === undefined || secretId === '' ? {} : { secretId }),
        ...(description === undefined ? {} : { description }),
        policies: policyLinks(body),
      },
      accessorId !== undefined,
    );
    return json(reply, tokenJson(store(), token, true));
  };

  routes('/v1/acl/token', { PUT: guarded(async (request, reply) => saveToken(request, reply, undefined)) });
  routes('/v1/acl/tokens', {
    GET: async (request, reply) =>
      json(
        reply,
        store()
          .tokens()
          .map((t) => tokenJson(store(), t, showSecrets(request))),
      ),
  });
  routes('/v1/acl/token/self', {
    GET: async (request, reply) => {
      const identity = identityOf(request);
      if (identity === undefined) return text(reply, 403, 'ACL not found');
      return json(reply, tokenJson(store(), identity.token, true));
    },
  });
  // Trellis's own (Consul cannot change a SecretID): a new secret for a token, the old one
  // revoked at once; `self` names the calling token. The body may give the new `SecretID`.
  routes('/v1/acl/token/:accessorId/rotate', {
    PUT: guarded(async (request, reply) => {
      const named = idParam(request, 'accessorId');
      const accessorId = named === 'self' ? (identityOf(request)?.token.accessorId ?? '') : named;
      const body =
        typeof request.body === 'string' && request.body.trim() !== '' ? decodeBody(request.body) : undefined;
      const secretId = body === undefined ? undefined : stringField(body, 'SecretID');
      const token =
        secretId === undefined || secretId === ''
          ? store().rotateToken(accessorId)
          : store().rotateToken(accessorId, secretId);
      return json(reply, tokenJson(store(), token, true));
    }),
  });
  routes('/v1/acl/token/:accessorId', {
    GET: guarded(async (request, reply) => {
      const token = store().token(idParam(request, 'accessorId'));
      if (token === undefined) throw new AclNotFoundError();
      return json(reply, tokenJson(store(), token, showSecrets(request)));
    }),
    PUT: guarded(async (request, reply) => saveToken(request, reply, idParam(request, 'accessorId'))),
    DELETE: guarded(async (request, reply) => {
      store().deleteToken(idParam(request, 'accessorId'));
      return json(reply, true);
    }),
  });
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('base64');
}

function policyJson(policy: AclPolicy, withRules: boolean): Record<string, unknown> {
  return {
    ID: policy.id,
    Name: policy.name,
    Description: policy.description,
    ...(withRules ? { Rules: policy.rules } : {}),
    Datacenters: null,
    Hash: hash([policy.name, policy.description, policy.rules]),
    CreateIndex: policy.createIndex,
    ModifyIndex: policy.modifyIndex,
  };
}

function tokenJson(store: AclStore, token: AclToken, showSecret: boolean): Record<string, unknown> {
  return {
    AccessorID: token.accessorId,
    SecretID: showSecret ? token.secretId : '<hidden>',
    Description: token.description,
    Policies: token.policyIds.map((id) => ({ ID: id, Name: store.policy(id)?.name ?? '' })),
    Local: false,
    CreateTime: token.createTime,
    Hash: hash([token.description, token.policyIds]),
    CreateIndex: token.createIndex,
    ModifyIndex: token.modifyIndex,
  };
}

// A JSON object body; keys matched in any case, as Go's encoding/json reads Consul's.
function decodeBody(body: unknown): Map<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : '');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AclInputError(`Request decode failed: the body is not valid JSON (${reason})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AclInputError('Request decode failed: body must be a JSON object');
  }
  return new Map(Object.entries(value).map(([key, v]) => [key.toLowerCase(), v]));
}

function stringField(body: Map<string, unknown>, name: string): string | undefined {
  const value = body.get(name.toLowerCase());
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new AclInputError(`Request decode failed: ${name} must be a string`);
  return value;
}

function policyLinks(body: Map<string, unknown>): PolicyLink[] {
  const value = body.get('policies');
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new AclInputError('Request decode failed: Policies must be a list of {"ID"} or {"Name"}');
  return value.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new AclInputError(`Request decode failed: Policies[${i}] must be an object with ID or Name`);
    }
    const link = decodeBody(JSON.stringify(item));
    const id = stringField(link, 'ID');
    const name = stringField(link, 'Name');
    return { ...(id === undefined ? {} : { id }), ...(name === undefined ? {} : { name }) };
  });
}
