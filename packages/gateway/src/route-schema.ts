import { z } from 'zod';
import { ConfigError } from '@trellis/core';

/** Most routes a gateway takes: matching is a scan, first match wins. */
export const maxRoutes = 500;

const headerMatch = z
  .strictObject({
    /** The header's name, any case. */
    name: z.string().min(1).max(200),
    /** The value it must have, exactly. */
    value: z.string().max(2_000).optional(),
    /** A regular expression the value must match (JavaScript syntax, unanchored unless you anchor it). */
    regex: z.string().min(1).max(500).optional(),
  })
  .refine((h) => (h.value === undefined) !== (h.regex === undefined), {
    message: 'needs exactly one of "value" or "regex"',
  });

const routeMatch = z
  .strictObject({
    /** The path must be exactly this ("/"), query string aside. */
    path: z.string().startsWith('/').max(2_000).optional(),
    /** The path must start with this ("/api/users/"); literal, so end it with "/" to match whole segments. */
    pathPrefix: z.string().startsWith('/').max(2_000).optional(),
    /** The Host header (its name, without the port) must be this, any case. */
    host: z.string().min(1).max(253).optional(),
    /** A header must have a value, or match a regular expression. */
    header: headerMatch.optional(),
    /** Only these methods; default any. */
    methods: z.array(z.string().min(1).max(20)).min(1).max(20).optional(),
  })
  .refine((m) => m.path !== undefined || m.pathPrefix !== undefined || m.host !== undefined || m.header !== undefined, {
    message: 'needs at least one of "path", "pathPrefix", "host" or "header"',
  });

const retryOptions = z.strictObject({
  maxAttempts: z.int().min(1).max(10).optional(),
  backoffBaseMs: z.number().min(0).max(60_000).optional(),
  backoffMaxMs: z.number().min(0).max(60_000).optional(),
});

const breakerOptions = z.strictObject({
  failureRateThreshold: z.number().gt(0).max(1).optional(),
  minimumCalls: z.int().min(1).max(100_000).optional(),
  windowMs: z.number().positive().max(3_600_000).optional(),
  resetTimeoutMs: z.number().positive().max(3_600_000).optional(),
  slowCallMs: z.number().positive().max(3_600_000).optional(),
});

const corsOptions = z.strictObject({
  /** Origins allowed: a list of exact origins ("https://example.com"), or "*" for any. */
  origins: z.union([z.literal('*'), z.array(z.string().min(1).max(500)).min(1).max(100)]),
  methods: z.array(z.string().min(1).max(20)).max(20).optional(),
  allowedHeaders: z.array(z.string().min(1).max(200)).max(50).optional(),
  exposedHeaders: z.array(z.string().min(1).max(200)).max(50).optional(),
  credentials: z.boolean().optional(),
  maxAgeSeconds: z.int().min(0).max(86_400).optional(),
});

const rateLimitOptions = z.strictObject({
  /** Tokens added per second, per client key. */
  ratePerSecond: z.number().positive().max(1_000_000),
  /** Most tokens a key holds: the burst it may send at once; default `ratePerSecond`. */
  burst: z.number().positive().max(1_000_000).optional(),
  /** What a client is known by: its address ("ip", the default) or a header's value ({ "header": "x-api-key" }). */
  key: z.union([z.literal('ip'), z.strictObject({ header: z.string().min(1).max(200) })]).optional(),
  /** Most client keys remembered; past it the least recently used idle one goes. Default 10 000. */
  maxKeys: z.int().min(1).max(1_000_000).optional(),
});

const staticTarget = z.strictObject({
  /** The folder served; relative to the routes file's folder (or the gateway's `baseDir`). */
  root: z.string().min(1).max(1_000),
  /** One file of it served for every path the route matches (a home page); default the path's own file. */
  file: z.string().min(1).max(500).optional(),
});

