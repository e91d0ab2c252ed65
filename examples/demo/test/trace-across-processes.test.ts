import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { startSystem, type RunningSystem } from '../src/system.js';

// OTLP/HTTP with JSON bodies (the exporter's `http/json` protocol): the 0.2xx OpenTelemetry
// packages ship an encoder of requests but no decoder, and JSON is OTLP's own second encoding.
const anyValue = z.object({
  stringValue: z.string().optional(),
  intValue: z.union([z.number(), z.string()]).optional(),
  boolValue: z.boolean().optional(),
});
const keyValues = z.array(z.object({ key: z.string(), value: anyValue })).default([]);
const exportRequest = z.object({
  resourceSpans: z.array(
    z.object({
      resource: z.object({ attributes: keyValues }),
      scopeSpans: z.array(
        z.object({
          spans: z.array(
            z.object({
              traceId: z.string(),
              spanId: z.string(),
              parentSpanId: z.string().optional(),
              name: z.string(),
              kind: z.number(),
              attributes: keyValues,
            }),
          ),
        }),
      ),
    }),
  ),
});

interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP's enum: 2 SERVER, 3 CLIENT. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string | number | boolean | undefined>>;
}

const SERVER = 2;
const CLIENT = 3;

function flatten(values: z.infer<typeof keyValues>): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(
    values.map(({ key, value }) => [
      key,
      value.stringValue ?? (value.intValue === undefined ? value.boolValue : Number(value.intValue)),
    ]),
  );
}

/** An OTLP/HTTP trace receiver on 127.0.0.1 that keeps what it is sent and wakes whoever waits for it. */
class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly #server = http.createServer((req, res) => this.#receive(req, res));
  readonly #waiting = new Set<() => void>();
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Resolves once `found` returns something for the spans received, or fails after `timeoutMs`. */
  waitFor<T>(found: (spans: readonly ReceivedSpan[]) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const result = found(this.spans);
        if (result === undefined) return;
        clearTimeout(timer);
        this.#waiting.delete(check);
        resolve(result);
      };
      const timer = setTimeout(() => {
        this.#waiting.delete(check);
        reject(
          new Error(
            `not received within ${timeoutMs} ms; got ${JSON.stringify(this.spans.map((s) => [s.service, s.name]))}`,
          ),
        );
      }, timeoutMs);
      this.#waiting.add(check);
      check();
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #receive(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/json') {
        res.writeHead(415).end();
        return;
      }
      const body = exportRequest.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      for (const resourceSpans of body.resourceSpans) {
        const service = String(flatten(resourceSpans.resource.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans) {
          for (const span of scope.spans) {
            this.spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId === '' ? undefined : span.parentSpanId,
              name: span.name,
              kind: span.kind,
              attributes: flatten(span.attributes),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const check of [...this.#waiting]) check();
    });
  }
}

// The demo's processes with the standard OTEL_* variables pointing at a receiver this test runs:
// one trace from the forum's SERVER span to the users SERVER span, over the forum's call and attempt.
describe('a trace across processes', () => {
  let system: RunningSystem | undefined;
  const receiver = new OtlpReceiver();

  beforeAll(async () => {
    await receiver.start();
    system = await startSystem({
      services: ['forum'],
      mailInstances: 1,
      usersInstances: 1,
      drainMs: 0,
      output: () => {},
      serviceEnv: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
  }, 30_000);
  afterAll(async () => {
    await system?.stop();
    await receiver.close();
  });

  it('joins forum SERVER → forum call → attempt → users SERVER in one trace, parents right', async () => {
    const response = await fetch(`${system!.forum!.url}/threads/1`, {
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    expect(response.status).toBe(200);

    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const chain = await receiver.waitFor((spans) => {
      const ours = spans.filter((s) => s.traceId === traceId);
      const forumServer = ours.find((s) => s.service === 'forum' && s.kind === SERVER);
      const call = ours.find(
        (s) => s.service === 'forum' && s.kind === CLIENT && s.parentSpanId === forumServer?.spanId,
      );
      const attempt = ours.find((s) => s.service === 'forum' && s.kind === CLIENT && s.parentSpanId === call?.spanId);
      const usersServer = ours.find((s) => s.service === 'users' && s.kind === SERVER);
      return forumServer && call && attempt && usersServer ? { forumServer, call, attempt, usersServer } : undefined;
    }, 15_000);

    expect(chain.forumServer).toMatchObject({ name: 'GET /threads/:id', parentSpanId: 'b7ad6b7169203331' });
    expect(chain.forumServer.attributes).toMatchObject({
      'http.route': '/threads/:id',
      'http.response.status_code': 200,
    });
    expect(chain.call).toMatchObject({ name: 'GET /users/:id' });
    expect(chain.call.attributes).toMatchObject({ 'trellis.service': 'users', 'trellis.attempts': 1 });
    expect(chain.attempt).toMatchObject({ name: 'GET /users/:id' });
    const usersPort = Number(new URL(system!.users[0]!.url).port);
    expect(chain.attempt.attributes).toMatchObject({
      'server.address': '127.0.0.1',
      'server.port': usersPort,
      'url.template': '/users/:id',
      'trellis.instance.id': `users-127.0.0.1-${usersPort}`,
      'trellis.attempt': 1,
      'trellis.attempt.kind': 'first',
      'trellis.lb.strategy': 'round-robin',
      'http.response.status_code': 200,
    });
    expect(chain.usersServer).toMatchObject({ name: 'GET /users/:id', parentSpanId: chain.attempt.spanId });
  });
});
