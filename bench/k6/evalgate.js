// Replays a workload from `evalgate workload --format k6` at a fixed arrival rate.
//
//   evalgate workload --flags flags.json --deployment-key KEY --format k6 -o workload.json
//   k6 run -e DATA=workload.json -e RATE=500 -e DURATION=60s bench/k6/evalgate.js
//
// `constant-arrival-rate` is k6's open model: requests start on schedule whether or not
// earlier ones have answered, so a slow server shows as latency (and as
// `dropped_iterations` when MAX_VUS is too low), not as a lower offered rate
// (coordinated omission). Requests are taken in file order, cycling.
//
// Settings (`-e NAME=value`): DATA (default workload.json), RATE requests per second
// (default 200), DURATION (default 30s), VUS pre-allocated (default 50), MAX_VUS
// (default 500). Requests the workload made bad on purpose (`--bad-key-share`,
// `--bad-context-share`) answer 401 and 400 and count in `http_req_failed` at their share.

import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';

const requests = new SharedArray('requests', function () {
  return JSON.parse(open(__ENV.DATA || 'workload.json'));
});

export const options = {
  discardResponseBodies: true,
  scenarios: {
    workload: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 50),
      maxVUs: Number(__ENV.MAX_VUS || 500),
    },
  },
};

export default function () {
  const r = requests[exec.scenario.iterationInTest % requests.length];
  // One metric series per route, not per URL (every user's URL differs).
  const name = r.method + ' ' + r.url.split('?')[0];
  const res = http.request(r.method, r.url, r.body, { headers: r.headers, tags: { name } });
  check(res, { 'answered 200, 400 or 401': (x) => [200, 400, 401].includes(x.status) });
}
