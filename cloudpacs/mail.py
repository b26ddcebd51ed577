"""Whether an email that carries a secret link (an invitation, a password reset, a share)
may be sent: not in production through the console backend, which would print the link
into the logs, where anyone who reads them could use it."""

from django.conf import settings

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"


def secret_links_mailable() -> bool:
    return not (settings.PRODUCTION and settings.EMAIL_BACKEND == CONSOLE_EMAIL)
