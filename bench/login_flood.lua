-- POST /api/auth/login with a wrong password, as fast as it goes: each one
-- costs the server a full password hash.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "flood@example.com", "password": "not the password"}'
