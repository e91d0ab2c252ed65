/**
 * Identifiers of what a {@link TrellisApp} puts in its inversify container, for `@inject()`.
 *
 * @example
 * @injectable()
 * class Timeline {
 *   constructor(@inject(clientToken('users')) private readonly users: ServiceClient) {}
 * }
 */
export const AppTokens = {
  /** The {@link TrellisApp} itself. */
  app: Symbol.for('@trellis/app.TrellisApp'),
  /** The app's `Registry`. */
  registry: Symbol.for('@trellis/app.Registry'),
  /** The app's `Discovery` cache. */
  discovery: Symbol.for('@trellis/app.Discovery'),
  /**
   * The app's `ServiceConfig` (its `config` option); inject it typed by your schema:
   * `@inject(AppTokens.config) config: ServiceConfig<typeof forumSettings>`.
   */
  config: Symbol.for('@trellis/app.ServiceConfig'),
} as const;

/** The identifier under which the app binds the `ServiceClient` of a service it calls. */
export function clientToken(service: string): symbol {
  return Symbol.for(`@trellis/app.ServiceClient:${service}`);
}
