#!/usr/bin/python3
"""Reads .eml files with Python's email package (default policy), an MIME
parser independent of mailrules, and prints what a mail client would show,
as JSON: one object per file."""

import hashlib
import json
import sys
from email import policy
from email.parser import BytesParser


def mailboxes(header):
    if header is None:
        return []
    return [[a.display_name, a.addr_spec] for a in header.addresses]


def describe(path):
    with open(path, "rb") as f:
        msg = BytesParser(policy=policy.default).parse(f)
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return {
        "subject": msg["Subject"],
        "from": mailboxes(msg["From"]),
        "to": mailboxes(msg["To"]),
        "reply_to": mailboxes(msg["Reply-To"]),
        "bcc": msg["Bcc"],
        "x_case": msg["X-Case"],
        "list_unsubscribe": msg["List-Unsubscribe"],
        "defects": [str(d) for d in msg.defects],
        "text": plain.get_content() if plain is not None else None,
        "html": html.get_content() if html is not None else None,
        "attachments": [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "sha256": hashlib.sha256(part.get_payload(decode=True)).hexdigest(),
            }
            for part in msg.iter_attachments()
        ],
    }


json.dump([describe(p) for p in sys.argv[1:]], sys.stdout, ensure_ascii=False)
