import http from 'node:http';

/** One answer, with its body as text (or left unread). */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * Sends one request over `agent` and resolves with the whole answer. With `readBody: false`
 * the body is drained but not kept, so that large answers cost the caller little.
 * @throws Error (ECONNRESET, ...) when the request fails.
 * @example
 * const agent = new http.Agent({ keepAlive: true });
 * const { status } = await send(agent, 'PUT', `${url}/v1/agent/check/pass/service:web-1`);
 */
export function send(
  agent: http.Agent,
  method: string,
  url: string,
  body?: string,
  readBody = true,
  headers: Readonly<Record<string, string>> = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        if (readBody) chunks.push(chunk);
      });
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** The body of `PUT /v1/agent/service/register` for one benchmark instance with a TTL check. */
export function instanceBody(service: string, id: string, port: number, ttl: string): string {
  return JSON.stringify({
    ID: id,
    Name: service,
    Address: '127.0.0.1',
    Port: port,
    Tags: ['bench', 'v1'],
    Meta: { version: '1.0.0', zone: 'a' },
    Check: { TTL: ttl, DeregisterCriticalServiceAfter: '10m' },
  });
}
