import type { FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';

// JSON first, as the app's /trellis: fetch, curl and `*/*` get the app's error shape.
const offered = ['application/json', 'text/html'];

/** Nothing but the page's own inline style: the message in it is text, never markup. */
export const unavailablePagePolicy = "default-src 'none'; style-src 'unsafe-inline'";

/** True for a browser loading a page (GET or HEAD, text/html preferred): it gets a page, not JSON. */
export function wantsPage(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  return new Negotiator(request).mediaType(offered) === 'text/html';
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => escapes[c] as string);

/**
 * The page a browser gets when the service behind a route cannot answer (down, every breaker
 * open, timed out): what is unavailable, why, and a way back, instead of a JSON body shown raw.
 */
export function renderUnavailablePage(service: string, status: number, message: string): string {
  const name = escapeHtml(service);
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${name} is unavailable</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:0 .2em}</style></head>
<body>
<h1 data-testid="unavailable-title">The ${name} service is unavailable right now</h1>
<p data-testid="unavailable-message">${escapeHtml(message)} (${status})</p>
<p>The gateway will send you to another instance as soon as one answers: reload in a moment, or go back to the <a href="/">home page</a>.</p>
</body>
</html>
`;
}
