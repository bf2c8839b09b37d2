/**
 * Every temporary folder the tests make (unpacked models, outputs, caches)
 * goes under one folder per run, removed when the run ends: a run leaves
 * nothing in the machine's temporary directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'quantc-test-run-'));
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
