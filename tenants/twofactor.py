"""Two-factor rules: owners and admins must have verified a TOTP device this session."""

from functools import cache

from django.db.models import Exists, OuterRef
from django.shortcuts import redirect
from django.utils.http import urlencode
from django_otp import device_classes, user_has_device

from tenants import roles


@cache
def _device_columns() -> tuple[tuple[str, type], ...]:
    """(annotation name, device model) of each installed device kind. Asked on every
    request of a member, and django_otp finds them by walking every installed model."""
    return tuple((f"_has_{model._meta.label_lower.replace('.', '_')}", model) for model in device_classes())


def device_annotations() -> dict:
    """For a membership query: whether its user has a confirmed device of each kind, as
    columns of that one query (`needs_second_factor` reads them) instead of a query per
    device kind on every request of a member without 2FA."""
    return {name: Exists(model.objects.filter(user=OuterRef("user_id"), confirmed=True))
            for name, model in _device_columns()}


def device_annotation_names() -> list[str]:
    """The names `device_annotations` gives its columns, in the same order."""
    return [name for name, _ in _device_columns()]


def _has_device(membership) -> bool:
    names = device_annotation_names()
    if all(hasattr(membership, name) for name in names):
        return any(getattr(membership, name) for name in names)
    return user_has_device(membership.user)


def needs_second_factor(request, membership):
    """A redirect to enrol or verify when this member's role demands 2FA; else None."""
    user = request.user
    if user.is_verified():
        return None
    has_device = _has_device(membership)
    if has_device:
        return redirect("/account/2fa/verify/?" + urlencode({"next": request.get_full_path()}))
    if membership.role in roles.ROLES_REQUIRING_2FA:
        return redirect("/account/2fa/setup/?" + urlencode({"next": request.get_full_path()}))
    return None
