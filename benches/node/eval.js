// Evaluations per second of Amplitude's JS engine (@amplitude/experiment-core) on the same
// flags and users as benches/eval.rs, for BENCHMARKS.md.
//
//   npm ci --prefix tests/conformance
//   NODE_PATH=tests/conformance/node_modules node benches/node/eval.js
//
// Each evaluation is what the SDKs do per call: topologicalSort over the flags, then
// EvaluationEngine.evaluate. Bounded: a fixed number of iterations per case.
'use strict';
const fs = require('fs');
const path = require('path');
const core = require('@amplitude/experiment-core');

const root = path.join(__dirname, '..', '..');
const files = {
  'shipped flags.json (4 flags)': path.join(root, 'flags.json'),
  'benches/data/eval_flags.json (100 flags)': path.join(root, 'benches', 'data', 'eval_flags.json'),
};

function context(i) {
  return {
    user: {
      user_id: `user-${i}`,
      device_id: `dev-${i}`,
      version: '2.3.1',
      cohort_ids: ['cohort-3', 'c-99'],
      user_properties: { country: 'DE', plan: 'pro-annual', age: 34, email: 'someone@mail.example', tags: ['a', 'b'] },
    },
  };
}

const contexts = Array.from({ length: 1024 }, (_, i) => context(i));
const engine = new core.EvaluationEngine();

for (const [name, file] of Object.entries(files)) {
  const flags = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byKey = {};
  for (const f of flags) byKey[f.key] = f;
  const run = (n) => {
    let sink = 0;
    for (let i = 0; i < n; i++) {
      const sorted = core.topologicalSort(byKey);
      const results = engine.evaluate(contexts[i % contexts.length], sorted);
      sink += Object.keys(results).length;
    }
    return sink;
  };
  if (run(1) === 0) throw new Error(`no flag evaluated for ${name}`);
  run(20000); // warm-up: let V8 optimize
  const n = 100000;
  const start = process.hrtime.bigint();
  run(n);
  const ns = Number(process.hrtime.bigint() - start) / n;
  console.log(`${name}: ${(ns / 1000).toFixed(2)} us/evaluation, ${Math.round(1e9 / ns)} evaluations/s (node ${process.version}, experiment-core ${require('@amplitude/experiment-core/package.json').version})`);
}
