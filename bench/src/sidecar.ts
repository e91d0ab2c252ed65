import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Where Debian's nginx package puts the binary. */
export const nginxPath = '/usr/sbin/nginx';

/** Two nginx reverse proxies in a row, as a mesh's client-side and server-side sidecars. */
export interface Sidecars {
  /** The port the caller sends to: its own sidecar. */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts two nginx processes on 127.0.0.1, each in a temp dir of its own config: the caller's
 * sidecar forwards to the callee's, which forwards to `upstreamPort`. Both keep upstream
 * connections alive, as Envoy and Linkerd do. Returns undefined when nginx is not installed.
 */
export async function startSidecars(upstreamPort: number): Promise<Sidecars | undefined> {
  if (!existsSync(nginxPath)) return undefined;
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-sidecars-'));
  const calleePort = await freePort();
  const callerPort = await freePort();
  const children: ChildProcess[] = [];
  try {
    children.push(await startNginx(dir, 'callee', calleePort, upstreamPort));
    children.push(await startNginx(dir, 'caller', callerPort, calleePort));
  } catch (error) {
    for (const child of children) child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port: callerPort,
    close: async () => {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One nginx reverse proxy, as an edge in front of a service's instances. */
export interface ReverseProxy {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts one nginx process on 127.0.0.1 that forwards `prefix` (removed, as a gateway's
 * `stripPrefix` does) to `upstreamPorts` in round robin over keep-alive connections, setting
 * X-Forwarded-For, -Proto and -Host as the gateway does. Returns undefined when nginx is not
 * installed.
 */
export async function startReverseProxy(
  upstreamPorts: readonly number[],
  prefix: string,
): Promise<ReverseProxy | undefined> {
  if (!existsSync(nginxPath)) return undefined;
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-edge-'));
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = await startNginx(dir, 'edge', port, upstreamPorts, prefix);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function startNginx(
  dir: string,
  name: string,
  listen: number,
  upstream: number | readonly number[],
  stripPrefix?: string,
): Promise<ChildProcess> {
  const servers = (typeof upstream === 'number' ? [upstream] : upstream).map((p) => `server 127.0.0.1:${p};`).join(' ');
  // A sidecar forwards as it is; an edge removes the route's prefix and says who asked.
  const location =
    stripPrefix === undefined
      ? `location / {
      proxy_pass http://next;`
      : `location ${stripPrefix} {
      proxy_pass http://next/;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;`;
  const prefix = path.join(dir, name);
  await mkdir(path.join(prefix, 'logs'), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 100000;
  upstream next { ${servers} keepalive 64; }
  server {
    listen 127.0.0.1:${listen};
    ${location}
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn(nginxPath, ['-p', prefix, '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // Ready once it accepts a connection; bounded, since a broken config exits at once.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx (${name}) exited: ${stderr.trim()}`);
    if (await accepts(listen)) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGTERM');
  throw new Error(`nginx (${name}) did not listen on ${listen} within 5 s: ${stderr.trim()}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
