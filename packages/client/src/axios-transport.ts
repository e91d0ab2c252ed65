import http from 'node:http';
import https from 'node:https';
import axios, { AxiosError, type AxiosInstance, type RawAxiosResponseHeaders } from 'axios';
import {
  ConnectionError,
  instanceOrigin,
  type Call,
  type CallContext,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import type { Transport } from './transport.js';

export interface AxiosTransportOptions {
  /** Sockets kept open per instance; default 64. */
  readonly maxSocketsPerInstance?: number;
}

// Error codes that prove the request never left this process or was never accepted, so that
// sending it elsewhere cannot run it twice.
const notSentCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The default {@link Transport}: axios over keep-alive agents. Every status is a reply, not an
 * error; deciding what a 503 means is the job of the filters above.
 *
 * @example
 * const transport = new AxiosTransport();
 * const reply = await transport.send(call, instance, new CallContext());
 */
export class AxiosTransport implements Transport {
  readonly #httpAgent: http.Agent;
  readonly #httpsAgent: https.Agent;
  readonly #axios: AxiosInstance;

  constructor(options: AxiosTransportOptions = {}) {
    const maxSockets = options.maxSocketsPerInstance ?? 64;
    this.#httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.#httpsAgent = new https.Agent({ keepAlive: true, maxSockets });
    this.#axios = axios.create({
      httpAgent: this.#httpAgent,
      httpsAgent: this.#httpsAgent,
      validateStatus: () => true,
      // Redirects are the caller's business; following them would leave the governed path.
      maxRedirects: 0,
    });
  }

  async send(call: Call, instance: ServiceInstance, context: CallContext): Promise<Reply> {
    // A look-alike, not context.signal: an AbortSignal and axios's listener on it cost ~8 µs.
    const signal = context.lightSignal();
    try {
      const response = await this.#axios.request({
        baseURL: instanceOrigin(instance),
        url: call.path,
        method: call.method,
        headers: call.headers,
        data: call.body,
        ...(signal === undefined ? {} : { signal }),
      });
      return {
        status: response.status,
        headers: flattenHeaders(response.headers),
        body: response.data as unknown,
        instance,
      };
    } catch (error) {
      if (axios.isCancel(error)) throw context.aborted ? context.reason : error;
      const code = error instanceof AxiosError ? error.code : undefined;
      throw new ConnectionError(call.service, instance.id, !notSentCodes.has(code ?? ''), error);
    }
  }

  async close(): Promise<void> {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }
}

function flattenHeaders(headers: RawAxiosResponseHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}
