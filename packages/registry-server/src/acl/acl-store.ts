import { createHash, randomUUID } from 'node:crypto';
import { Emitter, TrellisError, type Event } from '@trellis/core';
import { Authorizer } from './acl-authorizer.js';
import { AclRulesError, parseAclRules, type AclRules } from './acl-rules.js';

/** A policy as the store keeps it (and journals it): its rules as written. */
export interface AclPolicy {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly rules: string;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** A token: the secret a client sends, and the policies that say what it may do. */
export interface AclToken {
  readonly accessorId: string;
  readonly secretId: string;
  readonly description: string;
  readonly policyIds: readonly string[];
  /** RFC 3339, as Consul's CreateTime. */
  readonly createTime: string;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** The whole state of the store as plain JSON, for {@link AclStore.exportState} and a journal. */
export interface AclState {
  readonly index: number;
  readonly policies: readonly AclPolicy[];
  readonly tokens: readonly AclToken[];
  /**
   * SHA-256 (hex) of initial management secrets that were rotated away or deleted, so that
   * `initialManagementToken` given again on a later start does not bring a revoked secret back.
   */
  readonly revokedInitialSecrets?: readonly string[];
}

/** What changed; `index` is the store's index after the change. */
export type AclChange =
  | { readonly type: 'policy-saved'; readonly policy: AclPolicy; readonly index: number }
  | { readonly type: 'policy-deleted'; readonly id: string; readonly index: number }
  | { readonly type: 'token-saved'; readonly token: AclToken; readonly index: number }
  | { readonly type: 'token-deleted'; readonly accessorId: string; readonly index: number }
  | { readonly type: 'imported'; readonly index: number };

/** Options of {@link AclStore}. */
export interface AclStoreOptions {
  /** The secret of the management token that exists from the start. */
  readonly initialManagementToken: string;
  /** What a name no rule matches gets; default `deny`. */
  readonly defaultPolicy?: 'deny' | 'allow';
}

/** A policy reference in a token request: by ID or by name, as Consul's `Policies` links. */
export interface PolicyLink {
  readonly id?: string;
  readonly name?: string;
}

/**
 * A refused write (bad name, rules that do not parse, unknown policy, ...); answered 400.
 * Code `INVALID_ACL_INPUT`.
 * @example
 * try { acl.savePolicy({ name: 'bad name!', rules: '' }); }
 * catch (e) { if (AclInputError.is(e)) console.error(e.message); else throw e; }
 */
export class AclInputError extends TrellisError {
  constructor(message: string) {
    super('INVALID_ACL_INPUT', message);
  }

  /** True for this error, from this copy of the package or another. */
  static override is(error: unknown): error is AclInputError {
    return TrellisError.hasCode(error, 'INVALID_ACL_INPUT');
  }
}

/**
 * A token or policy ID that does not exist; Consul answers 403 "ACL not found".
 * Code `ACL_NOT_FOUND`.
 * @example
 * try { acl.rotateToken('no-such-accessor'); }
 * catch (e) { if (!AclNotFoundError.is(e)) throw e; } // deleted meanwhile
 */
export class AclNotFoundError extends TrellisError {
  constructor() {
    super('ACL_NOT_FOUND', 'ACL not found');
  }

  /** True for this error, from this copy of the package or another. */
  static override is(error: unknown): error is AclNotFoundError {
    return TrellisError.hasCode(error, 'ACL_NOT_FOUND');
  }
}

/** Consul's built-in policy that makes a token a management token. */
export const globalManagementPolicyId = '00000000-0000-0000-0000-000000000001';
/** Consul's built-in token of requests that carry none. */
export const anonymousAccessorId = '00000000-0000-0000-0000-000000000002';
const anonymousSecret = 'anonymous';
const policyNamePattern = /^[A-Za-z0-9\-_]{1,128}$/;
const managementRules = [
  'acl = "write"',
  'operator = "write"',
  'service_prefix "" { policy = "write" }',
  'key_prefix "" { policy = "write" }',
  'node_prefix "" { policy = "write" }',
  'agent_prefix "" { policy = "write" }',
].join('\n');

/**
 * Tokens and policies of the ACL system, and the resolution of a secret to what it may do.
 * Holds Consul's built-ins: the `global-management` policy, the anonymous token (used for
 * requests with no token; it may be given policies) and the initial management token.
 *
 * @throws AclInputError / AclNotFoundError from the write methods, as documented on each.
 * @example
 * const acl = new AclStore({ initialManagementToken: 'root' });
 * const policy = acl.savePolicy({ name: 'users', rules: 'service_prefix "users" { policy = "write" }' });
 * const token = acl.saveToken({ description: 'users', policies: [{ id: policy.id }] });
 * acl.resolve(token.secretId)?.authorizer.allows('service', 'users-api', 'write'); // true
 */
export class AclStore {
  readonly #policies = new Map<string, AclPolicy>();
  readonly #parsed = new Map<string, AclRules>();
  readonly #tokens = new Map<string, AclToken>();
  // Secret -> accessor id: every request resolves its token by secret.
  readonly #accessorOfSecret = new Map<string, string>();
  readonly #changed = new Emitter<AclChange>();
  readonly #initialSecret: string;
  readonly #defaultAllow: boolean;
  #revokedInitial = new Set<string>();
  #index = 1;

