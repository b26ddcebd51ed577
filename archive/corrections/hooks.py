"""What other apps do when a correction merges one study into another (or a revert parts them
again), without the archive importing them: billing counts the merged study once, and the
parted ones each once again (registered in billing's AppConfig)."""

from collections.abc import Callable

MergedHook = Callable[..., None]
_merged: list[MergedHook] = []
_unmerged: list[MergedHook] = []


def on_studies_merged(hook: MergedHook) -> MergedHook:
    if hook not in _merged:
        _merged.append(hook)
    return hook


def studies_merged(tenant, *, merged_uid: str, into_uid: str, actor) -> None:
    """Inside the correction's transaction: `merged_uid` is gone into `into_uid`."""
    for hook in _merged:
        hook(tenant, merged_uid=merged_uid, into_uid=into_uid, actor=actor)


def on_studies_unmerged(hook: MergedHook) -> MergedHook:
    if hook not in _unmerged:
        _unmerged.append(hook)
    return hook


def studies_unmerged(tenant, *, study_uid: str, actor) -> None:
    """Inside a revert's transaction: `study_uid`, merged away before, is a study again."""
    for hook in _unmerged:
        hook(tenant, study_uid=study_uid, actor=actor)
