import http from 'node:http';
import https from 'node:https';
import { systemClock, type Clock, type Timer } from '@trellis/core';
import type { CheckStatus, HttpCheckSpec } from '../catalog/service-definition.js';

/** What one run of an HTTP check found: the status to set and Consul's Output text. */
export interface HttpCheckResult {
  readonly status: CheckStatus;
  readonly output: string;
}

/** A check the runner is running; {@link stop} ends it, including a request in flight. */
export interface HttpCheckHandle {
  stop(): void;
}

/** How much of a response body goes into a check's Output (Consul's default buffer size). */
export const httpCheckOutputLimit = 4 * 1024;

// The headers Consul's HTTP checks send unless the check sets its own.
const defaultHeaders: Readonly<Record<string, string>> = {
  'User-Agent': 'Consul Health Check',
  Accept: 'text/plain, text/*, */*',
};

/**
 * Runs HTTP checks as a Consul agent does: one request at once, then one every interval, each
 * given `timeoutMs` to answer. A 2xx answer is passing, 429 warning, anything else, a timeout
 * or a connection error critical. Intervals and timeouts run on the injected clock; the
 * requests are real, on a fresh connection each (Consul disables keep-alive for checks too).
 *
 * @example
 * const runner = new HttpCheckRunner({ clock });
 * const handle = runner.start(spec, (result) => catalog.setStatus(..., result.status, result.output));
 * handle.stop();
 */
