// The /trellis page's script, compiled by tsc for the browser (this folder's tsconfig.json) and
// inlined into index.html by the app. No framework and no external URL. It reads GET /trellis
// as JSON and builds the DOM with textContent and setAttribute alone: instance ids, tags and
// meta come from the registry, that is from outside, and never reach innerHTML.

const refreshMs = 2000;
const maxBackoffMs = 30000;

// The fields of TrellisStatus (packages/app/src/trellis-page/trellis-status.ts) the page reads.
// Values from the registry are shown with text(), whatever their type turns out to be.
interface Meta {
  readonly version?: unknown;
  readonly zone?: unknown;
  readonly weight?: unknown;
  readonly labels?: Readonly<Record<string, unknown>>;
}
interface Breaker {
  readonly state: string;
  readonly openRemainingMs: number;
}
interface Load {
  readonly score?: number;
  readonly latencyMs?: number;
  readonly outstanding?: number;
}
interface Recent {
  readonly attempts: number;
  readonly failures: number;
  readonly outstanding: number;
  readonly lastLatencyMs: number | null;
}
interface TargetInstance {
  readonly id: unknown;
  readonly address: unknown;
  readonly port: unknown;
  readonly tags?: readonly unknown[];
  readonly meta?: Meta;
  readonly health: string;
  readonly used: boolean;
  readonly breaker: Breaker | null;
  readonly load: Load | null;
  readonly recent: Recent | null;
}
interface Client {
  readonly service: string;
  readonly strategy: string;
  readonly stages: readonly string[];
  readonly retryBudget: { readonly balance: number } | null;
  readonly routingRules: unknown;
  readonly lastRoute: string | null;
  readonly faultRules: readonly unknown[];
  readonly panic: boolean;
  readonly discovery: {
    readonly registryReachable: boolean;
    readonly updatedAt: number | null;
    readonly panic: boolean;
    readonly fromFailoverFile: boolean;
  } | null;
  readonly instances: readonly TargetInstance[];
  readonly instancesLeftOut: number;
}
interface Status {
  readonly service: string;
  readonly state: string;
  readonly now: number;
  readonly instance: {
    readonly id: unknown;
    readonly url: unknown;
    readonly tags?: readonly unknown[];
    readonly meta?: Meta;
  } | null;
  readonly registration: {
    readonly registeredAt: number | null;
    readonly lastHeartbeatAt: number | null;
    readonly consecutiveFailures: number;
    readonly lastError: string | null;
  } | null;
  readonly clients: readonly Client[];
  readonly rules: readonly RulesState[] | null;
  readonly config: {
    readonly entries: ReadonlyArray<{ readonly key: string; readonly value: unknown; readonly source: string }>;
    readonly refusals: ReadonlyArray<{ readonly key: string; readonly source: string; readonly reason: string }>;
  } | null;
}
interface RulesState {
  readonly service: string;
  readonly version?: number;
  readonly author?: string;
  readonly reason?: string;
  readonly dryRun?: number;
  readonly refused?: { readonly version?: number; readonly field: string; readonly problem: string };
}

function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** An element with attributes and children; strings become text nodes, never markup. */
function el(
  tag: string,
  attributes: Readonly<Record<string, string>> = {},
  ...children: ReadonlyArray<Node | string>
): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function ago(now: number, at: number | null): string {
  if (at === null) return 'never';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 2) return 'just now';
  if (s < 120) return `${s} s ago`;
  return `${Math.round(s / 60)} min ago`;
}

function ms(value: number): string {
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

function chips(kind: string, values: readonly unknown[] | undefined): HTMLElement[] {
  return (values ?? []).map((v) => el('span', { class: 'chip', [`data-${kind}`]: '' }, text(v)));
}

function metaChips(meta: Meta | undefined): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (meta === undefined) return out;
  for (const key of ['version', 'zone', 'weight'] as const) {
    if (meta[key] !== undefined) out.push(el('span', { class: 'chip', 'data-meta': key }, `${key} ${text(meta[key])}`));
  }
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    out.push(el('span', { class: 'chip', 'data-meta': key }, `${key} ${text(value)}`));
  }
  return out;
}

function renderHeader(status: Status): void {
  const own = document.querySelector('[data-own-instance]');
  const registration = document.querySelector('[data-registration]');
  if (own === null || registration === null) return;
  const state = el('strong', { 'data-app-state': status.state }, status.state);
  if (status.instance === null) {
    own.replaceChildren('Not started yet · ', state);
  } else {
    own.replaceChildren(
      'Instance ',
      el('strong', { 'data-instance-id': '' }, text(status.instance.id)),
      ' at ',
      el('span', { 'data-url': '' }, text(status.instance.url)),
      ' · ',
      state,
      ' ',
      ...chips('tag', status.instance.tags),
      ...metaChips(status.instance.meta),
    );
  }
  const r = status.registration;
  if (r === null) {
    registration.replaceChildren('Not registered.');
  } else {
    const failures =
      r.consecutiveFailures === 0
        ? el('span', { 'data-registration-failures': '0' }, 'no failures')
        : el(
            'span',
            { 'data-registration-failures': String(r.consecutiveFailures), 'data-reachable': 'false' },
            `${r.consecutiveFailures} failed in a row: ${r.lastError ?? ''}`,
          );
    registration.replaceChildren(
      `Registered ${ago(status.now, r.registeredAt)} · last heartbeat ${ago(status.now, r.lastHeartbeatAt)} · `,
      failures,
    );
  }
}

