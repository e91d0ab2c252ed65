import type { AccessLevel, AclRules, RuleResource } from './acl-rules.js';

/** What a request needs on a resource. */
export type AccessNeed = 'read' | 'list' | 'write';

// Consul's order when two policies of one token rule on the same name: deny wins, then the
// most permissive.
const strength: Readonly<Record<AccessLevel, number>> = { deny: 4, write: 3, list: 2, read: 1 };

function merge(a: AccessLevel | undefined, b: AccessLevel): AccessLevel {
  return a === undefined || strength[b] > strength[a] ? b : a;
}

function grants(level: AccessLevel, need: AccessNeed): boolean {
  if (level === 'write') return true;
  if (level === 'list') return need !== 'write';
  return level === 'read' && need === 'read';
}

/**
 * What one token may do: the merged rules of its policies, Consul's way. An exact rule beats
 * every prefix rule, the longest matching prefix beats shorter ones, and a name no rule matches
 * gets the default policy. `write` implies `read`; `deny` grants nothing.
 *
 * @example
 * const authz = new Authorizer([parseAclRules('service_prefix "users" { policy = "write" }')], false);
 * authz.allows('service', 'users-api', 'write'); // true
 * authz.allows('service', 'mail', 'read'); // false
 */
export class Authorizer {
  readonly #exact = new Map<RuleResource, Map<string, AccessLevel>>();
  readonly #prefix = new Map<RuleResource, Map<string, AccessLevel>>();
  readonly #operator: AccessLevel | undefined;
  readonly #acl: AccessLevel | undefined;
  readonly #defaultAllow: boolean;
  readonly #management: boolean;

  /**
   * @param rulesets the parsed rules of the token's policies.
   * @param defaultAllow the server's default policy (`allow`) for names no rule matches.
   * @param management a management token: every right, whatever the rules.
   */
  constructor(rulesets: readonly AclRules[], defaultAllow: boolean, management = false) {
    this.#defaultAllow = defaultAllow;
    this.#management = management;
    let operator: AccessLevel | undefined;
    let acl: AccessLevel | undefined;
    for (const set of rulesets) {
      for (const rule of set.rules) {
        const byKind = rule.prefix ? this.#prefix : this.#exact;
        let names = byKind.get(rule.resource);
        if (names === undefined) byKind.set(rule.resource, (names = new Map<string, AccessLevel>()));
        names.set(rule.name, merge(names.get(rule.name), rule.level));
      }
      if (set.operator !== undefined) operator = merge(operator, set.operator);
      if (set.acl !== undefined) acl = merge(acl, set.acl);
    }
    this.#operator = operator;
    this.#acl = acl;
  }

  /** A management token: may do everything, ACL management included. */
  get isManagement(): boolean {
    return this.#management;
  }

  /** Whether the token may `need` the resource `name` (a service name, a key, a node name). */
  allows(resource: RuleResource, name: string, need: AccessNeed): boolean {
    if (this.#management) return true;
    const level = this.#levelFor(resource, name);
    return level === undefined ? this.#defaultAllow : grants(level, need);
  }

  /**
   * Whether the token may write every name under `prefix`, as a recursive delete needs: write
   * on the prefix itself, and no rule under it granting less.
   */
  allowsAllUnder(resource: RuleResource, prefix: string, need: AccessNeed): boolean {
    if (!this.allows(resource, prefix, need)) return false;
    if (this.#management) return true;
    for (const byKind of [this.#exact, this.#prefix]) {
      for (const [name, level] of byKind.get(resource) ?? []) {
        if (name.startsWith(prefix) && !grants(level, need)) return false;
      }
    }
    return true;
  }

  /** `operator = "..."`; unset follows the default policy. */
  allowsOperator(need: AccessNeed): boolean {
    if (this.#management) return true;
    return this.#operator === undefined ? this.#defaultAllow : grants(this.#operator, need);
  }

  /** `acl = "..."`: managing tokens and policies. Unset denies, even under a default allow (as in Consul). */
  allowsAcl(need: AccessNeed): boolean {
    if (this.#management) return true;
    return this.#acl !== undefined && grants(this.#acl, need);
  }

  #levelFor(resource: RuleResource, name: string): AccessLevel | undefined {
    const exact = this.#exact.get(resource)?.get(name);
    if (exact !== undefined) return exact;
    let best: string | undefined;
    for (const prefix of this.#prefix.get(resource)?.keys() ?? []) {
      if (name.startsWith(prefix) && (best === undefined || prefix.length > best.length)) best = prefix;
    }
    return best === undefined ? undefined : this.#prefix.get(resource)?.get(best);
  }
}
