import { TrellisError } from '@trellis/core';
// Consul's ACL rule language, the part that services and KV need. Consul reads rules as HCL or
// JSON; this parser reads the same two forms, limited to what Trellis enforces:
//
//   service "web" { policy = "write" }          # also service_prefix, key, key_prefix,
//   key_prefix "config/" { policy = "read" }    # node, node_prefix, agent, agent_prefix
//   operator = "read"                           # also acl = "read" | "write"
//
// or `{"service": {"web": {"policy": "write"}}, "operator": "read"}`. Comments (#, //, /* */)
// and commas between attributes are accepted; other HCL (heredocs, nested lists,
// `service = {...}` assignments) is not, and is refused with a message naming what was found.

/** How much a rule grants. `list` exists for keys only and implies `read`; `write` implies both. */
export type AccessLevel = 'deny' | 'read' | 'list' | 'write';

/** What a named rule governs. */
export type RuleResource = 'service' | 'key' | 'node' | 'agent' | 'session';

/** One `service "web" { policy = "write" }` block (or a `_prefix` one). */
export interface AclRule {
  readonly resource: RuleResource;
  /** The exact name, or the prefix when {@link prefix} is true ("" matches everything). */
  readonly name: string;
  readonly prefix: boolean;
  readonly level: AccessLevel;
}

/** The parsed rules of one policy. */
export interface AclRules {
  readonly rules: readonly AclRule[];
  /** `operator = "..."`; undefined when the policy says nothing of it. */
  readonly operator: AccessLevel | undefined;
  /** `acl = "..."`: managing tokens and policies. */
  readonly acl: AccessLevel | undefined;
}

/**
 * Rules that cannot be parsed; the message names the problem (line and what was found).
 * Code `INVALID_ACL_RULES`.
 */
export class AclRulesError extends TrellisError {
  constructor(message: string) {
    super('INVALID_ACL_RULES', `Failed to parse ACL rules: ${message}`);
  }
}

const blockResources: Readonly<Record<string, { resource: RuleResource; prefix: boolean }>> = {
  service: { resource: 'service', prefix: false },
  service_prefix: { resource: 'service', prefix: true },
  key: { resource: 'key', prefix: false },
  key_prefix: { resource: 'key', prefix: true },
  node: { resource: 'node', prefix: false },
  node_prefix: { resource: 'node', prefix: true },
  agent: { resource: 'agent', prefix: false },
  agent_prefix: { resource: 'agent', prefix: true },
  // Sessions by the name of their node: write to create, renew and destroy, read to list.
  session: { resource: 'session', prefix: false },
  session_prefix: { resource: 'session', prefix: true },
};

/**
 * Parses a policy's rules, written as HCL blocks or as Consul's JSON form. Empty rules grant
 * nothing.
 *
 * @throws AclRulesError naming the problem: a syntax error (with its line), an unknown rule,
 *   or a policy other than read, write, deny (and list for keys).
 * @example
 * parseAclRules('service_prefix "users" { policy = "write" }').rules
 * // [{ resource: 'service', name: 'users', prefix: true, level: 'write' }]
 */
export function parseAclRules(text: string): AclRules {
  return text.trimStart().startsWith('{') ? parseJsonRules(text) : parseHclRules(text);
}

interface Builder {
  rules: AclRule[];
  operator: AccessLevel | undefined;
  acl: AccessLevel | undefined;
}

function addBlock(into: Builder, kind: string, name: string, policy: unknown, where: string): void {
  const target = blockResources[kind];
  if (target === undefined) {
    throw new AclRulesError(`${where}: unknown rule ${JSON.stringify(kind)}; expected one of ${ruleNames()}`);
  }
  const level = accessLevel(policy, target.resource === 'key', `${where}: ${kind} ${JSON.stringify(name)}`);
  into.rules.push({ resource: target.resource, name, prefix: target.prefix, level });
}

function setTop(into: Builder, kind: string, value: unknown, where: string): void {
  if (kind !== 'operator' && kind !== 'acl') {
    throw new AclRulesError(`${where}: unknown rule ${JSON.stringify(kind)}; expected one of ${ruleNames()}`);
  }
  into[kind] = accessLevel(value, false, `${where}: ${kind}`);
}

function accessLevel(value: unknown, listAllowed: boolean, what: string): AccessLevel {
  if (value === 'read' || value === 'write' || value === 'deny' || (listAllowed && value === 'list')) return value;
  const expected = listAllowed ? 'read, list, write or deny' : 'read, write or deny';
  if (value === undefined) throw new AclRulesError(`${what} has no policy; expected policy = ${expected}`);
  throw new AclRulesError(`${what}: invalid policy ${JSON.stringify(value)}; expected ${expected}`);
}

