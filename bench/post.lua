-- wrk script: POST a Tolq-style body with its signature, report one RESULT line.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tolq-Signature"] = os.getenv("BENCH_SIG")

-- The RESULT line, as for the GET rows.
dofile("bench/get.lua")
