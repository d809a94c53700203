-- (a) One click per request to /analytics/log-click, every one with a new event_id.
--
-- The real endpoint answers a repeated event_id as a duplicate without storing it, so a
-- fixed body would measure the retry path, not ingestion. The body is built per request;
-- wrk runs the same script against the bare and the real server.
-- Argument: the run number (0 for the warm-up, 1, 2, ... for measured runs on that server).
local common = require("wrk_common")
setup = common.setup
done = common.done

local run
local n = 0
local headers = { ["Content-Type"] = "application/json" }
local BODY = '{"event_id":"%s","search_id":"%s-s","session_id":"sess-%d",'
  .. '"product_id":"sku-%d","rank":%d,"search_query":"running shoes %d",'
  .. '"variant":"search_v%d","response_time_ms":%d.5,"source":"SEARCH_RESULTS"}'

function init(args)
  run = tonumber(args[1]) or 0
  math.randomseed(run * 1000 + thread_index + 1)
end

function request()
  n = n + 1
  local id = common.id(run, thread_index, n)
  -- The user comes in the header (as from a browser beacon); the body has no user_id.
  headers["X-User-ID"] = "user-" .. (n % 100000)
  local body = string.format(BODY, id, id, n % 20000, n % 5000,
    n % 10 + 1, n % 300, n % 2 + 1, 20 + n % 80)
  return wrk.format("POST", nil, headers, body)
end