function ruleNames(): string {
  return [...Object.keys(blockResources), 'operator', 'acl'].join(', ');
}

function parseJsonRules(text: string): AclRules {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AclRulesError(`invalid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isObject(value)) throw new AclRulesError('JSON rules must be an object');
  const into: Builder = { rules: [], operator: undefined, acl: undefined };
  for (const [kind, body] of Object.entries(value)) {
    if (!(kind in blockResources)) {
      setTop(into, kind, body, 'JSON');
      continue;
    }
    if (!isObject(body)) throw new AclRulesError(`JSON: ${kind} must be an object of names to {"policy": ...}`);
    for (const [name, rule] of Object.entries(body)) {
      if (!isObject(rule)) throw new AclRulesError(`JSON: ${kind} ${JSON.stringify(name)} must be {"policy": ...}`);
      rejectUnknownAttributes(Object.keys(rule), `JSON: ${kind} ${JSON.stringify(name)}`);
      addBlock(into, kind, name, rule['policy'], 'JSON');
    }
  }
  return into;
}

function rejectUnknownAttributes(names: readonly string[], where: string): void {
  const unknown = names.find((n) => n !== 'policy');
  if (unknown !== undefined) {
    throw new AclRulesError(`${where}: unsupported attribute ${JSON.stringify(unknown)}; only policy is supported`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface Token {
  readonly kind: 'ident' | 'string' | '{' | '}' | '=' | ',' | 'end';
  readonly value: string;
  readonly line: number;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '#' || text.startsWith('//', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new AclRulesError(`line ${line}: unterminated /* comment`);
      line += text.slice(i, end).split('\n').length - 1;
      i = end + 2;
    } else if (c === '{' || c === '}' || c === '=' || c === ',') {
      tokens.push({ kind: c, value: c, line });
      i++;
    } else if (c === '"') {
      let value = '';
      i++;
      for (;;) {
        const d = text[i];
        if (d === undefined || d === '\n') throw new AclRulesError(`line ${line}: unterminated string`);
        i++;
        if (d === '"') break;
        if (d === '\\') {
          const escaped = text[i++];
          const known: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t' };
          const replacement = escaped === undefined ? undefined : known[escaped];
          if (replacement === undefined) throw new AclRulesError(`line ${line}: invalid escape \\${escaped ?? ''}`);
          value += replacement;
        } else {
          value += d;
        }
      }
      tokens.push({ kind: 'string', value, line });
    } else if (/[A-Za-z_]/.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(text.slice(i));
      const word = match?.[0] ?? c;
      tokens.push({ kind: 'ident', value: word, line });
      i += word.length;
    } else {
      throw new AclRulesError(`line ${line}: unexpected character ${JSON.stringify(c)}`);
    }
  }
  tokens.push({ kind: 'end', value: 'end of rules', line });
  return tokens;
}

function parseHclRules(text: string): AclRules {
  const tokens = tokenize(text);
  let at = 0;
  const peek = (): Token => tokens[at] ?? { kind: 'end', value: 'end of rules', line: 0 };
  const expect = (kind: Token['kind'], what: string): Token => {
    const token = peek();
    if (token.kind !== kind) {
      const found = token.kind === 'end' ? 'the end of the rules' : JSON.stringify(token.value);
      throw new AclRulesError(`line ${token.line}: expected ${what}, found ${found}`);
    }
    at++;
    return token;
  };

  const into: Builder = { rules: [], operator: undefined, acl: undefined };
  while (peek().kind !== 'end') {
    const head = expect('ident', 'a rule such as service "name" { ... } or operator = "read"');
    const where = `line ${head.line}`;
    if (peek().kind === '=') {
      at++;
      setTop(into, head.value, expect('string', `a quoted policy after ${head.value} =`).value, where);
      continue;
    }
    const name = expect('string', `a quoted name after ${head.value}`).value;
    expect('{', `"{" after ${head.value} ${JSON.stringify(name)}`);
    const attributes = new Map<string, string>();
    while (peek().kind !== '}') {
      const attribute = expect('ident', 'an attribute such as policy = "read", or "}"');
      expect('=', `"=" after ${attribute.value}`);
      attributes.set(attribute.value, expect('string', `a quoted value for ${attribute.value}`).value);
      if (peek().kind === ',') at++;
    }
    at++;
    rejectUnknownAttributes([...attributes.keys()], `${where}: ${head.value} ${JSON.stringify(name)}`);
    addBlock(into, head.value, name, attributes.get('policy'), where);
  }
  return into;
}
