/**
 * The `quantc` launcher (dist/cli/quantc, from src/cli/quantc.sh): it runs `check`, `fmt` and `export`
 * from the startup snapshot only when the blob was built by the `node` on
 * PATH, and otherwise, or for any other command, from the plain bundle;
 * both give the same output. Each case runs an installed copy of the built
 * package; a stub in place of the plain bundle shows which path served a
 * command.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_HEAP_ENV, heapUntuned, runsOnCuda } from '../src/cli/cuda-heap.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RECIPE = 'recipes/glm-4.7-flash-nvfp4.qr';
const STUB = "process.stderr.write('plain bundle\\n'); process.exitCode = 3;\n";
const SERVED_BY_PLAIN = { code: 3, stdout: '', stderr: 'plain bundle\n' };

const scratch = mkdtempSync(join(tmpdir(), 'quantc-launcher-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let installs = 0;

/** A folder whose `node` is the node running the tests, linked (the same file) or copied (another file). */
function nodeDir(how: 'link' | 'copy'): string {
  const dir = join(scratch, `node-${how}`);
  mkdirSync(dir, { recursive: true });
  const node = join(dir, 'node');
  rmSync(node, { force: true });
  if (how === 'link') symlinkSync(process.execPath, node);
  else copyFileSync(process.execPath, node);
  return dir;
}

/** Installs a copy of the built package; `stub` replaces the plain bundle with one that only says it ran. */
function install(options: { stub: boolean }): string {
  const pkg = join(scratch, `pkg-${++installs}`);
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  // As `cp -p` copies: the snapshot's stamp keeps the modification time it records, to the nanosecond.
  expect(spawnSync('cp', ['-Rp', join(ROOT, 'dist/cli'), join(pkg, 'dist/cli')]).status).toBe(0);
  for (const shared of ['package.json', 'node_modules', 'schemas', 'recipes', 'src']) symlinkSync(join(ROOT, shared), join(pkg, shared));
  if (options.stub) writeFileSync(join(pkg, 'dist/cli/quantc.js'), STUB);
  return pkg;
}

