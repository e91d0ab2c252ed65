import { describe, expect, it } from '@jest/globals';
import { Authorizer } from '../src/acl/acl-authorizer.js';
import { AclRulesError, parseAclRules } from '../src/acl/acl-rules.js';
import { AclInputError, AclStore, anonymousAccessorId, globalManagementPolicyId } from '../src/acl/acl-store.js';

describe('ACL rules', () => {
  it('parses the HCL block form with comments, commas and top-level rights', () => {
    const rules = parseAclRules(`
      # services
      service_prefix "users" { policy = "write" }
      service "mail" {
        policy = "deny", // not mail
      }
      /* keys */ key_prefix "config/" { policy = "list" }
      operator = "read"
      acl = "write"
    `);
    expect(rules.rules).toEqual([
      { resource: 'service', name: 'users', prefix: true, level: 'write' },
      { resource: 'service', name: 'mail', prefix: false, level: 'deny' },
      { resource: 'key', name: 'config/', prefix: true, level: 'list' },
    ]);
    expect(rules.operator).toBe('read');
    expect(rules.acl).toBe('write');
  });

  it('parses the JSON form to the same rules', () => {
    const hcl = parseAclRules(
      'service "web" { policy = "read" }\nkey_prefix "" { policy = "write" }\noperator = "read"',
    );
    const json = parseAclRules(
      JSON.stringify({
        service: { web: { policy: 'read' } },
        key_prefix: { '': { policy: 'write' } },
        operator: 'read',
      }),
    );
    expect(json).toEqual(hcl);
  });

  it('accepts empty rules, which grant nothing', () => {
    expect(parseAclRules('  # nothing\n')).toEqual({ rules: [], operator: undefined, acl: undefined });
  });

  it.each([
    ['service "web" { policy = "admin" }', 'line 1: service "web": invalid policy "admin"'],
    ['service "web" { policy = "list" }', 'invalid policy "list"; expected read, write or deny'],
    ['service "web" {}', 'service "web" has no policy'],
    [
      '\n\nservice "web" { policy = "read"',
      'line 3: expected an attribute such as policy = "read", or "}", found the end',
    ],
    ['services "web" { policy = "read" }', 'unknown rule "services"'],
    ['service web { policy = "read" }', 'line 1: expected a quoted name after service, found "web"'],
    ['service "web" { intentions = "read" }', 'unsupported attribute "intentions"'],
    ['service "web" { policy = "read" } !', 'line 1: unexpected character "!"'],
    ['service "web\n" { policy = "read" }', 'line 1: unterminated string'],
    ['operator = read', 'expected a quoted policy after operator ='],
    ['{"service": {"web": {"policy": "nope"}}}', 'invalid policy "nope"'],
    ['{"service": ["web"]}', 'JSON: service must be an object'],
    ['{"service": ', 'invalid JSON'],
  ])('refuses %j, naming the problem', (text, message) => {
    expect(() => parseAclRules(text)).toThrow(AclRulesError);
    expect(() => parseAclRules(text)).toThrow(message);
  });
});

