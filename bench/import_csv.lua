-- POST /api/imports/csv of 10,000 rows, every row new: each request tags its
-- descriptions with a number no other request of any thread or run uses, so
-- nothing is skipped as a duplicate. (wrk does not seed Lua's generator:
-- every thread of every run would draw the same "random" tags.)
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/csv"
local rows = 10000
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local sent = 0

request = function()
  sent = sent + 1
  local tag = string.format("%d.%d.%d", os.time(), id or 0, sent)
  local lines = { "date,amount,description,category" }
  for i = 1, rows do
    lines[#lines + 1] = string.format("2026-%02d-%02d,-%d.%02d,bench %s-%d,Bench %d",
      (i % 12) + 1, (i % 28) + 1, (i % 500) + 1, i % 100, tag, i, i % 10)
  end
  return wrk.format(nil, nil, nil, table.concat(lines, "\n") .. "\n")
end
