// Runs a WASI preview1 module under Node.js's node:wasi, with the same command line as
// `wasmjail run`: node bench/node_wasi.mjs [--dir HOST::GUEST[:ro]]... MODULE.wasm [ARGS...]
// The guest's argv[0] is the module path (as wasmjail's), its environment is empty, and
// the exit code is the guest's. Used by scripts/bench as the node:wasi comparison.
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const argv = process.argv.slice(2);
const preopens = {};
while (argv.length && argv[0] === '--dir') {
  const spec = argv[1].replace(/:ro$/, '');  // node:wasi has no read-only preopens
  const [host, guest] = spec.split('::');
  preopens[guest] = host;
  argv.splice(0, 2);
}
if (!argv.length) {
  console.error('usage: node_wasi.mjs [--dir HOST::GUEST[:ro]]... MODULE.wasm [ARGS...]');
  process.exit(2);
}
const wasi = new WASI({ version: 'preview1', args: argv, env: {}, preopens, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(argv[0]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
