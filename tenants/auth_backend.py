"""Django's ModelBackend, with the user look-up every signed-in request makes compiled once
(cloudpacs.compiled_query) instead of by the ORM on each request."""

from django.contrib.auth.backends import ModelBackend
from django.db.models import IntegerField

from cloudpacs.compiled_query import CompiledQuery, Slot, fields_in_order
from tenants.models import User

_FIELDS = fields_in_order(User)
_BY_ID = CompiledQuery(lambda: User.objects.filter(pk=Slot("pk", IntegerField())).values_list(*_FIELDS))


class UserBackend(ModelBackend):
    def get_user(self, user_id):
        rows = _BY_ID.rows(pk=user_id)
        if not rows:
            return None
        user = User.from_db("default", _FIELDS, rows[0])
        return user if self.user_can_authenticate(user) else None
