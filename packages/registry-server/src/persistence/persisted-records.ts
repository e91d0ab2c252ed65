import { z } from 'zod';
import type { AclState } from '../acl/acl-store.js';
import type { PersistedCheck, PersistedService } from '../catalog/catalog.js';
import type { PersistedNode } from '../catalog/external-nodes.js';
import type { SessionRecord } from '../session/session-store.js';
import { journalKinds, type PersistedKv } from './durable-state.js';
import type { RecordSchemas } from './snapshot.js';

// The shapes of what the registry writes to its data directory, checked on load so that a
// record of another shape (a hand edit, a bug) is refused naming its field instead of turning
// up later as a TypeError deep in a store. Each schema is checked against the type the stores
// write (both ways, below), so the two cannot drift apart unnoticed. Objects are loose: a
// field that a later version adds and this one does not know is kept, not refused or dropped.

/**
 * What JSON makes of a value of type T: a property whose type admits undefined becomes
 * optional (JSON.stringify drops it), recursively.
 */
type Json<T> = T extends readonly (infer E)[]
  ? Json<E>[]
  : T extends object
    ? { [K in keyof T as undefined extends T[K] ? never : K]: Json<T[K]> } & {
        [K in keyof T as undefined extends T[K] ? K : never]?: Json<Exclude<T[K], undefined>>;
      }
    : T;

/**
 * True when every value the schema accepts is a T (as JSON), and every T (as JSON) is
 * accepted by the schema's type: neither is narrower than the other.
 */
type Agrees<S extends z.ZodType, T> = [z.output<S>] extends [Json<T>]
  ? [Json<T>] extends [z.input<S>]
    ? true
    : false
  : false;

const index = z.number().int().nonnegative();
const stringMap = z.record(z.string(), z.string());
const checkStatus = z.enum(['passing', 'warning', 'critical']);

const httpCheckSpec = z.looseObject({
  url: z.string(),
  method: z.string(),
  header: z.record(z.string(), z.array(z.string())),
  body: z.string(),
  intervalMs: z.number(),
  timeoutMs: z.number(),
  tlsSkipVerify: z.boolean(),
  disableRedirects: z.boolean().exactOptional(),
});

const checkDefinition = z.looseObject({
  id: z.string(),
  name: z.string(),
  notes: z.string(),
  ttlMs: z.number().exactOptional(),
  http: httpCheckSpec.exactOptional(),
  status: checkStatus.exactOptional(),
  deregisterCriticalAfterMs: z.number().exactOptional(),
  maintenance: z.literal(true).exactOptional(),
  script: z.looseObject({ args: z.array(z.string()), intervalMs: z.number(), timeoutMs: z.number() }).exactOptional(),
});

const serviceDefinition = z.looseObject({
  id: z.string(),
  name: z.string(),
  address: z.string(),
  port: z.number().int(),
  tags: z.array(z.string()),
  meta: stringMap,
  weights: z.looseObject({ passing: z.number(), warning: z.number() }),
  // Absent in services written before it was kept.
  enableTagOverride: z.boolean().default(false),
  checks: z.array(checkDefinition),
});

const service = z.looseObject({ def: serviceDefinition, createIndex: index, modifyIndex: index });

const check = z.looseObject({
  def: checkDefinition,
  serviceId: z.string(),
  status: checkStatus,
  output: z.string(),
  lastNote: z.string(),
  createIndex: index,
  modifyIndex: index,
});

const catalogNode = z.looseObject({
  name: z.string(),
  id: z.string(),
  address: z.string(),
  taggedAddresses: stringMap,
  meta: stringMap,
  createIndex: index,
  modifyIndex: index,
  services: z.array(z.looseObject({ def: serviceDefinition, createIndex: index, modifyIndex: index })),
  checks: z.array(
    z.looseObject({
      def: z.looseObject({
        id: z.string(),
        name: z.string(),
        status: checkStatus,
        notes: z.string(),
        output: z.string(),
        serviceId: z.string(),
        type: z.string(),
        definition: z.record(z.string(), z.unknown()),
      }),
      createIndex: index,
      modifyIndex: index,
    }),
  ),
});

const kv = z.union([
  z.looseObject({
    value: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64'),
    // A decimal string for flags above 2^53-1.
    flags: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]),
    createIndex: index,
    modifyIndex: index,
    lockIndex: index.exactOptional(),
    session: z.string().exactOptional(),
  }),
  z.looseObject({ deletedAt: index }),
]);

const session = z.looseObject({
  id: z.string(),
  name: z.string(),
  node: z.string(),
  lockDelayMs: z.number().nonnegative(),
  behavior: z.enum(['release', 'delete']),
  ttl: z.string(),
  ttlMs: z.number().nonnegative(),
  nodeChecks: z.array(z.string()).nullable(),
  serviceChecks: z.array(z.looseObject({ id: z.string(), namespace: z.string() })).nullable(),
  checks: z.array(z.string()),
  createIndex: index,
  modifyIndex: index,
});

const acl = z.looseObject({
  index,
  policies: z.array(
    z.looseObject({
      id: z.string(),
      name: z.string(),
      description: z.string(),
      rules: z.string(),
      createIndex: index,
      modifyIndex: index,
    }),
  ),
  tokens: z.array(
    z.looseObject({
      accessorId: z.string(),
      secretId: z.string(),
      description: z.string(),
      policyIds: z.array(z.string()),
      createTime: z.string(),
      createIndex: index,
      modifyIndex: index,
    }),
  ),
  revokedInitialSecrets: z.array(z.string()).exactOptional(),
});

// Compile-time: each schema agrees with the type its store writes. A `false` here means one of
// them changed without the other: make the schema above say what the store writes.
const agreed: [
  Agrees<typeof service, PersistedService>,
  Agrees<typeof check, PersistedCheck>,
  Agrees<typeof catalogNode, PersistedNode>,
  Agrees<typeof kv, PersistedKv>,
  Agrees<typeof session, SessionRecord>,
  Agrees<typeof acl, AclState>,
] = [true, true, true, true, true, true];
void agreed;

/**
 * The schema of every record kind the registry journals, for {@link StateJournal.open}'s
 * `schemas`: a record of another shape, or of an unknown kind, is refused on load.
 * @example
 * const { journal, state } = StateJournal.open({ dir, schemas: persistedRecordSchemas });
 */
export const persistedRecordSchemas: RecordSchemas = {
  [journalKinds.service]: service,
  [journalKinds.check]: check,
  [journalKinds.catalogNode]: catalogNode,
  [journalKinds.kv]: kv,
  [journalKinds.session]: session,
  [journalKinds.acl]: acl,
  // The index of the last change of a service name (`service:<name>`).
  [journalKinds.topic]: index,
  [journalKinds.node]: z.string(),
};
