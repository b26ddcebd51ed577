"""Django's database sessions, with the look-up every signed-in request makes compiled once
(cloudpacs.compiled_query) instead of by the ORM on each request. Same table, same rows:
switching SESSION_ENGINE to it keeps everyone signed in."""

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db.models import CharField, DateTimeField
from django.utils import timezone

from cloudpacs.compiled_query import CompiledQuery, Slot, fields_in_order

_FIELDS = fields_in_order(Session)
_UNEXPIRED = CompiledQuery(lambda: Session.objects.filter(
    session_key=Slot("key", CharField()), expire_date__gt=Slot("now", DateTimeField())).values_list(*_FIELDS))

# Sessions signed in before tenants.auth_backend.UserBackend took ModelBackend's place name
# ModelBackend, which Django no longer accepts once it is not listed: read as the new one, so
# the change signs nobody out. Needless once such sessions have expired (SESSION_COOKIE_AGE).
# A session saved since names the new backend: code from before the change would sign it out.
_RENAMED_BACKENDS = {"django.contrib.auth.backends.ModelBackend": "tenants.auth_backend.UserBackend"}


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self):
        rows = _UNEXPIRED.rows(key=self.session_key, now=timezone.now())
        if not rows:
            self._session_key = None
            return None
        return Session.from_db("default", _FIELDS, rows[0])

    def load(self):
        return _renamed(super().load())

    async def aload(self):
        return _renamed(await super().aload())


def _renamed(data: dict) -> dict:
    if data.get(BACKEND_SESSION_KEY) in _RENAMED_BACKENDS:
        data[BACKEND_SESSION_KEY] = _RENAMED_BACKENDS[data[BACKEND_SESSION_KEY]]
    return data
