import { loadAppOptions, TrellisApp } from '@trellis/app';

// One link of a chain of services, for the deadline propagation test: GET /work calls the next
// service's /work (CHAIN_NEXT), or, at the end of the chain, works until its signal says stop.
// It prints what it sees, one line each, for the test to read.
const service = process.env['CHAIN_SERVICE'] ?? 'chain';
const next = process.env['CHAIN_NEXT'];
const app = new TrellisApp(
  loadAppOptions({ service, calls: next === undefined ? [] : [next], drainMs: 0, logLevel: 'silent' }),
);

const codeOf = (value: unknown): string =>
  typeof value === 'object' && value !== null && 'code' in value ? String(value.code) : String(value);

app.http.get<{ Querystring: { timeoutMs?: string } }>('/work', async (request) => {
  const { signal, deadline } = request.inbound;
  console.log(`${service} started with ${deadline === undefined ? 'no deadline' : 'a deadline'}`);
  signal.addEventListener('abort', () => console.log(`${service} aborted ${codeOf(signal.reason)}`), { once: true });
  if (next !== undefined) {
    const timeoutMs = request.query.timeoutMs === undefined ? undefined : Number(request.query.timeoutMs);
    try {
      return await app.client(next).get('/work', timeoutMs === undefined ? {} : { timeoutMs });
    } catch (error) {
      console.log(`${service} call failed ${codeOf(error)}`);
      throw error;
    }
  }
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  console.log(`${service} stopped working`);
  return { done: false };
});

await app.run();
