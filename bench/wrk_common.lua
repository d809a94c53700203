-- Shared by the wrk scripts (loaded with require; wrk runs with bench/ as its working dir).
--
-- setup() numbers the wrk threads; id() makes ids unique per request; done() prints one
-- machine-readable line that bench/loadgen.py parses:
--   BENCH_RESULT {"requests": ..., "non_2xx": ..., ...}
-- wrk's own text output stays as it is, for a human reading the log (bench/out/bench.log).
local M = {}
local threads = {}

function M.setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- An id no other request of any run uses: 8 random hex digits first (clients send random
-- UUIDs, and the store's primary-key index should see keys spread the same way), then the
-- run number, the thread and the request counter, which make it unique by construction.
-- 22 characters, e.g. "3f2a9c01-0100-0000002a".
function M.id(run, thread, n)
  return string.format("%04x%04x-%02x%02x-%08x",
    math.random(0, 0xffff), math.random(0, 0xffff), run, thread, n)
end

function M.done(summary, latency, requests)
  -- "accepted" is a global of each thread's Lua state, kept by scripts that read answers.
  local accepted = 0
  for _, thread in ipairs(threads) do
    accepted = accepted + (thread:get("accepted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"accepted": %d, "latency_p50_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    accepted, latency:percentile(50), latency:percentile(99), latency.max))
end

return M
