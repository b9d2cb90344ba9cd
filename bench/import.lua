-- POST /api/imports/mock of 1,000 transactions, a fresh seed each time so every row is new.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{"count": 1000, "seed": ' .. math.random(1, 2147483647) .. '}')
end
