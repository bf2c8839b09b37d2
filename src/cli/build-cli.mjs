/**
 * The second half of `npm run build` (after `tsc`): bundles the compiled CLI
 * into `dist/cli` and builds the startup snapshot the launcher
 * (`dist/cli/quantc`, installed from src/cli/quantc.sh) runs the recipe
 * commands from.
 *
 * - `dist/cli/quantc.js` + `chunks/`: every command as ES modules, loaded on
 *   demand. Runs anywhere Node runs; the launcher's fallback.
 * - `dist/cli/snapshot/quantc.cjs`: `check`, `fmt` and `export` as one
 *   CommonJS file with Chevrotain inside (a startup snapshot takes one
 *   script and no `import`), and `quantc.blob`, the V8 startup snapshot of
 *   that file after its warm-up (src/cli/snapshot.ts).
 * - `dist/cli/snapshot/quantc.blob.node`: the path of the node executable
 *   that built the blob, with that executable's modification time. A blob
 *   loads only into the very node binary, with the very V8 flags, that built
 *   it, so the launcher uses it only when the `node` it would run is that
 *   file (same device and inode) and still has that modification time (not
 *   replaced or rewritten since, and not another machine's or image's node
 *   at the same path).
 *
 * A snapshot that cannot be built or fails its trial run is left out with a
 * warning: quantc then works as before, only with a slower start.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = join(ROOT, 'dist/cli');
const SNAPSHOT = join(OUT, 'snapshot');
const BUNDLE = join(SNAPSHOT, 'quantc.cjs');
const BLOB = join(SNAPSHOT, 'quantc.blob');
const STAMP = `${BLOB}.node`;
/** The trial run: a built-in recipe that checks clean. */
const TRIAL = ['check', 'recipes/glm-4.7-flash-nvfp4.qr'];

/** esbuild options both bundles share. */
const common = { bundle: true, platform: 'node', target: 'node20', logLevel: 'warning', absWorkingDir: ROOT };

/** Every command as ES modules; native addons stay outside, loaded at run time. */
async function buildModules() {
  await build({
    ...common,
    entryPoints: ['dist/src/cli/bin.js'],
    format: 'esm',
    splitting: true,
    outdir: OUT,
    entryNames: 'quantc',
    chunkNames: 'chunks/[name]-[hash]',
    external: ['onnxruntime-node', '@huggingface/tokenizers', 'chevrotain'],
    banner: { js: "import { createRequire as __quantcRequire } from 'node:module'; const require = __quantcRequire(import.meta.url);" },
  });
}

/**
 * The recipe commands as one CommonJS script. `grammar/chevrotain.js` loads
 * Chevrotain with a top-level `await import()`, which neither CommonJS nor a
 * snapshot allows; here it is replaced by a plain re-export, bundled.
 */
async function buildSnapshotBundle() {
  await build({
    ...common,
    entryPoints: ['dist/src/cli/snapshot.js'],
    format: 'cjs',
    outfile: BUNDLE,
    minify: true,
    define: { 'import.meta.url': 'globalThis.__quantcModuleUrl' },
    plugins: [
      {
        name: 'chevrotain-bundled',
        setup(b) {
          b.onResolve({ filter: /(^|\/)chevrotain\.js$/ }, () => ({ path: 'chevrotain', namespace: 'quantc-chevrotain' }));
          b.onLoad({ filter: /.*/, namespace: 'quantc-chevrotain' }, () => ({
            contents: "export { createToken, createSyntaxDiagramsCode, CstParser, EOF, generateCstDts, Lexer, tokenLabel } from 'chevrotain';",
            resolveDir: ROOT,
          }));
        },
      },
    ],
  });
}

/** Runs node with `args`, without NODE_OPTIONS: its V8 flags would be baked into the blob. */
function node(args) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8' });
}

/** Builds the blob, tries it, and only then installs it with its stamp; returns why not, or undefined. */
function buildBlob() {
  const tmp = `${BLOB}.tmp`;
  const built = node(['--snapshot-blob', tmp, '--build-snapshot', BUNDLE]);
  if (built.status !== 0) return `building it failed:\n${built.stderr || built.stdout}`;
  const trial = node(['--snapshot-blob', tmp, '--', ...TRIAL]);
  if (trial.status !== 0 || trial.stdout !== '' || trial.stderr !== '') {
    return `its trial run "quantc ${TRIAL.join(' ')}" exited ${trial.status}:\n${trial.stderr}${trial.stdout}`;
  }
  const executable = realpathSync(process.execPath);
  writeFileSync(STAMP, `${executable}\n`);
  // `touch -r` copies the time to the nanosecond, as the launcher's shell compares it.
  const touched = spawnSync('touch', ['-r', executable, STAMP], { encoding: 'utf8' });
  if (touched.status !== 0) return `"touch -r ${executable}" failed: ${touched.stderr || touched.error?.message}`;
  renameSync(tmp, BLOB);
  return undefined;
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(SNAPSHOT, { recursive: true });
// The package's executable: the launcher, next to the bundles it starts.
copyFileSync(join(ROOT, 'src/cli/quantc.sh'), join(OUT, 'quantc'));
chmodSync(join(OUT, 'quantc'), 0o755);
await buildModules();
await buildSnapshotBundle();
const problem = buildBlob();
if (problem) {
  rmSync(`${BLOB}.tmp`, { force: true });
  rmSync(STAMP, { force: true });
  process.stderr.write(`quantc build: warning: no startup snapshot (quantc check will start slower); ${problem}\n`);
}
