import {
  bodyFields,
  decodeError,
  decodeHeader,
  decodeMeta,
  decodeWeights,
  fieldsOf,
  limitLength,
  normalizeKey,
  optionalBoolean,
  optionalInteger,
  optionalString,
  optionalStringArray,
  RequestDecodeError,
  type CheckStatus,
  type ServiceDefinition,
} from './service-definition.js';

// The bodies of PUT /v1/catalog/register and /v1/catalog/deregister (Consul's RegisterRequest
// and DeregisterRequest): what tools such as Consul ESM send to put services of other nodes,
// which no agent runs, into the catalog.

/** A check of another node as registered in the catalog: its status is what the registrant says. */
export interface ExternalCheckDefinition {
  /** `CheckID`, else its `Name`. */
  readonly id: string;
  readonly name: string;
  readonly status: CheckStatus;
  readonly notes: string;
  readonly output: string;
  /** The service of the node it belongs to; empty for a check of the node. */
  readonly serviceId: string;
  /** `Type` as given (`http`, `tcp`, ... ); the server never runs these checks. */
  readonly type: string;
  /** `Definition`, the fields Consul's api.HealthCheckDefinition has, for tools (ESM) that run the check. */
  readonly definition: Readonly<Record<string, unknown>>;
}

/** The body of `PUT /v1/catalog/register`, decoded and validated. */
export interface NodeRegistration {
  /** `Datacenter`; empty when not given. */
  readonly datacenter: string;
  readonly node: string;
  /** `ID`, a UUID; empty when not given. */
  readonly id: string;
  readonly address: string;
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  /** Leave the node's address and metadata as they are (`SkipNodeUpdate`). */
  readonly skipNodeUpdate: boolean;
  /** The service, without checks (they come in {@link checks}). */
  readonly service: ServiceDefinition | undefined;
  readonly checks: readonly ExternalCheckDefinition[];
}

/** The body of `PUT /v1/catalog/deregister`: a service, else a check, else the whole node. */
export interface NodeDeregistration {
  readonly datacenter: string;
  readonly node: string;
  readonly serviceId: string;
  readonly checkId: string;
}

const checkStatuses: readonly string[] = ['passing', 'warning', 'critical'];
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const maxChecks = 64;

// api.HealthCheckDefinition's fields and their JSON types; others are dropped.
const definitionStrings = ['HTTP', 'Method', 'Body', 'TLSServerName', 'TCP', 'UDP', 'GRPC', 'OSService', 'H2PING'];
const definitionBooleans = ['TLSSkipVerify', 'GRPCUseTLS', 'H2PingUseTLS', 'TCPUseTLS', 'DisableRedirects'];
const definitionDurations = ['Interval', 'Timeout', 'DeregisterCriticalServiceAfter'];

/**
 * Decodes `PUT /v1/catalog/register` as Consul reads it (keys in any case, `null` for "not
 * given"): `Node` is required, and `Address` unless `SkipNodeUpdate`; `Service` uses the
 * catalog's spelling (`Service` for the name, `ID` defaulting to it); `Check` and `Checks`
 * default their `CheckID` to their `Name` and their `Status` to critical.
 *
 * @throws RequestDecodeError naming the field, with Consul's text where it has one
 *   ("Must provide node").
 * @example
 * decodeNodeRegistration('{"Node":"db-1","Address":"10.0.0.5","Service":{"Service":"db","Port":5432}}');
 */
export function decodeNodeRegistration(body: string | undefined): NodeRegistration {
  const fields = bodyFields(body);
  const node = optionalString(fields, 'Node', '');
  if (node === '') throw new RequestDecodeError('Node', 'Must provide node');
  limitLength('Node', node);
  const skipNodeUpdate = optionalBoolean(fields, 'SkipNodeUpdate');
  const address = optionalString(fields, 'Address', '');
  if (address === '' && !skipNodeUpdate) {
    throw new RequestDecodeError('Address', 'Must provide address if SkipNodeUpdate is not set');
  }
  const id = optionalString(fields, 'ID', '');
  if (id !== '' && !uuidPattern.test(id)) throw new RequestDecodeError('ID', `Bad node ID: "${id}" is not a UUID`);

  const serviceValue = fields.get('service');
  const service = serviceValue === undefined || serviceValue === null ? undefined : decodeNodeService(serviceValue);

  const checkValues: { value: unknown; path: string }[] = [];
  const checks = fields.get('checks');
  if (checks !== undefined && checks !== null) {
    if (!Array.isArray(checks)) throw decodeError('Checks', 'must be an array of check objects');
    checks.forEach((value: unknown, i) => checkValues.push({ value, path: `Checks[${i}]` }));
  }
  const check = fields.get('check');
  if (check !== undefined && check !== null) checkValues.push({ value: check, path: 'Check' });
  if (checkValues.length > maxChecks) throw decodeError('Checks', `cannot hold more than ${maxChecks} checks`);
  const decodedChecks = checkValues.map(({ value, path }) => decodeExternalCheck(fieldsOf(value, path), path, node));

  return {
    datacenter: optionalString(fields, 'Datacenter', ''),
    node,
    id,
    address,
    taggedAddresses: decodeStringMap(fields.get('taggedaddresses'), 'TaggedAddresses'),
    // Node metadata may carry Consul's own keys (consul-network-segment, consul-version).
    meta: decodeMeta(fields.get('nodemeta'), 'NodeMeta', { reservedPrefix: true }),
    skipNodeUpdate,
    service,
    checks: decodedChecks,
  };
}

