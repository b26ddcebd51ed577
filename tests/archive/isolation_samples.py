"""Samples for tests/test_isolation_walker.py: a real object of the victim clinic for each
archive URL name with parameters. A factory returns (URL kwargs, secrets that must never
appear in another clinic's responses)."""

from tests.archive.study_rows import make_study


def _study(victim):
    study = make_study(victim, name="Victimova^Secreta", patient_id="VICTIM-PID-77",
                       accession="VICTIM-ACC-77", referring="Leaky^Doctor")
    return {"pk": study.pk}, ["Victimova", "VICTIM-PID-77", "VICTIM-ACC-77", study.study_instance_uid]


SAMPLES = {
    # Worklist/study page and the clinic REST API (archive/views/, archive/api/).
    "archive:study": _study,
    "archive:api_study_detail": _study,
    "archive:api_study_storage": _study,
}
