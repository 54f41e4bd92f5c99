-- wrk script: POST the create body; BENCH_QUOTA responses per thread, then stop.
-- With one connection per thread (-t N -c N) a thread has one request in flight,
-- so stopping right after its last response leaves no request unaccounted for.
-- wrk itself runs until -d; the bench sends it SIGINT once every thread said done.
local quota = tonumber(os.getenv("BENCH_QUOTA"))
local count = 0
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_AUTHORIZATION") ~= "" then
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end

function response(status, headers, body)
  count = count + 1
  if count == quota then
    io.write("BENCH thread done\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH summary requests=%d duration_us=%d socket_errors=%d status_errors=%d "
    .. "p50_us=%d p99_us=%d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