/**
 * Decodes `PUT /v1/catalog/deregister`: `Node` is required; `ServiceID`, else `CheckID`, says
 * what to remove of it, else the node goes with everything on it.
 * @throws RequestDecodeError naming the field.
 */
export function decodeNodeDeregistration(body: string | undefined): NodeDeregistration {
  const fields = bodyFields(body);
  const node = optionalString(fields, 'Node', '');
  if (node === '') throw new RequestDecodeError('Node', 'Must provide node');
  return {
    datacenter: optionalString(fields, 'Datacenter', ''),
    node,
    serviceId: optionalString(fields, 'ServiceID', ''),
    checkId: optionalString(fields, 'CheckID', ''),
  };
}

function decodeNodeService(value: unknown): ServiceDefinition {
  const fields = fieldsOf(value, 'Service');
  const kind = optionalString(fields, 'Service.Kind', '', 'Kind');
  if (kind !== '')
    throw decodeError('Service.Kind', `"${kind}" is not supported by this server: only typical services are`);
  const name = optionalString(fields, 'Service.Service', '', 'Service');
  const id = optionalString(fields, 'Service.ID', '', 'ID') || name;
  if (name === '') throw new RequestDecodeError('Service.Service', 'Must provide service name with ID');
  limitLength('Service.Service', name);
  limitLength('Service.ID', id);
  const address = optionalString(fields, 'Service.Address', '', 'Address');
  if (address === '0.0.0.0' || address === '::' || address === '[::]') {
    throw new RequestDecodeError('Service.Address', 'Invalid service address');
  }
  return {
    id,
    name,
    address,
    port: optionalInteger(fields, 'Service.Port', 'Port', 0, 65535) ?? 0,
    tags: optionalStringArray(fields, 'Service.Tags', 'Tags'),
    meta: decodeMeta(fields.get('meta'), 'Service.Meta'),
    weights: decodeWeights(fields.get('weights'), 'Service.Weights'),
    enableTagOverride: optionalBoolean(fields, 'Service.EnableTagOverride', 'EnableTagOverride'),
    checks: [],
  };
}

function decodeExternalCheck(fields: Map<string, unknown>, path: string, node: string): ExternalCheckDefinition {
  const at = (key: string): string => `${path}.${key}`;
  const checkNode = optionalString(fields, at('Node'), '', 'Node');
  // Consul refuses a check of another node in the same request (vetRegisterWithACL).
  if (checkNode !== '' && checkNode.toLowerCase() !== node.toLowerCase()) {
    throw decodeError(at('Node'), `"${checkNode}" does not match the request's Node "${node}"`);
  }
  const name = optionalString(fields, at('Name'), '', 'Name');
  const id = optionalString(fields, at('CheckID'), '', 'CheckID') || name;
  if (id === '') throw decodeError(at('CheckID'), 'is required: give CheckID or Name');
  limitLength(at('CheckID'), id);
  const status = optionalString(fields, at('Status'), '', 'Status') || 'critical';
  if (!checkStatuses.includes(status)) {
    throw decodeError(at('Status'), `must be one of passing, warning, critical; got "${status}"`);
  }
  return {
    id,
    name: name || id,
    status: status as CheckStatus,
    notes: optionalString(fields, at('Notes'), '', 'Notes'),
    output: optionalString(fields, at('Output'), '', 'Output').slice(0, 4 * 1024),
    serviceId: optionalString(fields, at('ServiceID'), '', 'ServiceID'),
    type: optionalString(fields, at('Type'), '', 'Type'),
    definition: decodeDefinition(fields.get('definition'), at('Definition')),
  };
}

function decodeDefinition(value: unknown, path: string): Readonly<Record<string, unknown>> {
  if (value === undefined || value === null) return {};
  const fields = fieldsOf(value, path);
  const definition: Record<string, unknown> = {};
  for (const key of definitionStrings) {
    const v = optionalString(fields, `${path}.${key}`, '', key);
    if (v !== '') definition[key] = v;
  }
  for (const key of definitionBooleans) {
    if (optionalBoolean(fields, `${path}.${key}`, key)) definition[key] = true;
  }
  for (const key of definitionDurations) {
    // Kept as given: a Go duration string, or nanoseconds, both of which the Go client reads.
    // The npm client sends them as `IntervalDuration`, ...
    const v = fields.get(normalizeKey(key)) ?? fields.get(normalizeKey(`${key}Duration`));
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isSafeInteger(v))) {
      throw decodeError(`${path}.${key}`, 'must be a Go duration string such as "10s"');
    }
    definition[key] = v;
  }
  const header = decodeHeader(fields.get('header'), `${path}.Header`);
  if (Object.keys(header).length > 0) definition['Header'] = header;
  return definition;
}

function decodeStringMap(value: unknown, path: string): Readonly<Record<string, string>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw decodeError(path, 'must be a JSON object of strings');
  const entries = Object.entries(value);
  if (entries.length > 16) throw decodeError(path, 'cannot hold more than 16 addresses');
  for (const [key, v] of entries) {
    if (typeof v !== 'string') throw decodeError(`${path}[${JSON.stringify(key)}]`, 'must be a string');
  }
  return Object.fromEntries(entries as [string, string][]);
}
