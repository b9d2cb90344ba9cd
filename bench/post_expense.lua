-- POST /api/expenses with a small valid body; the token comes from -H.
wrk.method = "POST"
wrk.body = '{"category": "Bench", "amount": "1.23", "description": "load"}'
wrk.headers["Content-Type"] = "application/json"
