-- wrk script shared by the bench/ load tests (bench/harness.py runs it).
--
--   wrk -s bench/load.lua URL -- PATH BODIES_FILE PACE_MS THREADS API_KEY RUN_TAG
--
-- Every request POSTs one line of BODIES_FILE to PATH (GET when BODIES_FILE is "-").
-- wrk thread t sends lines t, t+THREADS, t+2*THREADS, ... so threads never repeat
-- each other's lines; "{{n}}" in a line is replaced by a value unique to the request
-- (RUN_TAG, the thread and a counter: event ids). PACE_MS > 0 waits a random 0.5-1.5 x PACE_MS before each request of a
-- connection, which holds the offered load near CONNECTIONS x 1000 / (PACE_MS + latency)
-- requests/s (a latency run below the maximum throughput). done() prints one line
-- "WRKJSON {...}" with counts and latency percentiles in microseconds.

local next_thread = 0
local lines, n, i, step, pace, counter, tid_text = {}, 0, 0, 1, 0, 0, "0"

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  local path, file = args[1], args[2]
  pace = tonumber(args[3]) or 0
  step = tonumber(args[4]) or 1
  local key = args[5]
  local me = tid or 0
  tid_text = (args[6] or "") .. tostring(me)
  i = me
  math.randomseed(me * 7919 + os.time())
  wrk.path = path
  if key ~= nil and key ~= "" then wrk.headers["X-API-Key"] = key end
  if file ~= "-" then
    for line in io.lines(file) do lines[#lines + 1] = line end
    n = #lines
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  else
    wrk.method = "GET"
  end
end

function request()
  if n == 0 then return wrk.format() end
  local body = lines[(i % n) + 1]
  i = i + step
  counter = counter + 1
  if string.find(body, "{{n}}", 1, true) then
    body = string.gsub(body, "{{n}}", tid_text .. "x" .. counter)
  end
  return wrk.format(nil, nil, nil, body)
end

function delay()
  if pace <= 0 then return 0 end
  return math.random(math.floor(pace * 0.5), math.floor(pace * 1.5))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
