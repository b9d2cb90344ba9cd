-- POST /api/imports/csv of 10,000 rows, every row new: each request tags its
-- descriptions with a fresh random number, so nothing is skipped as a duplicate.
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/csv"
local rows = 10000
request = function()
  local tag = math.random(1, 2147483647)
  local lines = { "date,amount,description,category" }
  for i = 1, rows do
    lines[#lines + 1] = string.format("2026-%02d-%02d,-%d.%02d,bench %d-%d,Bench %d",
      (i % 12) + 1, (i % 28) + 1, (i % 500) + 1, i % 100, tag, i, i % 10)
  end
  return wrk.format(nil, nil, nil, table.concat(lines, "\n") .. "\n")
end
