import type { SavedCircuitState } from '@trellis/resilience';

/** One instance of a route's service, as the admin page shows it. */
export interface GatewayInstanceStatus {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Passing its health checks in the registry's last answer. */
  readonly healthy: boolean;
  /** The route client's breaker of the instance; undefined while it has none (never called: closed). */
  readonly breaker: SavedCircuitState | undefined;
}

/** One route, as the admin page shows it. */
export interface GatewayRouteStatus {
  readonly name: string;
  readonly match: Readonly<Record<string, unknown>>;
  /** "service", "static" or "redirect". */
  readonly kind: string;
  /** The target: a service name, a folder, or the redirect's path. */
  readonly target: string;
  readonly auth: string;
  readonly websocket: boolean;
  /** The service's instances, as discovery knows them; empty for other kinds (or before the first call). */
  readonly instances: readonly GatewayInstanceStatus[];
}

/** The last time routes were loaded, from code or from the routes file. */
export interface RoutesReload {
  /** "code" (options or setRoutes) or the routes file's path. */
  readonly source: string;
  /** Wall-clock time, ISO 8601. */
  readonly at: string;
  readonly ok: boolean;
  /** Why the routes were refused (the field and the problem); the routes before stay in force. */
  readonly error?: string;
  /** How many routes are in force after it. */
  readonly routes: number;
}

/** What `GET /gateway.json` answers. */
export interface GatewayStatus {
  readonly service: string;
  readonly routes: readonly GatewayRouteStatus[];
  /** The last load of routes, successful or not. */
  readonly lastReload: RoutesReload | undefined;
  /** The last successful one. */
  readonly lastGoodReload: RoutesReload | undefined;
  readonly tunnels: { readonly open: number; readonly max: number };
  /** Valid sessions remembered, when the gateway checks sessions. */
  readonly sessionsCached: number | undefined;
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => escapes[c] as string);

/** The CSP of the admin page: no script at all, styles inline. */
export const adminPageSecurityPolicy =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/**
 * The admin page: the status rendered on the server as plain HTML (no script, every value
 * escaped), refreshed every 5 s by the browser, in the look of the apps' /trellis page.
 */
export function renderAdminPage(status: GatewayStatus, jsonPath: string): string {
  const reload = status.lastReload;
  const reloadLine =
    reload === undefined
      ? '<p>No routes loaded yet.</p>'
      : reload.ok
        ? `<p class="ok">Routes loaded from ${esc(reload.source)} at ${esc(reload.at)}: ${reload.routes} in force.</p>`
        : `<p class="bad">Routes from ${esc(reload.source)} refused at ${esc(reload.at)}: ${esc(reload.error ?? '')}. The ${reload.routes} routes loaded before stay in force${status.lastGoodReload === undefined ? '' : ` (from ${esc(status.lastGoodReload.at)})`}.</p>`;
  const rows = status.routes
    .map((route) => {
      const instances =
        route.instances.length === 0
          ? route.kind === 'service'
            ? '<span class="muted">none known</span>'
            : ''
          : route.instances
              .map(
                (i) =>
                  `<div class="${i.healthy ? 'ok' : 'bad'}">${esc(i.id)} <span class="muted">${esc(i.address)}:${i.port}</span> ${i.healthy ? 'passing' : 'failing'}, breaker ${esc(i.breaker?.state ?? 'closed')}</div>`,
              )
              .join('');
      return `<tr><td>${esc(route.name)}</td><td><code>${esc(JSON.stringify(route.match))}</code></td><td>${esc(route.kind)}: ${esc(route.target)}</td><td>${esc(route.auth)}${route.websocket ? ', WebSocket' : ''}</td><td>${instances}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>${esc(status.service)}: gateway routes</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-weight: 600; background: #f0f2f5; }
code { font-size: 12px; }
.ok { color: #1a7f37; } .bad { color: #b42318; } .muted { color: #6b7280; }
</style>
</head>
<body>
<h1>${esc(status.service)}: routes</h1>
${reloadLine}
<p>WebSocket tunnels open: ${status.tunnels.open} of ${status.tunnels.max}.${status.sessionsCached === undefined ? '' : ` Sessions remembered: ${status.sessionsCached}.`} As JSON: <a href="${esc(jsonPath)}">${esc(jsonPath)}</a>.</p>
<table>
<thead><tr><th>route</th><th>match</th><th>target</th><th>auth</th><th>instances</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`;
}
