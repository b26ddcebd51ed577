"""Samples for tests/test_isolation_walker.py: a real object of the victim clinic for each
archive URL name with parameters. A factory returns (URL kwargs, secrets that must never
appear in another clinic's responses)."""

from tests.archive.study_rows import make_study


def _study(victim):
    study = make_study(victim, name="Victimova^Secreta", patient_id="VICTIM-PID-77",
                       accession="VICTIM-ACC-77", referring="Leaky^Doctor")
    return {"pk": study.pk}, ["Victimova", "VICTIM-PID-77", "VICTIM-ACC-77", study.study_instance_uid]


def _dicomweb_instance(victim):
    """One ingested CT image of the victim clinic (QIDO-RS / WADO-RS URLs)."""
    from tests.archive.dicomweb_data import ingest_datasets
    from tests.dicom_factory import make_ct_series

    [ds] = make_ct_series(1, 8, 8, patient_name="Victimova^Dicomweb", patient_id="VICTIM-DW-77",
                          accession="VICTIM-DWACC-77")
    ingest_datasets(victim, [ds])
    kwargs = {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
              "sop_uid": ds.SOPInstanceUID, "frame_list": "1", "tag_path": "7FE00010"}
    return kwargs, ["Victimova", "VICTIM-DW-77", "VICTIM-DWACC-77", ds.StudyInstanceUID,
                    ds.SOPInstanceUID]


def _report_pdf(victim):
    """A victim study with a signed PDF report (archive/reports/)."""
    from archive.models import Study
    from archive.reports.services import pdf_attach
    from tenants.audit import Actor
    from tests.conftest import tenant_owner

    kwargs, secrets = _dicomweb_instance(victim)
    study = Study.objects.for_tenant(victim).get(study_instance_uid=kwargs["study_uid"])
    version = pdf_attach(study=study, user=tenant_owner(victim), pdf=b"%PDF-1.4\n%VICTIM-PDF-77\n%%EOF\n",
                         title="Victim report", actor=Actor.system("test"))
    return {"pk": study.pk, "number": version.number}, [*secrets, "VICTIM-PDF-77"]


DICOMWEB_NAMES = [
    "dicomweb_study", "dicomweb_study_metadata", "dicomweb_study_series", "dicomweb_study_instances",
    "dicomweb_study_thumbnail", "dicomweb_series", "dicomweb_series_metadata",
    "dicomweb_series_instances", "dicomweb_series_thumbnail", "dicomweb_instance",
    "dicomweb_instance_metadata", "dicomweb_instance_rendered", "dicomweb_instance_thumbnail",
    "dicomweb_frames", "dicomweb_frames_rendered", "dicomweb_bulkdata",
]

SAMPLES = {
    # Worklist/study page and the clinic REST API (archive/views/, archive/api/).
    "archive:study": _study,
    "archive:api_study_detail": _study,
    "archive:api_study_storage": _study,
    # The viewer (archive/viewer/): opening a study, its thumbnails page.
    "archive:viewer_open": _study,
    "archive:study_thumbnails": _study,
    # Sharing (archive/sharing/): a study to share, and a share of the victim's.
    "archive:share_new": _study,
    "archive:study_download": _study,
    # Reports (archive/reports/): writing, signing, assigning, and a signed PDF.
    "archive:report_action": _study,
    "archive:report_assign": _study,
    "archive:report_pdf_attach": _study,
    "archive:report_pdf": _report_pdf,
    # Corrections (archive/corrections/): a study to correct, merge or move a series of.
    "archive:study_correct": _study,
    "archive:study_merge": _study,
    "archive:series_move": _study,
    # QIDO-RS and WADO-RS (archive/dicomweb/).
    **{f"archive:{name}": _dicomweb_instance for name in DICOMWEB_NAMES},
}

def _dicom_peer(victim):
    from archive.gateway.models import DicomPeer

    peer = DicomPeer.objects.for_tenant(victim).create(ae_title="VICTIMCT", description="Victim-secret-room")
    return {"peer_id": peer.pk}, ["VICTIMCT", "Victim-secret-room"]


SAMPLES["archive:dicom_peer_remove"] = _dicom_peer


def _share(victim):
    from archive.sharing.services import share_create
    from tenants.audit import Actor

    study = make_study(victim, name="Victimova^Shared", patient_id="VICTIM-SH-77", accession="VICTIM-SHACC-77")
    made = share_create(tenant=victim, study=study, actor=Actor.system("test"), access_code="12345678",
                        recipient_name="Victim-Referrer", recipient_email="victim-ref@victim.test")
    return {"share_id": made.share.pk}, ["Victim-Referrer", "victim-ref@victim.test", "VICTIM-SH-77"]


for _name in ("archive:share_revoke", "archive:share_extend", "archive:api_share"):
    SAMPLES[_name] = _share

# Retention and deletion URLs (archive/retention/).
from tests.archive.isolation_samples_retention import SAMPLES as _RETENTION  # noqa: E402

SAMPLES.update(_RETENTION)


def _export(victim):
    """A finished export of the victim clinic (the walker's clinic must get a 404 for it)."""
    import io
    import uuid

    from archive.download.models import ClinicExport
    from archive.storage.keys import active_data_key
    from cloudpacs.objectstore import crypto
    from cloudpacs.objectstore.objects import object_put

    content = b"VICTIM-EXPORT-77 (a zip would be here)"
    key = f"_exports/{victim.pk}/{uuid.uuid4().hex}"
    key_id, data_key = active_data_key(tenant=victim)
    object_put("primary", key, io.BytesIO(b"".join(crypto.encrypt_chunks(io.BytesIO(content), data_key=data_key,
                                                                       key_id=key_id))))
    from datetime import timedelta

    from django.utils import timezone

    export = ClinicExport.objects.for_tenant(victim).create(state=ClinicExport.READY, size_bytes=len(content),
                                                            storage_key=key, expires_at=timezone.now() + timedelta(days=1))
    return {"export_id": export.pk}, ["VICTIM-EXPORT-77"]


SAMPLES["archive:clinic_export_download"] = _export


def _correction(victim):
    from archive.corrections.models import Correction

    kwargs, secrets = _study(victim)
    made = Correction.objects.for_tenant(victim).create(kind="demographics", study_instance_uid="2.25.77",
                                                        before={"PatientName": "Victimova^Before"}, after={})
    return {"correction_id": made.pk}, [*secrets, "Victimova^Before"]


SAMPLES["archive:correction_revert"] = _correction
