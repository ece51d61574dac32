#!/usr/bin/python3
"""A real SMTP server on 127.0.0.1 for mailrules' tests and demo.

aiosmtpd with STARTTLS (required before AUTH) or implicit TLS, AUTH
PLAIN/LOGIN against one user, and a spool directory: every accepted message
is stored as N.eml (the exact DATA bytes) plus N.json (envelope and login).
A self-signed certificate for localhost/127.0.0.1 is made with openssl on
first start; clients trust it through the `cert.pem` it leaves in --cert-dir.

Run with Debian's python3 (/usr/bin/python3), which sees python3-aiosmtpd.
"""

import argparse
import asyncio
import base64
import time
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import logging
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def make_certificate(cert_dir):
    cert = os.path.join(cert_dir, "cert.pem")
    key = os.path.join(cert_dir, "key.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    os.makedirs(cert_dir, exist_ok=True)
    # rustls rejects CA:TRUE leaf certificates (openssl's default for -x509).
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return cert, key


class Spool:
    """Stores accepted messages; numbered in arrival order."""

    def __init__(self, directory, implicit_tls, replies, reply_count, hang_up_after_data,
                 data_delay=0.0, xoauth2_tokens=None, reject_rcpt=(),
                 max_messages_per_connection=0):
        self.directory = directory
        # Like Exchange Online and Gmail: a connection takes this many
        # messages (0: any number), then MAIL gets 421 and it is closed.
        self.max_messages = max_messages_per_connection
        self.messages_on = {}
        self.reject_rcpt = set(a.lower() for a in reject_rcpt)
        self.data_delay = data_delay
        self.xoauth2_tokens = xoauth2_tokens
        self.replies = replies
        # Scripted replies are given this many times (None: always).
        self.replies_left = reply_count
        self.hang_ups_left = hang_up_after_data
        self.implicit_tls = implicit_tls
        self.lock = threading.Lock()
        self.count = 0
        self.connection_numbers = {}
        os.makedirs(directory, exist_ok=True)

    def scripted(self, command):
        reply = self.replies.get(command)
        if not reply:
            return None
        with self.lock:
            if self.replies_left is not None:
                if self.replies_left == 0:
                    return None
                self.replies_left -= 1
        return reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # EHLO comes again after STARTTLS, on a new session object: the
        # client's address and port name a connection.
        with self.lock:
            if session.peer not in self.connection_numbers:
                self.connection_numbers[session.peer] = len(self.connection_numbers) + 1
        session.host_name = hostname
        return responses

    async def auth_XOAUTH2(self, server, args):
        """XOAUTH2 as Gmail and Microsoft 365 do it: the token must be one
        the token server issued (listed in --xoauth2-tokens) and not expired.
        A refusal is a 334 with a JSON error, then 535 after the client's
        empty line. Every attempt is logged to <spool>/xoauth2.log."""
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        valid = False
        if self.xoauth2_tokens and os.path.exists(self.xoauth2_tokens):
            with open(self.xoauth2_tokens) as f:
                for line in f:
                    issued, _, expires = line.strip().partition(" ")
                    if issued == token and float(expires) > time.time():
                        valid = True
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "xoauth2.log"), "a") as log:
            log.write("%s %s %s\n" % ("accepted" if valid else "refused", user, token))
        if valid:
            return AuthResult(success=True, handled=False, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.max_messages and self.messages_on.get(session.peer, 0) >= self.max_messages:
            # Closed once the reply is written (close() flushes first).
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many messages on this connection, try again"
        reply = self.scripted("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_rcpt:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        reply = self.scripted("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            # A slow server: the message is in, the reply takes its time.
            await asyncio.sleep(self.data_delay)
        reply = self.scripted("data")
        if reply:
            return reply
        with self.lock:
            self.count += 1
            number = self.count
            self.messages_on[session.peer] = self.messages_on.get(session.peer, 0) + 1
        base = os.path.join(self.directory, "%06d" % number)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data if session.authenticated else None,
            "tls": self.implicit_tls or session.ssl is not None,
            "connection": self.connection_numbers.get(session.peer),
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        # The .json appears last: a reader that sees it can read both files.
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        with self.lock:
            hang_up = self.hang_ups_left > 0
            self.hang_ups_left -= hang_up
        if hang_up:
            # Stored, but the client never hears so: its delivery state
            # is unknown and it must not send the message again.
            server.transport.abort()
        return "250 2.0.0 Ok: queued as %06d" % number


def authenticator(user, password, spool_dir, reject_with=None):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            reject_with is None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        if not ok:
            # Counted, for the tests that a client does not hammer a refused login.
            os.makedirs(spool_dir, exist_ok=True)
            with open(os.path.join(spool_dir, "refused-logins.log"), "a") as log:
                log.write("refused\n")
        # handled=False: aiosmtpd then answers 235, or 535 (or reject_with).
        return AuthResult(success=ok, handled=False, message=None if ok else reject_with,
                          auth_data=auth_data.login.decode() if ok else None)
    return check


def main():
    # aiosmtpd 1.4 logs a deprecation warning about its own Session.login_data,
    # and warns that the implicit-TLS listener allows AUTH (it is TLS already).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", UserWarning)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--security", choices=["starttls", "tls"], default="starttls")
    parser.add_argument("--user", required=True)
    # Scripted refusals, for the error-classification tests.
    parser.add_argument("--auth-reply", help="reply to every AUTH, e.g. '535 5.7.139 ...'")
    parser.add_argument("--mail-reply", help="reply to MAIL FROM, e.g. '550 5.7.60 ...'")
    parser.add_argument("--rcpt-reply", help="reply to RCPT TO, e.g. '451 4.3.0 ...'")
    parser.add_argument("--data-reply", help="reply to the end of DATA, e.g. '452 4.3.1 ...'")
    parser.add_argument("--reply-count", type=int,
                        help="give the scripted replies this many times, then accept")
    parser.add_argument("--idle-timeout", type=float, default=300,
                        help="close a connection idle this many seconds")
    parser.add_argument("--hang-up-after-data", type=int, default=0,
                        help="store the first N messages, then close without replying")
    parser.add_argument("--xoauth2-tokens",
                        help="file of issued tokens ('TOKEN EXPIRY-EPOCH' lines) that AUTH XOAUTH2 accepts")
    parser.add_argument("--data-delay", type=float, default=0.0,
                        help="wait this many seconds before answering the end of DATA")
    parser.add_argument("--reject-rcpt", action="append", default=[],
                        help="refuse RCPT TO this address with 550 5.1.1 (repeatable)")
    parser.add_argument("--max-messages-per-connection", type=int, default=0,
                        help="accept this many messages per connection, then 421 and close")
    parser.add_argument("--password-env", required=True,
                        help="environment variable holding the accepted password")
    args = parser.parse_args()

    password = os.environ[args.password_env]
    replies = {"mail": args.mail_reply, "rcpt": args.rcpt_reply, "data": args.data_reply}
    cert, key = make_certificate(args.cert_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    common = dict(
        hostname="127.0.0.1",
        port=args.port,
        authenticator=authenticator(args.user, password, args.spool, args.auth_reply),
        auth_required=True,
        server_hostname="localhost",
        timeout=args.idle_timeout,
    )
    def spool(implicit_tls):
        return Spool(args.spool, implicit_tls, replies, args.reply_count, args.hang_up_after_data,
                     args.data_delay, args.xoauth2_tokens, args.reject_rcpt,
                     args.max_messages_per_connection)

    if args.security == "starttls":
        controller = Controller(spool(False), tls_context=context, require_starttls=True, **common)
    else:
        controller = Controller(spool(True), ssl_context=context, auth_require_tls=False, **common)
    controller.start()
    print("listening on 127.0.0.1:%d (%s)" % (args.port, args.security), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
