// Regenerates the expected-results files from Amplitude's JS engine, the conformance target:
//   NODE_PATH=/path/to/node_modules node src/eval/testdata/gen.js
// (needs @amplitude/experiment-core 0.13.6 resolvable from NODE_PATH).
const fs = require('fs');
const path = require('path');
const core = require('@amplitude/experiment-core');
const dir = __dirname;
const engine = new core.EvaluationEngine();

// conditions.expected: one character per (op, values, prop), props varying fastest:
// 1 = match, 0 = no match, E = the engine threw (an invalid regex).
const input = JSON.parse(fs.readFileSync(path.join(dir, 'conditions.json'), 'utf8'));
let out = '';
for (const op of input.ops) {
  for (const values of input.values) {
    for (const prop of input.props) {
      const target = { context: { p: prop }, result: {} };
      try {
        out += engine.matchCondition(target, { selector: ['context', 'p'], op, values }) ? '1' : '0';
      } catch (e) {
        out += 'E';
      }
    }
  }
}
fs.writeFileSync(path.join(dir, 'conditions.expected'), out + '\n');

// engine.expected.json: for each case of engine.json, JSON.stringify of the JS results (or
// of {"error": message}), so key order and number spelling are compared too.
const cases = JSON.parse(fs.readFileSync(path.join(dir, 'engine.json'), 'utf8'));
const flagsByKey = cases.flags.reduce((m, f) => { m[f.key] = f; return m; }, {});
const results = cases.cases.map(({ context, flagKeys }) => {
  try {
    const sorted = core.topologicalSort(flagsByKey, flagKeys && flagKeys.length ? flagKeys : undefined);
    return JSON.stringify(engine.evaluate(context, sorted));
  } catch (e) {
    return JSON.stringify({ error: String(e.message) });
  }
});
fs.writeFileSync(path.join(dir, 'engine.expected.json'), '[\n' + results.map((r) => JSON.stringify(r)).join(',\n') + '\n]\n');
