-- A mixed workload from several users (TOKENS, comma-separated): of every
-- 10 requests, 6 read the summary, 2 list the newest 50 and 2 add an expense.
local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do
  tokens[#tokens + 1] = t
end
local n = 0

request = function()
  n = n + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] }
  local kind = n % 10
  if kind < 6 then
    return wrk.format("GET", "/api/expenses/summary", headers)
  elseif kind < 8 then
    return wrk.format("GET", "/api/expenses?limit=50", headers)
  end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/api/expenses", headers, '{"category": "Bench", "amount": "1.23"}')
end
