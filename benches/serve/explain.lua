-- wrk script: POST /v1/explain for one context of examples/acme.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"administration": "acme-nl", "user": "anna", "process": "sales_invoice"}'
