-- wrk script for bench/identity.py: one fixed request, read from the environment,
-- and a machine-readable summary line (BENCH_RESULT {json}) at the end.
--   BENCH_METHOD     GET or POST
--   BENCH_BODY_FILE  path of a JSON body (optional; sets Content-Type)
--   BENCH_HEADERS    "Name: value" lines
-- The summary carries the latency quantiles at every 0.1 %, so that the runs of
-- one measurement (interleaved slices) can be merged into exact-enough percentiles.

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file ~= nil and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  local q = {}
  if summary.requests > 0 then
    for i = 1, 1000 do
      q[i] = string.format("%d", latency:percentile(i / 10))
    end
  end
  io.write(string.format(
    "BENCH_RESULT {\"duration_us\":%d,\"requests\":%d,\"bytes\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d," ..
    "\"quantiles_us\":[%s]}\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(q, ",")))
end
