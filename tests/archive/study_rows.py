"""Study index rows without DICOM files, for worklist and API tests.

Ingest (tests/archive/test_services_ingest.py) is the real way in; these rows stand for
what it indexes, so that search tests can have many studies cheaply."""

from datetime import timedelta
from itertools import count

from django.utils import timezone

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Patient, Study
from tenants.audit import Actor
from tests.dicom_factory import make_ct_series, to_bytes

_uids = count(1)
FAMILY = ["SMITH", "JONES", "MÜLLER", "GARCÍA", "NGUYEN", "KOWALSKI", "ROSSI", "DUBOIS", "TANAKA", "OKAFOR"]
GIVEN = ["ANNA", "BEN", "CARLA", "DAVID", "EVA", "FRANK", "GRETA", "HUGO", "IDA", "JONAS"]
MODALITIES = ["CT", "MR", "CR\\SR", "US", "DX", "MG", "PT\\CT", "NM"]


def patient_for(tenant, patient_id: str, name: str = "DOE^JANE") -> Patient:
    patient, _ = Patient.objects.for_tenant(tenant).get_or_create(
        patient_id=patient_id, issuer_of_patient_id="", defaults={"patient_name": name})
    return patient


def make_study(tenant, *, name: str = "Doe^Jane", patient_id: str = "PID-1", study_date: str = "20240115",
               modalities: str = "CT", accession: str = "", referring: str = "", description: str = "",
               created_at=None, **fields) -> Study:
    patient = patient_for(tenant, patient_id, name)
    return Study.objects.for_tenant(tenant).create(
        patient=patient, study_instance_uid=f"2.25.{next(_uids)}",
        study_date=study_date, patient_name=name, patient_name_search=name.upper(),
        patient_identifier=patient_id, modalities=modalities, accession_number=accession,
        referring_physician_name=referring, study_description=description,
        created_at=created_at or timezone.now(), **fields)


def bulk_studies(tenant, n: int, *, batch: int = 5000, patients: int = 1000) -> None:
    """n studies over `patients` patients, names/dates/modalities varied deterministically."""
    pats = Patient.objects.for_tenant(tenant).bulk_create([
        Patient(tenant=tenant, patient_id=f"BULK{p:06d}",
                patient_name=f"{FAMILY[p % 10]}^{GIVEN[(p // 10) % 10]}{p:04d}") for p in range(patients)
    ], batch_size=batch)
    now = timezone.now()
    rows = []
    for i in range(n):
        patient = pats[i % patients]
        day = 1 + i % 28
        rows.append(Study(
            tenant=tenant, patient=patient, study_instance_uid=f"2.25.9{tenant.pk}{i:08d}",
            study_date=f"{2010 + i % 15}{1 + (i // 28) % 12:02d}{day:02d}", study_time="101500",
            accession_number=f"ACC{i:08d}", study_description="Bulk study",
            referring_physician_name=f"{FAMILY[(i // 7) % 10]}^REF",
            patient_name=patient.patient_name, patient_name_search=patient.patient_name.upper(),
            patient_identifier=patient.patient_id, modalities=MODALITIES[i % len(MODALITIES)],
            num_series=1, num_instances=10, size_bytes=5_000_000, created_at=now - timedelta(seconds=i),
        ))
        if len(rows) == batch:
            Study.objects.for_tenant(tenant).bulk_create(rows, batch_size=batch)
            rows = []
    if rows:
        Study.objects.for_tenant(tenant).bulk_create(rows, batch_size=batch)


def ingest_study(tenant, **kwargs) -> Study:
    """A real study through the one ingest path: a CT series of 3 and an MR series of 2."""
    ct = make_ct_series(3, patient_name="Doe^Jane", patient_id="MRN-42", accession="ACC-9",
                        study_date="20240131", **kwargs)
    mr = make_ct_series(2, study_uid=ct[0].StudyInstanceUID, patient_name="Doe^Jane", patient_id="MRN-42",
                        accession="ACC-9", study_date="20240131", modality="MR", seed=1)
    mr[0].SeriesDescription = mr[1].SeriesDescription = "T2 axial"
    for ds in ct + mr:
        result = instance_ingest(tenant=tenant, spooled=spool_chunks([to_bytes(ds)]), actor=Actor.system("test"))
        assert result.outcome == Outcome.STORED
    return Study.objects.for_tenant(tenant).get(study_instance_uid=ct[0].StudyInstanceUID)