describe('the authorizer', () => {
  const authz = (text: string, defaultAllow = false): Authorizer => new Authorizer([parseAclRules(text)], defaultAllow);

  it('lets an exact rule beat every prefix, and the longest prefix beat shorter ones', () => {
    const a = authz(`
      service_prefix "" { policy = "read" }
      service_prefix "users" { policy = "write" }
      service_prefix "users-admin" { policy = "deny" }
      service "users-admin-ui" { policy = "read" }
    `);
    expect(a.allows('service', 'mail', 'read')).toBe(true);
    expect(a.allows('service', 'mail', 'write')).toBe(false);
    expect(a.allows('service', 'users-api', 'write')).toBe(true);
    expect(a.allows('service', 'users-admin-api', 'read')).toBe(false);
    expect(a.allows('service', 'users-admin-ui', 'read')).toBe(true);
    expect(a.allows('service', 'users-admin-ui', 'write')).toBe(false);
  });

  it('makes write imply read and list, list imply read, and deny grant nothing', () => {
    const a = authz('key "w" { policy = "write" }\nkey "l" { policy = "list" }\nkey "r" { policy = "read" }');
    expect(['read', 'list', 'write'].map((n) => a.allows('key', 'w', n as 'read'))).toEqual([true, true, true]);
    expect(['read', 'list', 'write'].map((n) => a.allows('key', 'l', n as 'read'))).toEqual([true, true, false]);
    expect(['read', 'list', 'write'].map((n) => a.allows('key', 'r', n as 'read'))).toEqual([true, false, false]);
    expect(authz('key "d" { policy = "deny" }', true).allows('key', 'd', 'read')).toBe(false);
  });

  it('merges the policies of a token: deny wins, else the most permissive', () => {
    const a = new Authorizer(
      [
        parseAclRules('service "web" { policy = "read" }\nservice "db" { policy = "write" }'),
        parseAclRules('service "web" { policy = "write" }\nservice "db" { policy = "deny" }'),
      ],
      false,
    );
    expect(a.allows('service', 'web', 'write')).toBe(true);
    expect(a.allows('service', 'db', 'read')).toBe(false);
  });

  it('applies the default policy to unmatched names, but never grants ACL management by default', () => {
    expect(authz('', true).allows('service', 'x', 'write')).toBe(true);
    expect(authz('', true).allowsAcl('read')).toBe(false);
    expect(authz('', false).allows('service', 'x', 'read')).toBe(false);
    expect(authz('operator = "read"').allowsOperator('read')).toBe(true);
    expect(authz('acl = "read"').allowsAcl('write')).toBe(false);
  });

  it('refuses a write of everything under a prefix when a rule under it grants less', () => {
    const a = authz('key_prefix "app/" { policy = "write" }\nkey "app/locked" { policy = "read" }');
    expect(a.allowsAllUnder('key', 'app/', 'write')).toBe(false);
    expect(a.allowsAllUnder('key', 'app/open/', 'write')).toBe(true);
  });
});

describe('the ACL store', () => {
  it('resolves the initial management token, the anonymous token, and nothing for an unknown secret', () => {
    const store = new AclStore({ initialManagementToken: 'root' });
    expect(store.resolve('root')?.authorizer.isManagement).toBe(true);
    expect(store.resolve(undefined)?.token.accessorId).toBe(anonymousAccessorId);
    expect(store.resolve(undefined)?.authorizer.allows('service', 'x', 'read')).toBe(false);
    expect(store.resolve('nope')).toBeUndefined();
  });

  it('reports every change and round-trips its state through plain JSON', () => {
    const store = new AclStore({ initialManagementToken: 'root' });
    const changes: string[] = [];
    store.onChange((change) => changes.push(change.type));
    const policy = store.savePolicy({ name: 'users', rules: 'service_prefix "users" { policy = "write" }' });
    const token = store.saveToken({ description: 'users', policies: [{ name: 'users' }], secretId: 's3cret' });
    expect(changes).toEqual(['policy-saved', 'token-saved']);

    const state = JSON.parse(JSON.stringify(store.exportState())) as ReturnType<AclStore['exportState']>;
    const copy = new AclStore({ initialManagementToken: 'root' });
    copy.importState(state);
    expect(copy.policy(policy.id)?.rules).toBe(policy.rules);
    expect(copy.token(token.accessorId)?.policyIds).toEqual([policy.id]);
    expect(copy.resolve('s3cret')?.authorizer.allows('service', 'users-api', 'write')).toBe(true);
    expect(copy.resolve('root')?.authorizer.isManagement).toBe(true);
    expect(copy.index).toBe(store.index);
  });

  it('refuses bad input without changing anything', () => {
    const store = new AclStore({ initialManagementToken: 'root' });
    const before = JSON.stringify(store.exportState());
    expect(() => store.savePolicy({ name: 'bad name!', rules: '' })).toThrow('invalid Name');
    expect(() => store.savePolicy({ name: 'p', rules: 'service "x" {' })).toThrow(AclInputError);
    expect(() => store.saveToken({ policies: [{ id: 'missing' }] })).toThrow('no policy with ID "missing"');
    expect(() => store.saveToken({ secretId: 'root' })).toThrow('SecretID is already in use');
    expect(() => store.deletePolicy(globalManagementPolicyId)).toThrow('not permitted');
    expect(() => store.deleteToken(anonymousAccessorId)).toThrow('not permitted');
    expect(JSON.stringify(store.exportState())).toBe(before);
  });
});
