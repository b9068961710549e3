-- Send each pre-generated raw HTTP request exactly once, then stop.
--
--   wrk -t2 -c16 -d600s -s benchmarks/burst.lua http://127.0.0.1:8000/ -- DIR
--
-- DIR holds slice-0.req, slice-1.req, ...: one per wrk thread (see replay.lua for the
-- format). Once a thread has sent its whole slice it sends `GET /__burst_done` (answered
-- 404, not counted as a delivery, one every 10 ms per connection) until every answer to its slice is in, then writes
-- DIR/done-<slice> holding its count of 2xx answers. The caller stops wrk (SIGINT) when
-- every slice is done; done() prints "WRK_RESULT {json}" as replay.lua does.

local threads = {}
local next_slice = 0

function setup(thread)
  thread:set("slice", next_slice)
  next_slice = next_slice + 1
  table.insert(threads, thread)
end

local pool, count, cursor, answered, finished = {}, 0, 0, 0, false
local idle = "GET /__burst_done HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
sent, ok = 0, 0
local dir

function init(args)
  dir = args[1]
  local file = assert(io.open(string.format("%s/slice-%d.req", dir, slice), "rb"))
  while true do
    local length = file:read("*l")
    if not length then break end
    count = count + 1
    pool[count] = file:read(tonumber(length))
  end
  file:close()
end

-- wrk calls request() once on a thread's script to check it, without sending what it
-- returns: the first call of each thread gets the idle request, so no event is lost.
local primed = false

function request()
  if not primed then
    primed = true
    return idle
  end
  if cursor >= count then
    return idle
  end
  cursor = cursor + 1
  sent = sent + 1
  return pool[cursor]
end

function delay()
  if cursor >= count then return 10 end
  return 0
end

function response(status, headers, body)
  if status == 404 then return end
  answered = answered + 1
  if status >= 200 and status < 300 then ok = ok + 1 end
  if answered >= count and not finished then
    finished = true
    local f = assert(io.open(string.format("%s/done-%d", dir, slice), "w"))
    f:write(tostring(ok))
    f:close()
  end
end

function done(summary, latency, _)
  local total_sent, total_ok = 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
  end
  io.write(string.format(
    'WRK_RESULT {"sent":%d,"ok":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    total_sent, total_ok, latency:percentile(50), latency:percentile(99), latency.max))
end
