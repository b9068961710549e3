-- Replay pre-generated raw HTTP requests with wrk, each one once.
--
--   wrk -t2 -c16 -d20s -s benchmarks/replay.lua http://127.0.0.1:8000/ -- DIR
--
-- DIR holds slice-0.req, slice-1.req, ...: one per wrk thread, so that no two threads send
-- the same event. A file is a run of records "<byte length>\n<raw request>". A thread that
-- reaches the end of its slice starts again from the top and counts a wrap; done() prints
-- one line, "WRK_RESULT {json}", with the counts and latency percentiles in microseconds.

local threads = {}
local next_slice = 0

function setup(thread)
  thread:set("slice", next_slice)
  next_slice = next_slice + 1
  table.insert(threads, thread)
end

local pool, count, cursor = {}, 0, 0
sent, wraps = 0, 0

function init(args)
  local path = string.format("%s/slice-%d.req", args[1], slice)
  local file = assert(io.open(path, "rb"))
  while true do
    local length = file:read("*l")
    if not length then break end
    count = count + 1
    pool[count] = file:read(tonumber(length))
  end
  file:close()
  assert(count > 0, "no requests in " .. path)
end

function request()
  cursor = cursor + 1
  if cursor > count then
    cursor, wraps = 1, wraps + 1
  end
  sent = sent + 1
  return pool[cursor]
end

function done(summary, latency, _)
  local total_sent, total_wraps = 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_wraps = total_wraps + thread:get("wraps")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"responses":%d,"duration_us":%d,"non_2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"sent":%d,"wraps":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    total_sent, total_wraps, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
