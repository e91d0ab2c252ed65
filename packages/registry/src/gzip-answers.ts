import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type Consul from 'consul';

// The parts of papi (the HTTP layer under the npm `consul` client) that this file uses: its
// documented `_ext` hook, and the request it hands an `onRequest` hook, whose `req` options and
// `transport` (node:http or node:https) it is about to call.
interface PapiRequest {
  readonly req: RequestOptions;
  transport: { request(options: RequestOptions): ClientRequest };
}
interface PapiClient {
  _ext(event: 'onRequest', hook: (request: PapiRequest, next: () => void) => void): void;
}

/**
 * Makes a `consul` client ask for gzip on every request and inflate gzip answers before it reads
 * them, as Go's http.Transport does for Consul's own client: papi neither asks nor inflates.
 * The answer reaches papi as if it had come uncompressed (without Content-Encoding and
 * Content-Length, as Go leaves it), so its own decoding and status handling apply unchanged.
 *
 * @example
 * import Consul from 'consul';
 * const consul = new Consul({ host: '127.0.0.1', port: 8500 });
 * acceptGzip(consul); // blocking queries on large services now come compressed
 */
export function acceptGzip(consul: Consul): void {
  (consul as unknown as PapiClient)._ext('onRequest', (request, next) => {
    const transport = request.transport;
    request.transport = { request: (options) => requestGzip(transport, options) };
    next();
  });
}

function requestGzip(transport: PapiRequest['transport'], options: RequestOptions): ClientRequest {
  const req = transport.request({ ...options, headers: { ...options.headers, 'accept-encoding': 'gzip' } });
  // papi listens for "response" on the request it gets back and reads the body from the message
  // it is given, so the inflated stream has to be the message that event carries.
  const emit = req.emit.bind(req);
  req.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    const response = args[0] as IncomingMessage;
    if (event !== 'response' || response.headers['content-encoding']?.trim().toLowerCase() !== 'gzip') {
      return emit(event, ...args);
    }
    // A body that is not gzip, or a connection lost mid-answer, fails the request as papi's
    // own errors do, instead of leaving it to its timeout.
    const inflated = pipeline(response, createGunzip(), (error) => {
      if (error) emit('error', error);
    });
    const headers = { ...response.headers };
    delete headers['content-encoding'];
    delete headers['content-length'];
    return emit(
      'response',
      Object.assign(inflated, {
        statusCode: response.statusCode,
        statusMessage: response.statusMessage,
        headers,
        socket: response.socket,
      }),
    );
  };
  return req;
}