function breakerCell(breaker: Breaker | null): HTMLElement {
  if (breaker === null)
    return el('td', { 'data-breaker': '', 'data-state': 'closed', title: 'never called' }, 'closed');
  const left = breaker.state === 'open' ? ` (${Math.ceil(breaker.openRemainingMs / 1000)} s left)` : '';
  return el('td', { 'data-breaker': '', 'data-state': breaker.state }, breaker.state + left);
}

function instanceRow(instance: TargetInstance): HTMLElement {
  const { load, recent } = instance;
  const latency =
    load?.latencyMs !== undefined
      ? `${ms(load.latencyMs)} EWMA`
      : recent?.lastLatencyMs !== null && recent?.lastLatencyMs !== undefined
        ? `${ms(recent.lastLatencyMs)} last`
        : '–';
  const outstanding = load?.outstanding ?? recent?.outstanding;
  const calls =
    recent === null ? '–' : `${recent.attempts}${recent.failures > 0 ? ` (${recent.failures} failed)` : ''}`;
  return el(
    'tr',
    { 'data-instance': text(instance.id), 'data-used': String(instance.used) },
    el('td', { 'data-instance-id': '' }, text(instance.id)),
    el('td', { 'data-address': '' }, `${text(instance.address)}:${text(instance.port)}`),
    el('td', { 'data-health': instance.health }, instance.health + (instance.used ? '' : ' (not called)')),
    breakerCell(instance.breaker),
    el('td', { class: 'number', 'data-score': '' }, load?.score === undefined ? '–' : load.score.toFixed(1)),
    el('td', { class: 'number', 'data-latency': '' }, latency),
    el('td', { class: 'number', 'data-outstanding': '' }, outstanding === undefined ? '–' : String(outstanding)),
    el('td', { class: 'number', 'data-calls': '' }, calls),
    el('td', {}, ...chips('tag', instance.tags), ...metaChips(instance.meta)),
  );
}

function rules(kind: string, label: string, value: unknown, empty: boolean): HTMLElement {
  if (empty) return el('p', { class: 'muted', [`data-${kind}`]: 'none' }, `No ${label}.`);
  return el(
    'details',
    { [`data-${kind}`]: '' },
    el('summary', {}, label.charAt(0).toUpperCase() + label.slice(1)),
    el('pre', {}, JSON.stringify(value, null, 2)),
  );
}

function renderClient(client: Client, now: number): HTMLElement {
  const d = client.discovery;
  const discovery =
    d === null
      ? el('p', { class: 'muted', 'data-discovery': 'none' }, 'Not called yet: discovery has not looked it up.')
      : el(
          'p',
          { 'data-discovery': '' },
          el(
            'span',
            { 'data-reachable': String(d.registryReachable) },
            d.registryReachable ? 'registry reachable' : 'registry unreachable: calling the last known instances',
          ),
          ` · instances updated ${ago(now, d.updatedAt)}`,
          ...(d.fromFailoverFile ? [' · from the failover file'] : []),
          ...(d.panic ? [' · ', el('span', { 'data-panic': 'true' }, 'panic: too few healthy, calling all')] : []),
        );
  const routing = client.routingRules;
  const noRouting = routing === null || (typeof routing === 'object' && Object.keys(routing).length === 0);
  const rows = client.instances.map(instanceRow);
  const table =
    rows.length === 0
      ? el('p', { class: 'muted', 'data-empty': 'instances' }, 'No instance known.')
      : el(
          'table',
          {},
          el('caption', { class: 'muted' }, `Instances of ${client.service}`),
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ...[
                'Instance',
                'Address',
                'Health',
                'Breaker',
                'Score',
                'Latency',
                'In flight',
                'Calls',
                'Tags and meta',
              ].map((h) => el('th', { scope: 'col' }, h)),
            ),
          ),
          el('tbody', {}, ...rows),
        );
  return el(
    'section',
    { class: 'client', 'data-client': client.service },
    el('h3', {}, client.service),
    el(
      'p',
      {},
      'Strategy ',
      el('strong', { 'data-strategy': '' }, client.strategy),
      ' · ',
      el(
        'span',
        { 'data-retry-budget': client.retryBudget === null ? 'none' : String(client.retryBudget.balance) },
        client.retryBudget === null ? 'no retry budget' : `${client.retryBudget.balance} retries left in the budget`,
      ),
      ...(client.panic ? [' · ', el('span', { 'data-panic': 'true' }, 'panic: every instance ejected')] : []),
      ...(client.lastRoute === null
        ? []
        : [' · last route ', el('strong', { 'data-last-route': '' }, client.lastRoute)]),
    ),
    el('p', { class: 'muted' }, 'Stages ', ...chips('stage', client.stages)),
    discovery,
    table,
    ...(client.instancesLeftOut > 0 ? [el('p', { class: 'muted' }, `${client.instancesLeftOut} more not shown.`)] : []),
    rules('routing-rules', 'routing rules', routing, noRouting),
    rules('fault-rules', 'fault rules', client.faultRules, client.faultRules.length === 0),
  );
}