/** One route as written in code or in a routes file, before defaults. */
export const routeSchema = z
  .strictObject({
    /** Shown on the admin page and in logs; default `route-<index>`. */
    name: z.string().min(1).max(100).optional(),
    match: routeMatch,
    /** The service the route goes to, by its registered name. */
    service: z.string().min(1).max(200).optional(),
    /** Files from a folder rather than a service. */
    static: staticTarget.optional(),
    /** A permanent redirect (308) to this path, the query string kept. */
    redirect: z.string().startsWith('/').max(2_000).optional(),
    /** Removes the matched `pathPrefix` from the path sent on. */
    stripPrefix: z.boolean().optional(),
    /** Replaces the matched `pathPrefix` with this. */
    rewritePrefix: z.string().startsWith('/').max(2_000).optional(),
    /** Whether a session is needed ("required": 401 without one), used when there ("optional"), or not looked at ("none", the default). */
    auth: z.enum(['required', 'optional', 'none']).optional(),
    /** Accepts WebSocket upgrades and passes them through to an instance; default false. */
    websocket: z.boolean().optional(),
    /** The whole call, retries included, gives up after this long; default none (the attempt timeout bounds each try). */
    timeoutMs: z.number().positive().max(3_600_000).optional(),
    /** Each attempt gives up after this long; default 10 000 ms. */
    attemptTimeoutMs: z.number().positive().max(3_600_000).optional(),
    /** Retry options, or false for none (failover of refused connections only); default the client's. */
    retry: z.union([z.literal(false), retryOptions]).optional(),
    /** Treat every method as idempotent (retried after it may have arrived); default false: GET, HEAD, OPTIONS, PUT, DELETE only. */
    idempotent: z.boolean().optional(),
    /** Per-instance breakers of this route's own; default the gateway's shared ones. */
    breaker: breakerOptions.optional(),
    /** Load-balancing strategy by name; default "p2c-peak-ewma". */
    strategy: z
      .enum(['round-robin', 'random', 'weighted-round-robin', 'least-outstanding', 'p2c-peak-ewma', 'consistent-hash'])
      .optional(),
    /** Largest request body in bytes; default the gateway's. */
    bodyLimitBytes: z.int().min(0).max(1_073_741_824).optional(),
    /** CORS for this route, or false for none; default the gateway's. */
    cors: z.union([z.literal(false), corsOptions]).optional(),
    /** A rate limit of this route's own, or false for none; default the gateway's. */
    rateLimit: z.union([z.literal(false), rateLimitOptions]).optional(),
  })
  .superRefine((route, ctx) => {
    const targets = [route.service, route.static, route.redirect].filter((t) => t !== undefined).length;
    if (targets !== 1) {
      ctx.addIssue({ code: 'custom', message: 'needs exactly one of "service", "static" or "redirect"', path: [] });
    }
    if ((route.stripPrefix === true || route.rewritePrefix !== undefined) && route.match.pathPrefix === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'stripPrefix and rewritePrefix need match.pathPrefix',
        path: [route.stripPrefix === true ? 'stripPrefix' : 'rewritePrefix'],
      });
    }
    if (route.stripPrefix === true && route.rewritePrefix !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'use stripPrefix or rewritePrefix, not both', path: ['rewritePrefix'] });
    }
    if (route.websocket === true && route.service === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a WebSocket route needs a "service"', path: ['websocket'] });
    }
    const regex = route.match.header?.regex;
    if (regex !== undefined) {
      try {
        new RegExp(regex);
      } catch (error) {
        ctx.addIssue({
          code: 'custom',
          message: `is not a regular expression: ${(error as Error).message}`,
          path: ['match', 'header', 'regex'],
        });
      }
    }
  });

/** A route as written, in code or in a routes file. */
export type RouteConfig = z.input<typeof routeSchema>;
/** CORS settings of a gateway or a route. */
export type CorsConfig = z.input<typeof corsOptions>;
/** An inbound rate limit per client key, of a gateway or a route. */
export type RateLimitConfig = z.input<typeof rateLimitOptions>;

const routesSchema = z.array(routeSchema).max(maxRoutes);

/** The routes file: `{ "routes": [...] }`. */
export const routesFileSchema = z.strictObject({ routes: routesSchema });

/**
 * Checks routes, from code or from a parsed routes file.
 * @throws ConfigError naming the first field that is wrong, e.g. `routes[2].match.pathPrefix`.
 * @example
 * const routes = parseRoutes([{ match: { pathPrefix: '/api/users/' }, service: 'users', stripPrefix: true }]);
 */
export function parseRoutes(routes: unknown): RouteConfig[] {
  const result = routesSchema.safeParse(routes);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, 'routes');
  return result.data;
}

/**
 * Checks the text of a routes file: JSON `{ "routes": [...] }`.
 * @throws ConfigError naming the field that is wrong (`routes[0].service`), or `routesFile` for text that is not JSON.
 */
export function parseRoutesFile(text: string): RouteConfig[] {
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (error) {
    throw new ConfigError('routesFile', `is not JSON: ${(error as Error).message}`);
  }
  const result = routesFileSchema.safeParse(json);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, '', 'routesFile');
  return result.data.routes;
}

/** Checks a gateway-level CORS setting. @throws ConfigError naming `cors.<field>`. */
export function parseCors(cors: unknown): CorsConfig {
  const result = corsOptions.safeParse(cors);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, 'cors');
  return result.data;
}

/** Checks a gateway-level rate limit. @throws ConfigError naming `rateLimit.<field>`. */
export function parseRateLimit(limit: unknown): RateLimitConfig {
  const result = rateLimitOptions.safeParse(limit);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, 'rateLimit');
  return result.data;
}
