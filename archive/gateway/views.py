"""The clinic's DICOM peers: which modalities and PACS may send to its AE title, and
where studies may be sent."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from archive.gateway.models import DicomPeer
from archive.gateway.services import dicom_peer_add, dicom_peer_remove
from tenants.decorators import require_perm

PERM = "tenant.manage_tokens"  # gateway and API credentials are one concern


class DicomPeerForm(forms.Form):
    ae_title = forms.CharField(label="AE title", max_length=16,
                               help_text="The peer's own AE title (the one it calls us as, or listens as).")
    may_send = forms.BooleanField(label="May send studies here", required=False, initial=True)
    network = forms.CharField(label="Only from these addresses", required=False, max_length=49,
                              help_text="Optional, for senders: an address (10.0.0.7) or a range (10.0.0.0/24).")
    host = forms.CharField(label="Its host name or address", required=False, max_length=255,
                           help_text="Optional: where it listens, for sending studies to it (C-MOVE).")
    port = forms.IntegerField(label="Its port", required=False, min_value=1, max_value=65535)
    description = forms.CharField(max_length=200, required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("host")) != bool(data.get("port")):
            raise ValidationError("A destination needs both its host and its port.")
        if not data.get("may_send") and not data.get("host"):
            raise ValidationError("Let it send, give its address to send to, or both.")
        return data


@require_perm(PERM)
def dicom_peers(request: HttpRequest) -> HttpResponse:
    form = DicomPeerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            peer = dicom_peer_add(tenant=request.tenant, actor=request.principal.actor(request),
                                  **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{peer.ae_title} added" + (
                f": it may now send to {request.tenant.ae_title}." if peer.may_send else "."))
            return redirect("archive:dicom_peers", tenant_slug=request.tenant.slug)
    return render(request, "archive/dicom_peers.html", {
        "form": form,
        "peers": DicomPeer.objects.for_tenant(request.tenant),
        "dicom_host": settings.DICOM_HOST,
        "dicom_port": settings.DICOM_PORT,
    }, status=400 if form.is_bound and not form.is_valid() else 200)


@require_POST
@require_perm(PERM)
def dicom_peer_delete(request: HttpRequest, peer_id: int) -> HttpResponse:
    peer = get_object_or_404(DicomPeer.objects.for_tenant(request.tenant), pk=peer_id)
    dicom_peer_remove(peer=peer, actor=request.principal.actor(request))
    messages.success(request, f"{peer.ae_title} is no longer a peer of this clinic.")
    return redirect("archive:dicom_peers", tenant_slug=request.tenant.slug)
