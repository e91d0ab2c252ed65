import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { aclFilters, param, type AclNeed, type RouteAcl } from '../acl/route-acl.js';
import { clientGone, consistencyHeaders, decodeOnce, query, route, text } from '../http/consul-http.js';
import type { ServerContext } from '../http/server-context.js';
import { decodeSessionDefinition, SessionRequestError, type SessionDefinition } from './session-definition.js';
import type { SessionRecord } from './session-store.js';

/** The blocking-query topic of one session. */
export function sessionTopic(id: string): Topic {
  return `session:${id}`;
}

/** The blocking-query topic of a node's sessions. */
export function nodeSessionsTopic(node: string): Topic {
  return `session-node:${node}`;
}

/**
 * `/v1/session/...`: Consul's sessions. `create` (PUT, a JSON body or none) answers `{"ID"}`;
 * `destroy/<id>` (PUT) answers true; `renew/<id>` (PUT) answers the session in a list, or 404;
 * `info/<id>`, `node/<node>` and `list` (GET) answer lists of sessions, as blocking queries on
 * the sessions' index. Sessions are answered in Consul's JSON, `LockDelay` in nanoseconds.
 * A request Consul refuses with an RPC error (500 there) is answered 400 with Consul's text.
 */
export function registerSessionApi(app: FastifyInstance, { sessions, blocking, node }: ServerContext): void {
  const decode = (body: string | undefined): SessionDefinition => decodeSessionDefinition(body, node.name);
  // Consul's rights: session:write on the session's node to create, renew or destroy it (an
  // unknown session goes on to the route's answer); reads are cut to session:read on the node.
  const create: RouteAcl = {
    needs: (request) => {
      try {
        return [sessionNeed(decodeOnce(request, decode).node, 'write')];
      } catch {
        return []; // The route answers the 400 and changes nothing.
      }
    },
  };
  const ofExisting: RouteAcl = {
    needs: (request) => {
      const session = sessions.get(param(request, 'id'));
      return session === undefined ? [] : [sessionNeed(session.node, 'write')];
    },
  };
  const readable: RouteAcl = {
    needs: () => [],
    filter: (body, authz) =>
      aclFilters.asArray(body).filter((s) => authz.allows('session', aclFilters.field(s, 'Node'), 'read')),
  };

  route(app, 'PUT', '/v1/session/create', create, async (request, reply) => {
    try {
      const session = sessions.create(decodeOnce(request, decode));
      return json(reply, { ID: session.id });
    } catch (error) {
      if (error instanceof SessionRequestError) return text(reply, error.statusCode, error.message);
      throw error;
    }
  });

  route(app, 'PUT', '/v1/session/destroy/:id', ofExisting, async (request, reply) => {
    sessions.destroy((request.params as { id: string }).id);
    return json(reply, true);
  });

  route(app, 'PUT', '/v1/session/renew/:id', ofExisting, async (request, reply) => {
    const { id } = request.params as { id: string };
    const session = sessions.renew(id);
    if (session === undefined) return text(reply, 404, `Session id '${id}' not found`);
    return json(reply, [sessionJson(session)]);
  });

  const read = async (
    reply: FastifyReply,
    params: ReturnType<typeof parseBlockingParams>,
    reads: (topic: Topic) => boolean,
    answer: () => SessionRecord[],
  ): Promise<FastifyReply> => {
    await blocking.wait(params, () => sessions.index, reads, clientGone(reply));
    reply.headers(consistencyHeaders(sessions.index));
    return json(reply, answer().map(sessionJson));
  };

  route(app, 'GET', '/v1/session/info/:id', readable, async (request, reply) => {
    const { id } = request.params as { id: string };
    const topic = sessionTopic(id);
    return read(
      reply,
      parseBlockingParams(query(request)),
      (t) => t === topic,
      () => {
        const session = sessions.get(id);
        return session === undefined ? [] : [session];
      },
    );
  });

  route(app, 'GET', '/v1/session/node/:node', readable, async (request, reply) => {
    const { node: name } = request.params as { node: string };
    const topic = nodeSessionsTopic(name);
    return read(
      reply,
      parseBlockingParams(query(request)),
      (t) => t === topic,
      () => sessions.ofNode(name),
    );
  });

  route(app, 'GET', '/v1/session/list', readable, async (request, reply) =>
    read(
      reply,
      parseBlockingParams(query(request)),
      (t) => t.startsWith('session:'),
      () => sessions.list(),
    ),
  );
}

/** A session in Consul's JSON (`structs.Session`), in its field order. */
export function sessionJson(session: SessionRecord): Record<string, unknown> {
  return {
    ID: session.id,
    Name: session.name,
    Node: session.node,
    // A Go time.Duration: nanoseconds.
    LockDelay: Math.round(session.lockDelayMs * 1e6),
    Behavior: session.behavior,
    TTL: session.ttl,
    NodeChecks: session.nodeChecks,
    ServiceChecks: session.serviceChecks?.map((check) => ({ ID: check.id, Namespace: check.namespace })) ?? null,
    ...(session.checks.length === 0 ? {} : { Checks: session.checks }),
    CreateIndex: session.createIndex,
    ModifyIndex: session.modifyIndex,
  };
}

function sessionNeed(nodeName: string, need: 'read' | 'write'): AclNeed {
  return { on: 'session', name: nodeName, need };
}

function json(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.code(200).type('application/json').send(JSON.stringify(body));
}
