-- wrk script: POST /v1/send for one invoice of benches/batch/config.yaml.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"administration": "bench", "user": "batch", "process": "invoice", "to": ["Customer 1 <customer1@example.com>"], "data": {"number": "2026-00001", "customer": "Customer 1", "customer_number": "C00001", "date": "2026-12-01", "amount": "EUR 7.01"}}'

-- Anything but 202 (or 200 without an outbox) makes the run invalid.
local bad = 0
response = function(status, headers, body)
  if status ~= 202 and status ~= 200 then
    bad = bad + 1
    if bad == 1 then io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n") end
  end
end
