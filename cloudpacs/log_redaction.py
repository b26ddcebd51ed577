"""Log lines never carry a secret link's token: a share link (/s/<token>), an invitation
(/invite/<token>/) or a password reset (/password-reset/<uid>/<token>/). Django logs the
path of a 404 or 410 ("Not Found: /s/..."), the access log every path. This filter, on
the console handler, rewrites such paths before any line is written."""

import logging
import re

SECRET_LINKS = [
    (re.compile(r"/s/(?!v/)[^/\s\"'?]+"), "/s/[link]"),
    (re.compile(r"/invite/[^/\s\"'?]+"), "/invite/[link]"),
    # The set-password step after the token has moved into the session is not a secret.
    (re.compile(r"/password-reset/([^/\s\"'?]+)/(?!set-password\b)[^/\s\"'?]+"), r"/password-reset/\1/[link]"),
]
MARKERS = ("/s/", "/invite/", "/password-reset/")


class RedactShareLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(marker in message for marker in MARKERS):
            for pattern, replacement in SECRET_LINKS:
                message = pattern.sub(replacement, message)
            record.msg, record.args = message, ()
        return True