/** Runs `bin` with `args` in `cwd`, with the `node` of {@link nodeDir} first on PATH and no NODE_OPTIONS unless given. */
function run(bin: string, args: readonly string[], options: { cwd: string; node?: 'link' | 'copy'; env?: Record<string, string> }) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${nodeDir(options.node ?? 'link')}:${process.env.PATH ?? ''}` };
  delete env.NODE_OPTIONS;
  Object.assign(env, options.env);
  const r = spawnSync(bin, args, { cwd: options.cwd, env, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function quantc(pkg: string, args: readonly string[], options: { node?: 'link' | 'copy'; env?: Record<string, string> } = {}) {
  return run(join(pkg, 'dist/cli/quantc'), args, { cwd: pkg, ...options });
}

describe('the quantc launcher (run `npm run build` first; `npm test` does)', () => {
  it('serves check, fmt and export from the snapshot built by the node on PATH', () => {
    const pkg = install({ stub: true });
    expect(quantc(pkg, ['check', RECIPE])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(quantc(pkg, ['fmt', '--check', RECIPE])).toEqual({ code: 0, stdout: '', stderr: '' });
    const exported = quantc(pkg, ['export', RECIPE, '--to', 'yaml']);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toContain('QuantizationModifier:');
  });

  it('sends every other command, and no command, to the plain bundle', () => {
    const pkg = install({ stub: true });
    for (const args of [['plan', RECIPE, '--model', 'zai-org/GLM-4.7-Flash'], ['--help'], ['--version'], [], ['chek', RECIPE]]) {
      expect(quantc(pkg, args), args.join(' ')).toEqual(SERVED_BY_PLAIN);
    }
  });

  it('falls back to the plain bundle when the snapshot cannot be used', () => {
    const missing = install({ stub: true });
    rmSync(join(missing, 'dist/cli/snapshot/quantc.blob'));
    expect(quantc(missing, ['check', RECIPE])).toEqual(SERVED_BY_PLAIN);

    const otherNode = install({ stub: true });
    expect(quantc(otherNode, ['check', RECIPE], { node: 'copy' })).toEqual(SERVED_BY_PLAIN);

    // The node at the recorded path has another modification time: rewritten, or another machine's node.
    const replaced = install({ stub: true });
    utimesSync(join(replaced, 'dist/cli/snapshot/quantc.blob.node'), 0, 0);
    expect(quantc(replaced, ['check', RECIPE])).toEqual(SERVED_BY_PLAIN);

    const flags = install({ stub: true });
    expect(quantc(flags, ['check', RECIPE], { env: { NODE_OPTIONS: '--max-old-space-size=512' } })).toEqual(SERVED_BY_PLAIN);
  });

  it('never fails on a blob built by another node: it is not loaded at all', () => {
    const pkg = install({ stub: false });
    writeFileSync(join(pkg, 'dist/cli/snapshot/quantc.blob'), 'not a snapshot');
    writeFileSync(join(pkg, 'dist/cli/snapshot/quantc.blob.node'), '/bin/sh\n');
    expect(quantc(pkg, ['check', RECIPE])).toEqual({ code: 0, stdout: '', stderr: '' });
    rmSync(join(pkg, 'dist/cli/snapshot'), { recursive: true });
    expect(quantc(pkg, ['check', RECIPE])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('answers exactly as the plain bundle does', () => {
    const pkg = install({ stub: false });
    const plain = (args: readonly string[]) => {
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      const r = spawnSync(process.execPath, [join(pkg, 'dist/cli/quantc.js'), ...args], { cwd: pkg, env, encoding: 'utf8' });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const cases = [
      ['check', 'test/cases/dsl/syntax-errors/input.qr'],
      ['check', '--format', 'json', 'test/cases/dsl/kitchen-sink/input.qr', 'recipes/kimi-k2-w4a16.yaml'],
      ['check', 'missing.qr'],
      ['check', '--nope'],
      ['check'],
      ['check', '--help'],
      ['fmt', 'test/cases/dsl-format/comments/input.qr'],
      ['export', 'recipes/llama3-8b-w4a16-gptq.yaml', '--to', 'dsl'],
      ['export', RECIPE, '--to', 'json'],
    ];
    symlinkSync(join(ROOT, 'test'), join(pkg, 'test'));
    for (const args of cases) {
      const expected = plain(args);
      expect(quantc(pkg, args), args.join(' ')).toEqual(expected);
    }
    expect(plain(['check', 'test/cases/dsl/syntax-errors/input.qr']).code).toBe(1);
  });

  it('runs through a package manager link from another folder, paths relative to it', () => {
    const pkg = install({ stub: false });
    const project = join(scratch, 'project');
    mkdirSync(join(project, 'node_modules/.bin'), { recursive: true });
    symlinkSync(pkg, join(project, 'node_modules/quantc'));
    symlinkSync('../quantc/dist/cli/quantc', join(project, 'node_modules/.bin/quantc'));
    writeFileSync(join(project, 'mine.qr'), 'stage quant {\n  QuantizationModifier {\n    targets = [Linear]\n    scheme = W9A9\n  }\n}\n');
    const r = run('node_modules/.bin/quantc', ['check', 'mine.qr'], { cwd: project });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^mine\.qr:4:14: error unknown-preset: /);
    expect(r.stderr).toBe('');
  });

  it('gives runs on CUDA glibc\'s heap for every block, unless the user tunes the allocator', () => {
    const pkg = install({ stub: true });
    // The plain bundle replaced by one that prints the allocator variables it was started with.
    writeFileSync(join(pkg, 'dist/cli/quantc.js'), "process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES'))));\n");
    const heap = (args: readonly string[], env: Record<string, string> = {}) => {
      const r = quantc(pkg, args, { env });
      expect(r.code, args.join(' ')).toBe(0);
      return JSON.parse(r.stdout) as Record<string, string>;
    };
    const cuda = [['apply', 'r.qr', '--model', 'm', '--device', 'cuda'], ['eval', '--model', 'm', '--device', 'cuda:1'], ['apply', 'r.qr', '--device=cuda:0,1'], ['apply', 'r.qr', '--gpus', '2'], ['apply', 'r.qr', '--gpus=2']];
    for (const args of cuda) {
      expect(runsOnCuda(args), args.join(' ')).toBe(true);
      expect(heap(args), args.join(' ')).toEqual(CUDA_HEAP_ENV);
    }
    for (const args of [['apply', 'r.qr', '--model', 'm'], ['apply', 'r.qr', '--device', 'cpu'], ['plan', 'cuda.qr', '--model', 'cuda'], ['eval', '--model', 'cuda', '--device', 'cpu']]) {
      expect(runsOnCuda(args), args.join(' ')).toBe(false);
      expect(heap(args), args.join(' ')).toEqual({});
    }
    // Whatever the user set stays as it is, and nothing is added to it.
    expect(heap(cuda[0]!, { MALLOC_ARENA_MAX: '2' })).toEqual({ MALLOC_ARENA_MAX: '2' });
    expect(heap(cuda[0]!, { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' })).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    expect([heapUntuned({ MALLOC_ARENA_MAX: '2' }), heapUntuned({ GLIBC_TUNABLES: 'x' }), heapUntuned({ PATH: '/bin' })]).toEqual([false, false, true]);
  });

  it('ends quietly when its reader closes the pipe', () => {
    const pkg = install({ stub: false });
    symlinkSync(join(ROOT, 'test'), join(pkg, 'test'));
    const files = Array.from({ length: 400 }, () => 'test/cases/dsl/syntax-errors/input.qr').join(' ');
    const r = spawnSync('/bin/sh', ['-c', `dist/cli/quantc check ${files} | head -c 1 >/dev/null`], { cwd: pkg, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
