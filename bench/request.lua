-- wrk script: BENCH_METHOD (POST with the JSON body BENCH_BODY or none, or GET) the URL;
-- BENCH_QUOTA responses per thread, then stop; with If-None-Match: BENCH_IF_NONE_MATCH
-- when it is set.
-- With one connection per thread (-t N -c N) a thread has one request in flight,
-- so stopping right after its last response leaves no request unaccounted for.
-- wrk itself runs until -d; the bench sends it SIGINT once every thread said done.
-- A response whose status is not BENCH_STATUS is an error (wrk's own status errors
-- are those of 400 and above only, and a vote answers 202).
--
-- Each thread times its own requests and prints them: wrk's percentiles are
-- corrected for coordinated omission, h2load's are not, and the bench compares
-- rows measured by both. Raw durations give every row the same percentiles.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local now = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
  return tonumber(now.tv_sec) * 1000000 + math.floor(tonumber(now.tv_nsec) / 1000)
end

local quota = tonumber(os.getenv("BENCH_QUOTA"))
local expected = tonumber(os.getenv("BENCH_STATUS"))
-- Global: the main state reads each thread's count in done().
unexpected = 0
local threads = {}
local durations = {}
local started = nil
local prepared = nil
wrk.method = os.getenv("BENCH_METHOD")
if os.getenv("BENCH_BODY") ~= "" then
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/json"
elseif wrk.method == "POST" then
  wrk.headers["Content-Length"] = "0"
end
if (os.getenv("BENCH_IF_NONE_MATCH") or "") ~= "" then
  wrk.headers["If-None-Match"] = os.getenv("BENCH_IF_NONE_MATCH")
end
if os.getenv("BENCH_AUTHORIZATION") ~= "" then
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end

function setup(thread)
  threads[#threads + 1] = thread
end

function request()
  prepared = prepared or wrk.format()
  started = now_us()
  return prepared
end

function response(status, headers, body)
  durations[#durations + 1] = now_us() - started
  if status ~= expected then
    unexpected = unexpected + 1
  end
  if #durations == quota then
    io.write("BENCH durations_us " .. table.concat(durations, ",") .. "\n")
    io.write("BENCH thread done\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local unexpected_status = 0
  for _, thread in ipairs(threads) do
    unexpected_status = unexpected_status + thread:get("unexpected")
  end
  io.write(string.format("BENCH summary requests=%d duration_us=%d socket_errors=%d unexpected_status=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, unexpected_status))
end
