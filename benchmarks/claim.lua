-- wrk script: every request claims as a user nobody used before.
-- wrk ... -s claim.lua URL -- <path template> <coupons file> <run tag> <kind> [credentials file]
--   path template: "/coupon/api/v1/give-atomic/{coupon}" ({coupon} is replaced)
--   coupons file:  one coupon id per line; requests go round-robin over them
--   run tag:       makes user ids unique across runs on the same database
--   kind:          v1 (user in X-User-Id, empty body), v1body (JSON body {"userId": ...}),
--                  v2 (JSON body {"user_id": ...}), get (GET the path, no user),
--                  v2token (a user token per request, no body: one crowd member per token),
--                  v2key (a server key, JSON body {"user_id": ...})
--   credentials file: v2token: one token per line (each used once while they last);
--                     v2key: the key on its first line
-- done() prints one line `BENCH {...}` with the counts and latency percentiles (in us).

local threads = {}

function setup(thread)
   -- A global in the thread's own Lua state (a local of this chunk would shadow it there).
   thread:set("thread_id", #threads)
   threads[#threads + 1] = thread
end

-- Counting statuses costs wrk some speed, so only when asked (BENCH_STATUSES=1).
s2xx, s4xx, s5xx = 0, 0, 0
if os.getenv("BENCH_STATUSES") then
   function response(status, headers, body)
      if status >= 500 then s5xx = s5xx + 1
      elseif status >= 400 then s4xx = s4xx + 1
      else s2xx = s2xx + 1 end
   end
end

local before, after, coupons, tag, kind = "", "", {}, "", "v1"
local credentials = {}
local THREADS = 2  -- wrk.py runs -t 2: thread i uses tokens i+1, i+1+THREADS, ...
local sent = 0

function init(args)
   local template = args[1]
   local at = string.find(template, "{coupon}", 1, true)
   before = string.sub(template, 1, at - 1)
   after = string.sub(template, at + string.len("{coupon}"))
   for line in io.lines(args[2]) do
      if string.len(line) > 0 then coupons[#coupons + 1] = line end
   end
   tag = args[3] .. "-" .. thread_id .. "-"
   kind = args[4] or "v1"
   if args[5] then
      for line in io.lines(args[5]) do
         if string.len(line) > 0 then credentials[#credentials + 1] = line end
      end
   end
end

function request()
   sent = sent + 1
   local path = before .. coupons[(sent % #coupons) + 1] .. after
   local user = tag .. sent
   if kind == "v2token" then
      local token = credentials[((sent * THREADS + thread_id) % #credentials) + 1]
      return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token})
   elseif kind == "v2key" then
      return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                       ["Authorization"] = "Bearer " .. credentials[1]},
                        '{"user_id":"' .. user .. '"}')
   elseif kind == "v2" then
      return wrk.format("POST", path, {["Content-Type"] = "application/json"},
                        '{"user_id":"' .. user .. '"}')
   elseif kind == "v1body" then
      return wrk.format("POST", path, {["Content-Type"] = "application/json"},
                        '{"userId":"' .. user .. '"}')
   elseif kind == "get" then
      return wrk.format("GET", path)
   end
   return wrk.format("POST", path, {["X-User-Id"] = user})
end

function done(summary, latency, requests)
   local e = summary.errors
   local c2, c4, c5 = 0, 0, 0
   for _, thread in ipairs(threads) do
      c2 = c2 + thread:get("s2xx")
      c4 = c4 + thread:get("s4xx")
      c5 = c5 + thread:get("s5xx")
   end
   io.write(string.format(
      'BENCH {"counted":%s,"s2xx":%d,"s4xx":%d,"s5xx":%d,"requests":%d,"duration_us":%d,' ..
      '"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\n',
      os.getenv("BENCH_STATUSES") and "true" or "false", c2, c4, c5,
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