export class HttpCheckRunner {
  readonly #clock: Clock;
  readonly #running = new Set<HttpCheckHandle>();
  // Every run's promise, until it settles: close() waits for them, and none floats unobserved.
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: { readonly clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Checks being run now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Starts running `spec`: now, then `intervalMs` after each run ends. `report` gets every
   * result, never after {@link HttpCheckHandle.stop}; the next run is already scheduled when
   * it is called, so a listener may advance a manual clock to it straight away. A `report`
   * that throws is turned into a process warning; the check goes on running.
   */
  start(spec: HttpCheckSpec, report: (result: HttpCheckResult) => void): HttpCheckHandle {
    let stopped = false;
    let timer: Timer | undefined;
    let inFlight: AbortController | undefined;
    const run = (): void => {
      timer = undefined;
      const controller = new AbortController();
      inFlight = controller;
      const done = probeHttp(spec, controller.signal, this.#clock)
        .then((result) => {
          inFlight = undefined;
          if (stopped) return;
          timer = this.#clock.setTimer(spec.intervalMs, run);
          report(result);
        })
        .catch((error: unknown) =>
          process.emitWarning(`HTTP check of ${spec.url}: its result was not taken (${String(error)})`),
        )
        .finally(() => this.#inFlight.delete(done));
      this.#inFlight.add(done);
    };
    const handle: HttpCheckHandle = {
      stop: () => {
        stopped = true;
        timer?.cancel();
        inFlight?.abort();
        this.#running.delete(handle);
      },
    };
    this.#running.add(handle);
    run();
    return handle;
  }

  /** Stops every check; resolves once their requests in flight have wound down. */
  async close(): Promise<void> {
    for (const handle of [...this.#running]) handle.stop();
    await Promise.all([...this.#inFlight]);
  }
}

// Go's http.Client follows at most this many redirects ("stopped after 10 redirects"), and
// Consul's HTTP checks use its default.
const maxRedirects = 10;

// Headers Go's client drops when a redirect leaves the host the check named.
const credentialHeaders = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2']);

/**
 * Makes one check request and judges it, following redirects as Consul's Go client does (at
 * most 10; 301, 302 and 303 go on as GET without the body, 307 and 308 keep both) unless the
 * check says `disableRedirects`, when a redirect is the answer (and critical, being no 2xx).
 * Never rejects: every failure is a critical result whose Output says what went wrong, as Go's
 * client words it (`Get "<url>": ...`).
 *
 * @example
 * await probeHttp(spec, signal, systemClock);
 * // { status: 'passing', output: 'HTTP GET http://127.0.0.1:8080/health: 200 OK Output: UP' }
 */
export async function probeHttp(spec: HttpCheckSpec, signal: AbortSignal, clock: Clock): Promise<HttpCheckResult> {
  const timedOut = new AbortController();
  // One timeout for the whole chain of redirects, as Go's Client.Timeout.
  const timeout = clock.setTimer(spec.timeoutMs, () => timedOut.abort());
  // A stopped check leaves no timer behind, even before its request has wound down.
  signal.addEventListener('abort', () => timeout.cancel(), { once: true });
  const both = AbortSignal.any([signal, timedOut.signal]);
  const initial: Target = { url: new URL(spec.url), method: spec.method, body: spec.body, headers: checkHeaders(spec) };
  let target = initial;
  try {
    for (let redirects = 0; ; redirects++) {
      const answer = await request(target, spec.tlsSkipVerify, both);
      const next = spec.disableRedirects === true ? undefined : redirectOf(initial, target, answer);
      if (next === undefined) {
        const { statusCode, statusMessage, body } = answer;
        const status: CheckStatus =
          statusCode >= 200 && statusCode <= 299 ? 'passing' : statusCode === 429 ? 'warning' : 'critical';
        return { status, output: `HTTP ${spec.method} ${spec.url}: ${statusCode} ${statusMessage} Output: ${body}` };
      }
      if (redirects + 1 >= maxRedirects) {
        return {
          status: 'critical',
          output: `${goMethodName(spec.method)} ${JSON.stringify(next.url.href)}: stopped after ${maxRedirects} redirects`,
        };
      }
      target = next;
    }
  } catch (error) {
    const reason = timedOut.signal.aborted
      ? `timed out after ${spec.timeoutMs} ms (Client.Timeout exceeded)`
      : // Not instanceof: an error from node:net may come from another realm (Jest's VM).
        typeof error === 'object' && error !== null && 'message' in error
        ? String(error.message)
        : String(error);
    return {
      status: 'critical',
      output: `${goMethodName(spec.method)} ${JSON.stringify(target.url.href === spec.url ? spec.url : target.url.href)}: ${reason}`,
    };
  } finally {
    timeout.cancel();
  }
}

interface Target {
  readonly url: URL;
  readonly method: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string | string[]>>;
}

interface Answer {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly location: string | undefined;
  readonly body: string;
}

function checkHeaders(spec: HttpCheckSpec): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = { ...defaultHeaders };
  for (const [name, values] of Object.entries(spec.header)) {
    // A check's own header replaces the default of the same name, whatever its case.
    for (const key of Object.keys(headers)) if (key.toLowerCase() === name.toLowerCase()) delete headers[key];
    headers[name] = [...values];
  }
  return headers;
}

// Where a redirect answer sends the check next, as Go's http.Client decides; undefined when the
// answer is final (not a redirect, no Location, or a Location that is no http(s) URL).
function redirectOf(initial: Target, from: Target, answer: Answer): Target | undefined {
  const { statusCode, location } = answer;
  if (location === undefined || ![301, 302, 303, 307, 308].includes(statusCode)) return undefined;
  let url: URL;
  try {
    url = new URL(location, from.url);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const keepsMethod = statusCode === 307 || statusCode === 308;
  const method = keepsMethod || from.method === 'HEAD' ? from.method : 'GET';
  // Go sends the check's credentials on only to the host it named, or a subdomain of it.
  const initialHost = initial.url.hostname;
  const trusted = url.hostname === initialHost || url.hostname.endsWith(`.${initialHost}`);
  const headers = Object.fromEntries(
    Object.entries(initial.headers).filter(([name]) => trusted || !credentialHeaders.has(name.toLowerCase())),
  );
  return { url, method, body: keepsMethod ? from.body : '', headers };
}

function request(target: Target, tlsSkipVerify: boolean, signal: AbortSignal): Promise<Answer> {
  const transport = target.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target.url,
      { method: target.method, headers: target.headers, agent: false, signal, rejectUnauthorized: !tlsSkipVerify },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = (): void => {
          res.destroy();
          resolve({
            statusCode: res.statusCode ?? 0,
            statusMessage: res.statusMessage ?? '',
            location: res.headers.location,
            body: Buffer.concat(chunks).subarray(0, httpCheckOutputLimit).toString('utf8'),
          });
        };
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          // Enough for the Output: stop reading a large or endless body.
          if (size >= httpCheckOutputLimit) finish();
        });
        res.on('end', finish);
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(target.body === '' ? undefined : target.body);
  });
}

// Go's url.Error names the operation "Get", "Post", ...
function goMethodName(method: string): string {
  return method.charAt(0).toUpperCase() + method.slice(1).toLowerCase();
}
