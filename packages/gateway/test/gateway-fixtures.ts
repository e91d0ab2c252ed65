import { RegistryServer } from '@trellis/registry-server';
import { TrellisApp, type AppOptions } from '@trellis/app';
import { Gateway, type GatewayOptions } from '@trellis/gateway';

/** A registry server, services and gateways of one test, each closed after it. */
export interface GatewaySystem {
  /** The registry's URL (started on first use). */
  registryUrl(): Promise<string>;
  /** A started service app; `setup` adds its routes before start. */
  service(name: string, setup: (app: TrellisApp) => void, options?: Partial<AppOptions>): Promise<TrellisApp>;
  /** A started gateway app, and its base URL. */
  gateway(
    options: GatewayOptions,
    appOptions?: Partial<AppOptions>,
  ): Promise<{ app: TrellisApp; gateway: Gateway; url: string }>;
}

/** Registers the set-up of a test file: call in a `describe` body. */
export function gatewaySystem(): GatewaySystem {
  let registry: RegistryServer | undefined;
  let url: string | undefined;
  const apps: TrellisApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry?.close();
    registry = undefined;
    url = undefined;
  });
  const registryUrl = async (): Promise<string> => {
    if (url === undefined) {
      registry = new RegistryServer({ logLevel: 'silent' });
      url = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
    }
    return url;
  };
  const app = async (options: AppOptions): Promise<TrellisApp> => {
    const made = new TrellisApp({ logLevel: 'silent', drainMs: 0, registryUrl: await registryUrl(), ...options });
    apps.push(made);
    return made;
  };
  return {
    registryUrl,
    async service(name, setup, options = {}) {
      const made = await app({ service: name, ...options });
      setup(made);
      await made.start();
      return made;
    },
    async gateway(options, appOptions = {}) {
      const made = await app({ service: 'gateway', ...appOptions });
      const gateway = new Gateway(made, options);
      const started = await made.start();
      return { app: made, gateway, url: started.url };
    },
  };
}

/** A service route that answers what it received: method, url, headers and body as text. */
export function echo(app: TrellisApp): void {
  app.http.removeAllContentTypeParsers();
  app.http.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.http.all('/*', async (request) => ({
    service: app.service,
    instance: app.instance?.id,
    method: request.method,
    url: request.url,
    headers: request.headers,
    body: Buffer.isBuffer(request.body) ? request.body.toString() : null,
  }));
}

/** What {@link echo} answers. */
export interface Echoed {
  readonly service: string;
  readonly instance: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | null;
}
