#!/usr/bin/env node
// Reference side of the evalgate conformance test (tests/conformance.rs).
//
// Reads one JSON document from stdin:
//   {"cases": [{"flags": [...], "context": {...}, "flag_keys": [...]}, ...]}
// and writes one to stdout:
//   {"engine": "<experiment-core version>", "results": [<flag key -> variant> | {"error": "..."}, ...],
//    "stats": {...}}
//
// Each case is evaluated the way Amplitude's SDKs do it (experiment-node-server
// `LocalEvaluationClient.evaluateV2`): flags keyed by flag key, `topologicalSort(flags, keys)`
// with the requested keys (empty or absent means every flag), then
// `new EvaluationEngine().evaluate(context, sorted)`. A dependency cycle becomes
// {"error": "cycle"}.
//
// `stats` counts, per operator, how often a condition was evaluated and how often it held,
// and how many of those evaluations saw a missing property; the Rust test uses it to check
// that its generator reaches every operator both ways. It never changes a result.
'use strict';

const { EvaluationEngine, topologicalSort } = require('@amplitude/experiment-core');
const { version } = require('@amplitude/experiment-core/package.json');

function newStats() {
  return { ops: {}, hashes: 0 };
}

function instrumentedEngine(stats) {
  const engine = new EvaluationEngine();
  const proto = EvaluationEngine.prototype;
  let sawNull = false;
  engine.matchNull = function (op, values) {
    sawNull = true;
    return proto.matchNull.call(this, op, values);
  };
  engine.matchCondition = function (target, condition) {
    sawNull = false;
    const matched = proto.matchCondition.call(this, target, condition);
    const entry = (stats.ops[condition.op] ||= { evaluated: 0, matched: 0, null_prop: 0, null_matched: 0 });
    entry.evaluated += 1;
    entry.matched += matched ? 1 : 0;
    entry.null_prop += sawNull ? 1 : 0;
    entry.null_matched += sawNull && matched ? 1 : 0;
    return matched;
  };
  engine.getHash = function (key) {
    stats.hashes += 1;
    return proto.getHash.call(this, key);
  };
  return engine;
}

function evaluateCase(engine, testCase) {
  const flagsByKey = {};
  for (const flag of testCase.flags) {
    flagsByKey[flag.key] = flag;
  }
  const keys = testCase.flag_keys && testCase.flag_keys.length > 0 ? testCase.flag_keys : undefined;
  let sorted;
  try {
    sorted = topologicalSort(flagsByKey, keys);
  } catch (e) {
    return { error: /cycle/i.test(String(e && e.message)) ? 'cycle' : `sort: ${e}` };
  }
  try {
    return engine.evaluate(testCase.context, sorted);
  } catch (e) {
    return { error: `evaluate: ${e}` };
  }
}

function main(input) {
  const request = JSON.parse(input);
  const stats = newStats();
  const engine = instrumentedEngine(stats);
  const results = request.cases.map((testCase) => evaluateCase(engine, testCase));
  process.stdout.write(JSON.stringify({ engine: version, results, stats }));
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => main(Buffer.concat(chunks).toString('utf8')));
