// Drives Amplitude's Node server SDK (@amplitude/experiment-node-server, pinned in
// package.json) against one server URL, for tests/sdk_clients.rs.
//
// Usage: node sdk.js '<spec JSON>'
//   {"mode": "remote", "serverUrl": "...", "key": "...", "user": {...}, "fetches": [options, ...]}
//     one RemoteEvaluationClient; fetchV2(user, options) once per entry, in order.
//   {"mode": "local", "serverUrl": "...", "key": "...", "user": {...}, "clients": N, "flagKeys": [...]?}
//     N LocalEvaluationClients, one after the other: start() (fetches the flags from
//     serverUrl), evaluateV2(user, flagKeys), stop().
// Prints {"sdk", "version", "results": [...]} on stdout; on any error prints it on stderr
// and exits 1.
'use strict';

const { Experiment } = require('@amplitude/experiment-node-server');
const { version } = require('@amplitude/experiment-node-server/package.json');

async function remote(spec) {
  const client = Experiment.initializeRemote(spec.key, {
    serverUrl: spec.serverUrl,
    fetchTimeoutMillis: 5000,
    fetchRetries: 0,
  });
  const results = [];
  for (const options of spec.fetches) {
    // fetchV2 returns every evaluated flag, default variants included.
    results.push(await client.fetchV2({ ...spec.user }, options));
  }
  return results;
}

async function local(spec) {
  const results = [];
  for (let i = 0; i < spec.clients; i++) {
    const client = Experiment.initializeLocal(spec.key, {
      serverUrl: spec.serverUrl,
      instanceName: `evalgate-test-${i}`,
      streamUpdates: false,
      // One fetch at start(); no polling while the script runs.
      flagConfigPollingIntervalMillis: 3600000,
    });
    await client.start();
    try {
      results.push(client.evaluateV2({ ...spec.user }, spec.flagKeys));
    } finally {
      client.stop();
    }
  }
  return results;
}

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const run = { remote, local }[spec.mode];
  if (!run) throw new Error(`unknown mode ${spec.mode}`);
  const results = await run(spec);
  process.stdout.write(
    JSON.stringify({ sdk: '@amplitude/experiment-node-server', version, results }) + '\n',
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`sdk.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