  /** Fires after every change, with what changed; a journal may also save {@link exportState}. */
  readonly onChange: Event<AclChange> = this.#changed.event;

  /** @throws AclInputError for an empty initial management token. */
  constructor(options: AclStoreOptions) {
    if (typeof options.initialManagementToken !== 'string' || options.initialManagementToken === '') {
      throw new AclInputError('the initial management token must be a non-empty string');
    }
    if (options.initialManagementToken === anonymousSecret) {
      throw new AclInputError('the initial management token cannot be "anonymous", the anonymous token\'s secret');
    }
    this.#initialSecret = options.initialManagementToken;
    this.#defaultAllow = options.defaultPolicy === 'allow';
    this.#ensureBuiltins();
  }

  /** Moves on every change; Consul's X-Consul-Index of the ACL endpoints. */
  get index(): number {
    return this.#index;
  }

  /**
   * What the secret may do, or undefined for a secret no token has. `undefined` (no token sent)
   * is the anonymous token.
   */
  resolve(secret: string | undefined): { token: AclToken; authorizer: Authorizer } | undefined {
    const wanted = secret === undefined || secret === '' ? anonymousSecret : secret;
    const accessorId = this.#accessorOfSecret.get(wanted);
    const token = accessorId === undefined ? undefined : this.#tokens.get(accessorId);
    if (token === undefined) return undefined;
    const management = token.policyIds.includes(globalManagementPolicyId);
    const rules = token.policyIds.flatMap((id) => this.#parsed.get(id) ?? []);
    return { token, authorizer: new Authorizer(rules, this.#defaultAllow, management) };
  }

  policy(id: string): AclPolicy | undefined {
    return this.#policies.get(id);
  }

  policies(): AclPolicy[] {
    return [...this.#policies.values()];
  }

  token(accessorId: string): AclToken | undefined {
    return this.#tokens.get(accessorId);
  }

  tokens(): AclToken[] {
    return [...this.#tokens.values()];
  }

  /**
   * Creates a policy, or replaces the one with `id`.
   * @throws AclInputError for an invalid or taken name or rules that do not parse;
   *   AclNotFoundError for an `id` that does not exist; AclInputError for the built-in policy.
   */
  savePolicy(input: { id?: string; name: string; description?: string; rules: string }): AclPolicy {
    const existing = input.id === undefined ? undefined : this.#policies.get(input.id);
    if (input.id !== undefined && existing === undefined) throw new AclNotFoundError();
    if (input.id === globalManagementPolicyId)
      throw new AclInputError('Changing the global-management policy is not permitted');
    if (!policyNamePattern.test(input.name)) {
      throw new AclInputError(
        `Invalid Policy: invalid Name ${JSON.stringify(input.name)}; expected 1-128 of A-Z a-z 0-9 - _`,
      );
    }
    const clash = [...this.#policies.values()].find((p) => p.name === input.name && p.id !== input.id);
    if (clash !== undefined)
      throw new AclInputError(`Invalid Policy: A Policy with Name ${JSON.stringify(input.name)} already exists`);
    let parsed: AclRules;
    try {
      parsed = parseAclRules(input.rules);
    } catch (error) {
      if (error instanceof AclRulesError) throw new AclInputError(`Invalid Policy: ${error.message}`);
      throw error;
    }
    const index = ++this.#index;
    const policy: AclPolicy = {
      id: existing?.id ?? randomUUID(),
      name: input.name,
      description: input.description ?? '',
      rules: input.rules,
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
    };
    this.#policies.set(policy.id, policy);
    this.#parsed.set(policy.id, parsed);
    this.#changed.emit({ type: 'policy-saved', policy, index });
    return policy;
  }

  /**
   * Deletes a policy, and unlinks it from every token (Consul drops dangling links too).
   * @returns false when there was no such policy.
   * @throws AclInputError for the built-in global-management policy.
   */
  deletePolicy(id: string): boolean {
    if (id === globalManagementPolicyId)
      throw new AclInputError('Delete of the builtin global-management policy is not permitted');
    if (!this.#policies.delete(id)) return false;
    this.#parsed.delete(id);
    const index = ++this.#index;
    for (const token of this.#tokens.values()) {
      if (token.policyIds.includes(id)) {
        this.#setToken({ ...token, policyIds: token.policyIds.filter((p) => p !== id) });
      }
    }
    this.#changed.emit({ type: 'policy-deleted', id, index });
    return true;
  }

  /**
   * Creates a token (with a random AccessorID and SecretID unless given), or, with `update`,
   * replaces the description and policies of the token `accessorId`.
   * @throws AclInputError for an unknown policy link or an ID already in use;
   *   AclNotFoundError when updating a token that does not exist.
   */
  saveToken(
    input: { accessorId?: string; secretId?: string; description?: string; policies?: readonly PolicyLink[] },
    update = false,
  ): AclToken {
    const existing = input.accessorId === undefined ? undefined : this.#tokens.get(input.accessorId);
    if (update && existing === undefined) throw new AclNotFoundError();
    if (!update && existing !== undefined) throw new AclInputError('Invalid Token: AccessorID is already in use');
    if (update && input.secretId !== undefined && input.secretId !== existing?.secretId) {
      throw new AclInputError('Changing a token SecretID is not permitted');
    }
    const secretId = existing?.secretId ?? input.secretId ?? randomUUID();
    if (!update && this.#accessorOfSecret.has(secretId)) {
      throw new AclInputError('Invalid Token: SecretID is already in use');
    }
    const policyIds = (input.policies ?? []).map((link) => this.#policyIdOf(link));
    const index = ++this.#index;
    const token: AclToken = {
      accessorId: existing?.accessorId ?? input.accessorId ?? randomUUID(),
      secretId,
      description: input.description ?? '',
      policyIds: [...new Set(policyIds)],
      createTime: existing?.createTime ?? new Date().toISOString(),
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
    };
    this.#setToken(token);
    this.#changed.emit({ type: 'token-saved', token, index });
    return token;
  }

  /**
   * Deletes a token. @returns false when there was no such token.
   * @throws AclInputError for the anonymous token.
   */
  deleteToken(accessorId: string): boolean {
    if (accessorId === anonymousAccessorId)
      throw new AclInputError('Deletion of the builtin anonymous token is not permitted');
    const token = this.#tokens.get(accessorId);
    if (token === undefined) return false;
    this.#tokens.delete(accessorId);
    this.#revoke(token);
    const index = ++this.#index;
    this.#changed.emit({ type: 'token-deleted', accessorId, index });
    return true;
  }

  /**
   * Gives a token a new secret, keeping its accessor ID and policies: the old secret resolves
   * to nothing from now on. For the initial management token, the old secret also stays
   * revoked when it is given again as `initialManagementToken` on a later start.
   * @param secretId the new secret; default a random UUID.
   * @throws AclNotFoundError for an unknown accessor ID; AclInputError for the anonymous token
   *   or a secret in use.
   * @example
   * const { secretId } = acl.rotateToken(acl.resolve('root')?.token.accessorId ?? '');
   */
  rotateToken(accessorId: string, secretId: string = randomUUID()): AclToken {
    const existing = this.#tokens.get(accessorId);
    if (existing === undefined) throw new AclNotFoundError();
    if (accessorId === anonymousAccessorId) throw new AclInputError('The anonymous token has no secret to rotate');
    if (typeof secretId !== 'string' || secretId === '' || secretId === anonymousSecret) {
      throw new AclInputError('Invalid Token: SecretID must be a non-empty string other than "anonymous"');
    }
    if (this.#accessorOfSecret.has(secretId)) throw new AclInputError('Invalid Token: SecretID is already in use');
    const index = ++this.#index;
    const token: AclToken = { ...existing, secretId, modifyIndex: index };
    this.#revoke(existing);
    this.#setToken(token);
    this.#changed.emit({ type: 'token-saved', token, index });
    return token;
  }

  /** Whether the initial management secret of this store's options was rotated away or deleted. */
  get initialTokenRevoked(): boolean {
    return this.#revokedInitial.has(secretHash(this.#initialSecret));
  }

  /** The whole state as plain JSON (built-ins included), for a journal or a snapshot. */
  exportState(): AclState {
    return {
      index: this.#index,
      policies: this.policies(),
      tokens: this.tokens(),
      ...(this.#revokedInitial.size === 0 ? {} : { revokedInitialSecrets: [...this.#revokedInitial] }),
    };
  }

  #revoke(token: AclToken): void {
    this.#accessorOfSecret.delete(token.secretId);
    if (token.secretId === this.#initialSecret) this.#revokedInitial.add(secretHash(token.secretId));
  }

  /**
   * Replaces the whole state with an exported one. The built-ins and the initial management
   * token of this store's options are put back if the state lacks them.
   * @throws AclInputError for a state that is not what {@link exportState} gives (nothing changes then).
   */
  importState(state: AclState): void {
    const policies = new Map<string, AclPolicy>();
    const parsed = new Map<string, AclRules>();
    for (const policy of state.policies) {
      try {
        parsed.set(policy.id, parseAclRules(policy.rules));
      } catch (error) {
        throw new AclInputError(`invalid ACL state: policy ${JSON.stringify(policy.id)}: ${String(error)}`);
      }
      policies.set(policy.id, { ...policy });
    }
    for (const token of state.tokens) {
      if (
        typeof token.accessorId !== 'string' ||
        typeof token.secretId !== 'string' ||
        !Array.isArray(token.policyIds)
      ) {
        throw new AclInputError('invalid ACL state: a token lacks AccessorID, SecretID or policy IDs');
      }
    }
    const revoked = state.revokedInitialSecrets ?? [];
    if (!Array.isArray(revoked) || revoked.some((hash) => typeof hash !== 'string')) {
      throw new AclInputError('invalid ACL state: revokedInitialSecrets must be a list of strings');
    }
    this.#revokedInitial = new Set<string>(revoked);
    this.#policies.clear();
    this.#parsed.clear();
    this.#tokens.clear();
    this.#accessorOfSecret.clear();
    for (const [id, policy] of policies) this.#policies.set(id, policy);
    for (const [id, rules] of parsed) this.#parsed.set(id, rules);
    for (const token of state.tokens) this.#setToken({ ...token, policyIds: [...token.policyIds] });
    this.#index = Math.max(this.#index, state.index);
    this.#ensureBuiltins();
    this.#changed.emit({ type: 'imported', index: this.#index });
  }

  #setToken(token: AclToken): void {
    this.#tokens.set(token.accessorId, token);
    this.#accessorOfSecret.set(token.secretId, token.accessorId);
  }

  #policyIdOf(link: PolicyLink): string {
    if (link.id !== undefined && link.id !== '') {
      if (!this.#policies.has(link.id))
        throw new AclInputError(`Invalid Token: no policy with ID ${JSON.stringify(link.id)}`);
      return link.id;
    }
    if (link.name !== undefined && link.name !== '') {
      const policy = [...this.#policies.values()].find((p) => p.name === link.name);
      if (policy === undefined) throw new AclInputError(`Invalid Token: no policy named ${JSON.stringify(link.name)}`);
      return policy.id;
    }
    throw new AclInputError('Invalid Token: a policy link needs an ID or a Name');
  }

  // Consul's built-ins: they cannot be deleted, and an import cannot lose them.
  #ensureBuiltins(): void {
    if (!this.#policies.has(globalManagementPolicyId)) {
      this.#policies.set(globalManagementPolicyId, {
        id: globalManagementPolicyId,
        name: 'global-management',
        description: 'Builtin Policy that grants unlimited access',
        rules: managementRules,
        createIndex: 1,
        modifyIndex: 1,
      });
      this.#parsed.set(globalManagementPolicyId, parseAclRules(managementRules));
    }
    const builtinToken = (accessorId: string, secretId: string, description: string, policyIds: string[]): void => {
      if (this.#accessorOfSecret.has(secretId)) return;
      const createTime = new Date().toISOString();
      this.#setToken({
        accessorId,
        secretId,
        description,
        policyIds,
        createTime,
        createIndex: 1,
        modifyIndex: 1,
      });
    };
    builtinToken(anonymousAccessorId, anonymousSecret, 'Anonymous Token', []);
    if (!this.initialTokenRevoked) {
      builtinToken(randomUUID(), this.#initialSecret, 'Initial Management Token', [globalManagementPolicyId]);
    }
  }
}

// Revoked secrets are kept as hashes: the data directory then holds no secret that still works
// anywhere (the old one may live on in a deployment's environment).
function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
