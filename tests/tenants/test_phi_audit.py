"""tenants/phi_audit.py: a PHI door that forgets its audit event fails closed.

The walker (tests/test_phi_read_audit_walker.py) proves every door's event on the real
URLs; these are the branches it cannot reach: a success answer of a decorated view that
wrote no event, and phi_read called from a view that is not marked."""

import pytest
from django.http import HttpResponse, HttpResponseNotFound
from django.test import RequestFactory

from tenants.audit import AuditEvent
from tenants.models import Membership
from tenants.phi_audit import PhiReadNotAudited, audits_phi_read, phi_read
from tenants.principal import Principal


@pytest.fixture
def request_(tenant):
    # What TenantMiddleware leaves on a request: the clinic and who is asking.
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="walker")
    request.tenant = tenant
    request.principal = Principal.for_membership(Membership.objects.for_tenant(tenant).get())
    return request


def _events(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_tenant(tenant).filter(action__startswith="test.").order_by("seq"))


def test_a_read_writes_one_event_for_the_requester(tenant, owner, request_):
    @audits_phi_read
    def view(request):
        phi_read(request, action="test.read", obj_type="study", obj_id=7, detail={"shown": 1})
        return HttpResponse("Doe^Jane")

    assert view(request_).status_code == 200
    [event] = _events(tenant)
    assert (event.actor_id, event.ip, event.user_agent) == (str(owner.pk), "203.0.113.9", "walker")
    assert (event.object_type, event.object_id, event.detail) == ("study", "7", {"shown": 1})


def test_a_success_without_an_event_is_refused(tenant, request_):
    @audits_phi_read
    def forgetful(request):
        return HttpResponse("Doe^Jane")

    with pytest.raises(PhiReadNotAudited, match="forgetful answered 200"):
        forgetful(request_)


def test_an_error_answer_needs_no_event(tenant, request_):
    @audits_phi_read
    def missing(request):
        return HttpResponseNotFound("no such study")

    assert missing(request_).status_code == 404
    assert _events(tenant) == []


def test_phi_read_outside_a_marked_view_writes_nothing(tenant, request_):
    # Every PHI door carries the decorator, so a reviewer finds them all by its name.
    with pytest.raises(PhiReadNotAudited, match="outside an @audits_phi_read view"):
        phi_read(request_, action="test.read", obj_type="study", detail={})
    assert _events(tenant) == []


def test_a_marked_view_called_by_another_shares_its_event(tenant, request_):
    # WADO bulkdata of the pixel data answers through the frames view: one event, not two.
    @audits_phi_read
    def inner(request):
        phi_read(request, action="test.read", obj_type="study", detail={})
        return HttpResponse("pixels")

    @audits_phi_read
    def outer(request):
        return inner(request)

    assert outer(request_).status_code == 200
    assert len(_events(tenant)) == 1
