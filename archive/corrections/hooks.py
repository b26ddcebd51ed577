"""What other apps do when a correction merges one study into another, without the archive
importing them: billing counts the merged study once (registered in billing's AppConfig)."""

from collections.abc import Callable

MergedHook = Callable[..., None]
_merged: list[MergedHook] = []


def on_studies_merged(hook: MergedHook) -> MergedHook:
    if hook not in _merged:
        _merged.append(hook)
    return hook


def studies_merged(tenant, *, merged_uid: str, into_uid: str, actor) -> None:
    """Inside the correction's transaction: `merged_uid` is gone into `into_uid`."""
    for hook in _merged:
        hook(tenant, merged_uid=merged_uid, into_uid=into_uid, actor=actor)
