"""What other apps add to ingest without the archive importing them (billing is the first).

- `on_new_studies`: called inside the ingest transaction with the study rows that
  transaction created (never for a study that was there already, never on a restore);
  answers outbox work to commit with them, as (kind, subject ids) pairs, which ingest
  writes in the same statement as its own outbox rows.
- `on_admission`: asked before a door accepts an upload for a clinic; answers a reason to
  refuse (shown to the sender) or None.

Apps register in their AppConfig.ready."""

from collections.abc import Callable

NewStudiesHook = Callable[[object, list], list[tuple[str, list[int]]]]
AdmissionHook = Callable[[object], str | None]

_new_studies: list[NewStudiesHook] = []
_admission: list[AdmissionHook] = []


def on_new_studies(hook: NewStudiesHook) -> NewStudiesHook:
    if hook not in _new_studies:
        _new_studies.append(hook)
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


def upload_refusal(tenant) -> str | None:
    """Why this clinic may not upload now, or None (uploads go on)."""
    for hook in _admission:
        reason = hook(tenant)
        if reason:
            return reason
    return None
