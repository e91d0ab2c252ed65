import { TrellisError } from '@trellis/core';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';

/**
 * A request body whose Content-Encoding the server cannot or will not decode; answered 400 or
 * 415. Code `INVALID_BODY_ENCODING`.
 */
export class BodyEncodingError extends TrellisError {
  readonly statusCode: 400 | 415;

  constructor(message: string, statusCode: 400 | 415) {
    super('INVALID_BODY_ENCODING', message);
    this.statusCode = statusCode;
  }
}

/**
 * Request bodies labelled `Content-Encoding: gzip` are decompressed before any parser reads
 * them, and one that is not gzip is answered 400 naming the header, instead of being read as
 * the text it is not. The body limits of the routes count the decompressed bytes, so a small
 * gzip bomb is refused like a large body. Other encodings (deflate, br, ...) are answered 415:
 * read as plain text they would be garbage stored as a value.
 *
 * @example
 * registerBodyEncoding(app); // before the route modules, so that every scope inherits it
 */
export function registerBodyEncoding(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const header = request.headers['content-encoding'];
    if (header === undefined) return payload;
    const encoding = header.trim().toLowerCase();
    if (encoding === '' || encoding === 'identity') return payload;
    if (encoding !== 'gzip' && encoding !== 'x-gzip') {
      throw new BodyEncodingError(`Unsupported Content-Encoding "${header}": send the body as it is, or gzip`, 415);
    }
    // Fastify compares Content-Length with the bytes received, which are the compressed ones.
    const counter = new ByteCounter();
    const gunzip = createGunzip();
    const decoded = new PassThrough();
    // zlib's error (a body that is not gzip) is the client's: 400, with a message naming it.
    gunzip.on('error', (error: Error) =>
      decoded.destroy(
        new BodyEncodingError(`Invalid body: Content-Encoding is gzip but the body is not (${error.message})`, 400),
      ),
    );
    payload.on('error', (error) => decoded.destroy(error));
    payload.pipe(counter).pipe(gunzip).pipe(decoded);
    Object.defineProperty(decoded, 'receivedEncodedLength', { get: () => counter.bytes });
    return decoded;
  });
}

class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
