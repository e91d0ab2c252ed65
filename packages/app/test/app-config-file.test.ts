import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readAppOptions } from '@trellis/app';
import { refusal } from '../../core/test/config-refusal.js';

let cwd: string;
beforeEach(() => {
  cwd = mkdtempSync(path.join(tmpdir(), 'trellis-config-'));
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

const write = (name: string, text: string): void => writeFileSync(path.join(cwd, name), text);
const read = (env: Record<string, string> = {}) => readAppOptions({ service: 'users' }, { cwd, env });

describe('app settings from a config file', () => {
  it('reads trellis.config.json from the working directory', () => {
    write(
      'trellis.config.json',
      JSON.stringify({
        port: 8080,
        registryUrl: 'http://registry:8500',
        labels: { team: 'identity' },
        metrics: false,
        client: { strategy: 'least-outstanding', attemptTimeoutMs: 2_000 },
        discovery: { panicThreshold: 0 },
      }),
    );
    expect(read()).toEqual({
      service: 'users',
      port: 8080,
      registryUrl: 'http://registry:8500',
      labels: { team: 'identity' },
      metrics: false,
      client: { strategy: 'least-outstanding', attemptTimeoutMs: 2_000 },
      discovery: { panicThreshold: 0 },
    });
  });

  it('reads trellis.config.yaml and trellis.config.yml', () => {
    const yaml = 'port: 8080\ntags: [blue, canary]\nclient:\n  attemptTimeoutMs: false\n';
    write('trellis.config.yaml', yaml);
    expect(read()).toEqual({
      service: 'users',
      port: 8080,
      tags: ['blue', 'canary'],
      client: { attemptTimeoutMs: false },
    });
    rmSync(path.join(cwd, 'trellis.config.yaml'));
    write('trellis.config.yml', 'weight: 0\n');
    expect(read()).toEqual({ service: 'users', weight: 0 });
  });

  it('reads the file TRELLIS_CONFIG names, relative to the working directory, and no other', () => {
    mkdirSync(path.join(cwd, 'conf'));
    write('conf/users.yaml', 'zone: b\n');
    write('trellis.config.json', '{"zone": "a"}');
    expect(read({ TRELLIS_CONFIG: 'conf/users.yaml' })).toEqual({ service: 'users', zone: 'b' });
    expect(readAppOptions({ service: 'users' }, { cwd, env: {}, file: 'conf/users.yaml' })).toEqual({
      service: 'users',
      zone: 'b',
    });
  });

  it('takes no file when none is there, or with file: false', () => {
    expect(read()).toEqual({ service: 'users' });
    write('trellis.config.json', '{"zone": "a"}');
    expect(readAppOptions({ service: 'users' }, { cwd, env: {}, file: false })).toEqual({ service: 'users' });
  });

  it('treats an empty YAML file as no settings', () => {
    write('trellis.config.yaml', '# nothing set yet\n');
    expect(read()).toEqual({ service: 'users' });
  });

  it('refuses an unknown key, naming the file and the key and listing the known ones', () => {
    write('trellis.config.json', '{"port": 8080, "prot": 8081}');
    const top = refusal(read);
    expect(top.field).toBe('trellis.config.json: prot');
    expect(top.problem).toMatch(/^is not a known key; the keys are host, port, .*client, discovery$/);

    write('trellis.config.json', '{"client": {"attemptTimeout": 500}}');
    const nested = refusal(read);
    expect(nested.field).toBe('trellis.config.json: client.attemptTimeout');
    expect(nested.problem).toBe(
      'is not a known key; the keys of client are strategy, transport, attemptTimeoutMs, deadlineMs',
    );
  });

  it('names the file and key of a bad value, with what is allowed and what it got', () => {
    write('trellis.config.yaml', 'client:\n  attemptTimeoutMs: -5\n');
    const error = refusal(read);
    expect(error.field).toBe('trellis.config.yaml: client.attemptTimeoutMs');
    expect(error.problem).toBe('must be an integer from 1 to 86400000 (milliseconds), or false for none, got -5');

    const cases: Array<[string, string, string]> = [
      ['port: "8080"', 'port', 'must be an integer from 0 to 65535, got "8080"'],
      ['registryUrl: localhost:8500', 'registryUrl', 'must be an http:// or https:// URL with a host'],
      ['tags: [blue, ""]', 'tags[1]', 'must be a non-empty string'],
      ['labels: {team: 5}', 'labels.team', 'must be a string, got 5'],
      ['trellisPage: "no"', 'trellisPage', 'must be true or false'],
      ['discovery: {panicThreshold: 2}', 'discovery.panicThreshold', 'must be a number from 0 to 1, got 2'],
      ['client: round-robin', 'client', 'must be an object of client settings, got "round-robin"'],
      ['zone: ', 'zone', 'got null'],
    ];
    for (const [yaml, key, problem] of cases) {
      write('trellis.config.yaml', `${yaml}\n`);
      const e = refusal(read);
      expect([e.field, e.problem]).toEqual([`trellis.config.yaml: ${key}`, expect.stringContaining(problem)]);
    }
  });

  it('names the file and the line and column of malformed JSON', () => {
    write('trellis.config.json', '{\n  "port": 8080,\n  "weight": 3,\n}\n');
    const error = refusal(read);
    expect(error.field).toBe('trellis.config.json');
    expect(error.problem).toMatch(/^is not valid JSON at line 4, column 1: \S/);
    expect(error.problem).not.toContain('\n');

    // A message that quotes the text rather than giving a position still makes one line.
    write('trellis.config.json', '{\n  "port": tru\n}\n');
    const quoted = refusal(read);
    expect(quoted.field).toBe('trellis.config.json');
    expect(quoted.problem).toMatch(/^is not valid JSON/);
    expect(quoted.problem).not.toContain('\n');
  });

  it('names the file and the line and column of malformed YAML, in one line', () => {
    write('trellis.config.yaml', 'port: 8080\nlabels:\n  team: a\n  team: b\n');
    const error = refusal(read);
    expect(error.field).toBe('trellis.config.yaml');
    expect(error.problem).toBe('is not valid YAML at line 4, column 3: Map keys must be unique');
  });

  it('refuses a file that holds no object of settings', () => {
    write('trellis.config.json', '[8080]');
    expect(refusal(read).problem).toBe('must hold an object of settings, e.g. {"port": 8080}');
  });

  it('refuses a named file that does not exist, naming TRELLIS_CONFIG and the path', () => {
    const error = refusal(() => read({ TRELLIS_CONFIG: 'missing.yaml' }));
    expect(error.field).toBe('TRELLIS_CONFIG');
    expect(error.problem).toBe(`names a file that does not exist: ${path.join(cwd, 'missing.yaml')}`);
    const byCode = refusal(() => readAppOptions({ service: 'users' }, { cwd, env: {}, file: 'gone.json' }));
    expect(byCode.field).toBe('file');
    expect(refusal(() => read({ TRELLIS_CONFIG: 'settings.toml' })).problem).toBe(
      'must name a .json, .yaml or .yml file, got "settings.toml"',
    );
  });

  it('refuses two config files in one directory rather than ignore one', () => {
    write('trellis.config.json', '{"port": 8080}');
    write('trellis.config.yaml', 'port: 9090\n');
    expect(refusal(read).field).toBe('trellis.config.json and trellis.config.yaml');
  });
});