function rulesRow(state: RulesState): HTMLElement {
  const refused = state.refused;
  return el(
    'tr',
    { 'data-rules-of': state.service },
    el('td', {}, state.service),
    el('td', { class: 'number', 'data-rules-version': text(state.version ?? 'none') }, text(state.version ?? '–')),
    el(
      'td',
      {},
      state.version === undefined
        ? "none in the registry: the code's options"
        : `${text(state.author)}: ${text(state.reason)}`,
    ),
    el(
      'td',
      { 'data-dry-run': text(state.dryRun ?? 'none') },
      state.dryRun === undefined ? '–' : `version ${state.dryRun}`,
    ),
    el(
      'td',
      { 'data-refused': refused === undefined ? 'none' : text(refused.version ?? '?') },
      refused === undefined ? '–' : `version ${text(refused.version ?? '?')}: ${refused.field}: ${refused.problem}`,
    ),
  );
}

function renderRules(states: readonly RulesState[] | null): void {
  const section = document.querySelector('[data-rules]');
  if (section === null) return;
  if (states === null) {
    section.replaceChildren(
      el('p', { class: 'muted', 'data-rules-off': '' }, 'This app follows no rules (control plane off).'),
    );
    return;
  }
  section.replaceChildren(
    el(
      'table',
      {},
      el('caption', { class: 'muted' }, 'Rules in force, by the service they are about'),
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ...['Service', 'Version', 'Written by', 'Dry run', 'Refused here'].map((h) => el('th', { scope: 'col' }, h)),
        ),
      ),
      el('tbody', {}, ...states.map(rulesRow)),
    ),
  );
}

function renderConfig(config: Status['config']): void {
  const section = document.querySelector('[data-config]');
  if (section === null) return;
  if (config === null) {
    section.replaceChildren(
      el('p', { class: 'muted', 'data-config-off': '' }, 'No typed settings (no config option).'),
    );
    return;
  }
  section.replaceChildren(
    el(
      'table',
      {},
      el('caption', { class: 'muted' }, 'Settings in force, and where each came from'),
      el('thead', {}, el('tr', {}, ...['Key', 'Value', 'From'].map((h) => el('th', { scope: 'col' }, h)))),
      el(
        'tbody',
        {},
        ...config.entries.map((e) =>
          el(
            'tr',
            { 'data-config-key': e.key },
            el('td', {}, e.key),
            el('td', { 'data-config-value': '' }, text(e.value)),
            el('td', {}, e.source),
          ),
        ),
      ),
    ),
    ...config.refusals.map((r) =>
      el(
        'p',
        { class: 'bad', 'data-config-refused': r.key },
        `Refused ${r.key} from ${r.source}: ${r.reason}; the last good value stays.`,
      ),
    ),
  );
}

function render(status: Status): void {
  renderHeader(status);
  renderRules(status.rules);
  renderConfig(status.config);
  const clients = document.querySelector('[data-clients]');
  const empty = document.querySelector<HTMLElement>('[data-empty="clients"]');
  clients?.replaceChildren(...status.clients.map((c) => renderClient(c, status.now)));
  if (empty !== null) empty.hidden = status.clients.length > 0;
}

function setConnection(state: 'live' | 'retrying', message: string): void {
  const connection = document.querySelector('[data-connection]');
  connection?.setAttribute('data-connection', state);
  if (connection !== null) connection.textContent = message;
}

let failures = 0;

async function refresh(): Promise<void> {
  let delay = refreshMs;
  try {
    const response = await fetch(location.pathname, { headers: { accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render((await response.json()) as Status);
    failures = 0;
    setConnection('live', 'Live.');
    const updated = document.querySelector('[data-updated]');
    if (updated !== null) {
      const now = new Date();
      updated.setAttribute('datetime', now.toISOString());
      updated.textContent = now.toLocaleTimeString();
    }
  } catch (error) {
    failures++;
    delay = Math.min(maxBackoffMs, refreshMs * 2 ** (failures - 1));
    const why = error instanceof Error ? error.message : String(error);
    setConnection('retrying', `Could not refresh (${why}); retrying in ${Math.round(delay / 1000)} s.`);
  }
  setTimeout(() => void refresh(), delay);
}

void refresh();
