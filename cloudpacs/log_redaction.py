"""Log lines never carry a share link's token. The link is /s/<token>; Django logs the
path of a 404 or 410 ("Not Found: /s/..."), the access log every path. This filter, on
the console handler, rewrites such paths before any line is written."""

import logging
import re

SHARE_LINK = re.compile(r"/s/(?!v/)[^/\s\"'?]+")


class RedactShareLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/s/" in message:
            record.msg, record.args = SHARE_LINK.sub("/s/[link]", message), ()
        return True
