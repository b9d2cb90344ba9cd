-- A mixed workload from several users (TOKENS, comma-separated): of every
-- 10 requests, WRITES (default 2) add an expense, and of the rest three in
-- four read the summary and one lists the newest 50.
local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do
  tokens[#tokens + 1] = t
end
local writes = tonumber(os.getenv("WRITES") or "2")
local n = 0

request = function()
  n = n + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] }
  local kind = n % 10
  if kind >= writes then
    if kind % 4 == 3 then
      return wrk.format("GET", "/api/expenses?limit=50", headers)
    end
    return wrk.format("GET", "/api/expenses/summary", headers)
  end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/api/expenses", headers, '{"category": "Bench", "amount": "1.23"}')
end
