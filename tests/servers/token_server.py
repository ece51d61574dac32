#!/usr/bin/env python3
"""An OAuth 2.0 token endpoint for tests, on 127.0.0.1, shaped like
Microsoft's (POST /<tenant>/oauth2/v2.0/token) and answering like it:

- grant_type=client_credentials with the right client id and secret, or
  grant_type=refresh_token with the right refresh token: 200 with a new
  access token, `expires_in` seconds long (appended to --tokens, which the
  SMTP test server reads to accept AUTH XOAUTH2);
- an unknown client id: 400 unauthorized_client (AADSTS700016);
- a wrong client secret: 401 invalid_client (AADSTS7000215);
- client credentials with a scope not ending in /.default: 400
  invalid_scope (AADSTS1002012);
- a wrong refresh token: 400 invalid_grant;
- an unknown tenant: 400 invalid_request (AADSTS90002);
- --no-consent: 400 invalid_grant (AADSTS65001);
- --outage STATUS: that status with an HTML page (an outage, throttling);
- --echo-request: 401 invalid_client that echoes the raw request body
  (client secret, refresh token and all) in `error_description`, after
  an escape sequence, as careless endpoints do.

Every request is logged to --log as one line: `<grant_type>`.
"""

import argparse
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", default="contoso.onmicrosoft.com")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-env", required=True,
                        help="environment variable holding the client secret")
    parser.add_argument("--refresh-token-env", required=True,
                        help="environment variable holding the valid refresh token")
    parser.add_argument("--expires-in", type=int, default=3600)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to wait before answering (concurrency tests)")
    parser.add_argument("--no-consent", action="store_true")
    parser.add_argument("--outage", type=int,
                        help="answer every request with this HTTP status and an HTML page "
                             "(503: an outage, 429: throttled)")
    parser.add_argument("--echo-request", action="store_true",
                        help="answer 401 invalid_client with the raw request body "
                             "in error_description")
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    client_secret = os.environ[args.client_secret_env]
    refresh_token = os.environ[args.refresh_token_env]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def refuse(self, status, error, description):
            self.answer(status, {"error": error, "error_description": description})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            form = urllib.parse.parse_qs(body)
            field = lambda name: form.get(name, [""])[0]
            grant = field("grant_type")
            with lock, open(args.log, "a") as log:
                log.write(grant + "\n")
            time.sleep(args.delay)
            if args.echo_request:
                return self.refuse(401, "invalid_client",
                                   "\x1b[31mbad request: %s\r\nTrace ID: 1234" % body)
            if args.outage:
                page = b"<html><body>Service unavailable</body></html>"
                self.send_response(args.outage)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                return self.wfile.write(page)
            tenant = self.path.split("/")[1] if self.path.count("/") >= 2 else ""
            if self.path != "/%s/oauth2/v2.0/token" % tenant:
                return self.refuse(404, "invalid_request", "no such endpoint")
            if tenant != args.tenant:
                return self.refuse(400, "invalid_request",
                                   "AADSTS90002: Tenant '%s' not found. Check to make sure you have "
                                   "the correct tenant ID.\r\nTrace ID: 1234" % tenant)
            if field("client_id") != args.client_id:
                return self.refuse(400, "unauthorized_client",
                                   "AADSTS700016: Application with identifier '%s' was not found "
                                   "in the directory." % field("client_id"))
            if grant == "client_credentials":
                if field("client_secret") != client_secret:
                    return self.refuse(401, "invalid_client",
                                       "AADSTS7000215: Invalid client secret provided.")
                if not field("scope").endswith("/.default"):
                    return self.refuse(400, "invalid_scope",
                                       "AADSTS1002012: The provided value for scope %s is not "
                                       "valid. Client credential flows must have a scope value "
                                       "with /.default suffixed to the resource identifier."
                                       % field("scope"))
            elif grant == "refresh_token":
                if field("refresh_token") != refresh_token:
                    return self.refuse(400, "invalid_grant",
                                       "AADSTS70000: The provided value for the 'refresh_token' is "
                                       "not valid. Token has been expired or revoked.")
            else:
                return self.refuse(400, "unsupported_grant_type", grant)
            if args.no_consent:
                return self.refuse(400, "invalid_grant",
                                   "AADSTS65001: The user or administrator has not consented to "
                                   "use the application.")
            token = "tok-" + secrets.token_hex(16)
            with lock, open(args.tokens, "a") as tokens:
                tokens.write("%s %f\n" % (token, time.time() + args.expires_in))
            self.answer(200, {"token_type": "Bearer", "expires_in": args.expires_in,
                              "ext_expires_in": args.expires_in, "access_token": token})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening on 127.0.0.1:%d" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
