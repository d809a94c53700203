-- (b) Batches of events to /analytics/events, each with its own ids.
--
-- The body is a template written by bench/ingest.py (1,000 clicks and impressions) in
-- which every id starts with the marker @ID@; each request replaces the marker with an id
-- unique to the request, so that no event is ever a duplicate. Each answer's "accepted"
-- count is summed: events/s counts what the server acknowledged as stored, not what was sent.
-- Arguments: the run number (0 for the warm-up, 1, 2, ...), the template's path.
local common = require("wrk_common")
setup = common.setup
done = common.done

local MARKER = "@ID@"
local run
local parts = {}
local n = 0
local headers = { ["Content-Type"] = "application/json" }
accepted = 0  -- global: done() collects it from every thread

function init(args)
  run = tonumber(args[1]) or 0
  math.randomseed(run * 1000 + thread_index + 1)
  local file = assert(io.open(args[2], "rb"))
  local template = file:read("*a")
  file:close()
  -- Split once at the markers; table.concat(parts, id) then rebuilds a body cheaply.
  local start = 1
  while true do
    local i, j = string.find(template, MARKER, start, true)
    if not i then break end
    table.insert(parts, string.sub(template, start, i - 1))
    start = j + 1
  end
  table.insert(parts, string.sub(template, start))
end

function request()
  n = n + 1
  return wrk.format("POST", nil, headers, table.concat(parts, common.id(run, thread_index, n)))
end

function response(status, headers, body)
  if status == 200 then
    -- {"accepted":1000,...}: the first key of the answer.
    local count = string.match(body, '"accepted":(%d+)')
    accepted = accepted + (tonumber(count) or 0)
  end
end
