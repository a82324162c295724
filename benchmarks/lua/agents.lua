-- wrk script: simulated agents polling the provider (GET /api/v1/release with
-- If-None-Match, expecting 304) or posting run reports (POST /api/v1/reports,
-- expecting 201).  Every request authenticates as the next enrolled host.
--
-- Environment:
--   BENCH_MODE       poll | report
--   BENCH_HOSTS      file: one "host credential digest" per line
--   BENCH_REPORT     file (report mode): lines A, B, C and ORDER of a report
--                    whose JSON is A .. first .. B .. second .. C, ORDER
--                    naming first and second ("host,id" or "id,host")
--   BENCH_RUN        a prefix that makes report ids unique across runs
--   BENCH_DELAY_MS   pause before each request (paced load), default 0

local mode = os.getenv("BENCH_MODE") or "poll"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local run = os.getenv("BENCH_RUN") or "run"

local hosts = {}
for line in io.lines(os.getenv("BENCH_HOSTS")) do
  local name, credential, digest = line:match("^(%S+) (%S+) (%S+)$")
  if name then
    hosts[#hosts + 1] = {name, "Bearer " .. credential, '"' .. digest .. '"'}
  end
end

local parts = {}
if mode == "report" then
  for line in io.lines(os.getenv("BENCH_REPORT")) do
    parts[#parts + 1] = line
  end
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

statuses = {}
local counter = 0

function init(args)
  counter = (tid or 1) * 7919
end

function request()
  counter = counter + 1
  local host = hosts[counter % #hosts + 1]
  if mode == "report" then
    local id = run .. "-" .. (tid or 0) .. "-" .. counter
    local body
    if parts[4] == "id,host" then
      body = parts[1] .. id .. parts[2] .. host[1] .. parts[3]
    else
      body = parts[1] .. host[1] .. parts[2] .. id .. parts[3]
    end
    return wrk.format("POST", "/api/v1/reports", {
      ["Authorization"] = host[2],
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = id,
    }, body)
  end
  return wrk.format("GET", "/api/v1/release", {
    ["Authorization"] = host[2],
    ["If-None-Match"] = host[3],
  })
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for key, value in pairs(counts) do
      merged[key] = (merged[key] or 0) + value
    end
  end
  local status_json = {}
  for key, value in pairs(merged) do
    status_json[#status_json + 1] = string.format('"%s": %d', key, value)
  end
  io.write(string.format(
    'BENCH-RESULT {"requests": %d, "duration_us": %d, "errors": {"connect": %d, '
      .. '"read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %f}, '
      .. '"statuses": {%s}}\n',
    summary.requests, summary.duration, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    table.concat(status_json, ", ")))
end
