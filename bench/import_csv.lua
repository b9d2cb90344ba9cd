-- POST /api/imports/csv of 10,000 rows, every row new, the way successive
-- bank statements arrive: each request is a statement of its own 28 days,
-- later than the last, and tags its descriptions with a number no other
-- request of any thread or run uses, so nothing is skipped as a duplicate.
-- (wrk does not seed Lua's generator: every thread of every run would draw
-- the same "random" tags, so the tags and periods come from the clock and
-- the thread's own count.)
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/csv"
local rows = 10000
local days = 28
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local sent = 0
local started

request = function()
  started = started or os.time()
  sent = sent + 1
  local tag = string.format("%d.%d.%d", started, id or 0, sent)
  -- Periods from 1970 on, 256 a second of wall time between runs and 2 a
  -- request within one (one per thread), wrapping before the year 2740
  -- (the server takes dates up to 2999).
  local period = ((started % 100000) * 256 + sent * 2 + (id or 0)) % 10000
  local dates = {}
  for d = 0, days - 1 do
    dates[d] = os.date("!%Y-%m-%d", (period * days + d) * 86400)
  end
  local lines = { "date,amount,description,category" }
  for i = 1, rows do
    lines[#lines + 1] = string.format("%s,-%d.%02d,bench %s-%d,Bench %d",
      dates[i % days], (i % 500) + 1, i % 100, tag, i, i % 10)
  end
  return wrk.format(nil, nil, nil, table.concat(lines, "\n") .. "\n")
end
