import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const demo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe("the demo's Prometheus config", () => {
  it('is one Prometheus accepts, with the alerting rules of @trellis/metrics loaded', async () => {
    // promtool resolves rule_files from the config's folder, as Prometheus does, and checks them too.
    const { stdout } = await promisify(execFile)('promtool', ['check', 'config', 'prometheus.yml'], { cwd: demo });
    expect(stdout).toMatch(/SUCCESS: 1 rule files found/);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });
});
