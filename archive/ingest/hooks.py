"""What other apps add to ingest without the archive importing them (billing is the first).

- `on_new_studies`: called inside the ingest transaction with the study rows that
  transaction created (never for a study that was there already, never on a restore);
  answers outbox work to commit with them, as (kind, subject ids) pairs, which ingest
  writes in the same statement as its own outbox rows. A hook may give the same work for
  one study as one SQL statement too (`statement`), answering the ids of the outbox rows
  it writes, sent with a new one-image study's rows in their round trip (new_study.py).
- `on_admission`: asked before a door accepts an upload for a clinic; answers a reason to
  refuse (shown to the sender) or None.

Apps register in their AppConfig.ready."""

from collections.abc import Callable

NewStudiesHook = Callable[[object, list], list[tuple[str, list[int]]]]
NewStudyStatement = Callable[[object, object], tuple[str, list]]
AdmissionHook = Callable[[object], str | None]

_new_studies: list[NewStudiesHook] = []
_statements: dict[NewStudiesHook, NewStudyStatement] = {}
_admission: list[AdmissionHook] = []


def on_new_studies(hook: NewStudiesHook, statement: NewStudyStatement | None = None) -> NewStudiesHook:
    if hook not in _new_studies:
        _new_studies.append(hook)
    if statement is not None:
        _statements[hook] = statement
    return hook


def on_admission(hook: AdmissionHook) -> AdmissionHook:
    if hook not in _admission:
        _admission.append(hook)
    return hook


def new_studies_work(tenant, studies: list) -> list[tuple[str, list[int]]]:
    """The outbox work every hook asks for the studies one ingest transaction created."""
    work = []
    for hook in _new_studies:
        work.extend(hook(tenant, studies))
    return work


def new_study_statements(tenant, study) -> list[tuple[str, list]] | None:
    """Every hook's work for one new study (its row's key set, not yet written) as
    statements, or None when a hook has no statement form."""
    if any(hook not in _statements for hook in _new_studies):
        return None
    return [_statements[hook](tenant, study) for hook in _new_studies]


def upload_refusal(tenant) -> str | None:
    """Why this clinic may not upload now, or None (uploads go on)."""
    for hook in _admission:
        reason = hook(tenant)
        if reason:
            return reason
    return None
