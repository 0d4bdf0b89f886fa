-- Cycles the URLs of `evalgate workload --format urls` (one a line) for wrk or wrk2.
--
--   evalgate workload --flags flags.json --deployment-key KEY --format urls -o urls.txt
--   wrk2 -t2 -c64 -d60s -R500 -s bench/wrk/urls.lua \
--        -H 'Authorization: Api-Key KEY' http://127.0.0.1:8080 -- urls.txt
--
-- Only the path and query of each URL are used: wrk connects to the address on its command
-- line. Each thread starts at its own place in the list. wrk is a closed model (the next
-- request waits for the answer) and under-reports tail latency; wrk2's -R sends at a fixed
-- rate and corrects for coordinated omission.

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local paths = {}
local next_index = 0

function init(args)
  local file = args[1] or "urls.txt"
  for line in io.lines(file) do
    local path = line:match("^https?://[^/]+(/.*)$")
    if path then
      paths[#paths + 1] = path
    end
  end
  if #paths == 0 then
    error("no URLs in " .. file)
  end
  next_index = ((id or 0) * 7919) % #paths
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end
