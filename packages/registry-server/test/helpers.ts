import Consul from 'consul';
import type { Clock } from '@trellis/core';
import { RegistryServer, type RegistryServerOptions } from '@trellis/registry-server';

/** A registry server on a free port of 127.0.0.1, with an official Consul client pointed at it. */
export interface Running {
  readonly server: RegistryServer;
  readonly url: string;
  readonly consul: Consul;
}

const started: RegistryServer[] = [];

/** The node name of {@link startServer}'s servers: fixed, so that no test depends on the host's name. */
export const testNodeName = 'trellis';

/** Starts a quiet server; {@link closeAll} (in an afterEach) stops it. */
export async function startServer(clock?: Clock, options: RegistryServerOptions = {}): Promise<Running> {
  const server = new RegistryServer({
    logLevel: 'silent',
    nodeName: testNodeName,
    ...options,
    ...(clock === undefined ? {} : { clock }),
  });
  started.push(server);
  const { url, port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url, consul: new Consul({ host: '127.0.0.1', port }) };
}

export async function closeAll(): Promise<void> {
  await Promise.all(started.splice(0).map((server) => server.close()));
}

/** A raw answer: status, lower-cased headers, body text. */
export interface RawReply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

export async function put(url: string, body?: string): Promise<RawReply> {
  const res = await fetch(url, { method: 'PUT', ...(body === undefined ? {} : { body }) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

export async function get(url: string): Promise<RawReply> {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The entries of GET /v1/health/service/:name, and its X-Consul-Index. */
export async function health(
  url: string,
  service: string,
  query = '',
): Promise<{ entries: HealthEntry[]; index: number; headers: Headers }> {
  const reply = await get(`${url}/v1/health/service/${encodeURIComponent(service)}${query}`);
  if (reply.status !== 200) throw new Error(`health answered ${reply.status}: ${reply.text}`);
  return {
    entries: JSON.parse(reply.text) as HealthEntry[],
    index: Number(reply.headers.get('x-consul-index')),
    headers: reply.headers,
  };
}

/** The parts of a Consul health entry the tests read. */
export interface HealthEntry {
  Node: { ID: string; Node: string; Address: string; Datacenter: string };
  Service: {
    ID: string;
    Service: string;
    Tags: string[];
    Address: string;
    Port: number;
    Meta: Record<string, string>;
    Weights: { Passing: number; Warning: number };
  };
  Checks: {
    CheckID: string;
    Name: string;
    Status: string;
    Output: string;
    Notes: string;
    ServiceID: string;
    Type: string;
  }[];
}

/** The status of a service's own check (not serfHealth) in an entry. */
export function serviceCheck(
  entry: HealthEntry | undefined,
  checkId?: string,
): HealthEntry['Checks'][number] | undefined {
  return entry?.Checks.find((c) => (checkId === undefined ? c.CheckID !== 'serfHealth' : c.CheckID === checkId));
}

let policies = 0;

/**
 * Makes a policy with `rules` and a token holding it, with the management secret `root`, and
 * returns the token's secret.
 */
export async function tokenWithRules(url: string, root: string, rules: string): Promise<string> {
  const headers = { 'X-Consul-Token': root };
  const policy = (await (
    await fetch(`${url}/v1/acl/policy`, {
      method: 'PUT',
      headers,
      body: JSON.stringify({ Name: `p${++policies}`, Rules: rules }),
    })
  ).json()) as { ID: string };
  const token = (await (
    await fetch(`${url}/v1/acl/token`, {
      method: 'PUT',
      headers,
      body: JSON.stringify({ Policies: [{ ID: policy.ID }] }),
    })
  ).json()) as { SecretID: string };
  return token.SecretID;
}
