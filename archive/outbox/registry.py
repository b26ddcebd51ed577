"""Which code does each kind of outbox work. An app registers its handler when it is
loaded (its AppConfig.ready), so the outbox itself imports no app that uses it."""

from collections.abc import Callable

# A handler takes one row and advances its work: it returns True when the work is done,
# False when more steps are under way (they call `services.outbox_advance` again), and
# raises when this attempt failed (the row is retried).
Handler = Callable[["Outbox"], bool]  # noqa: F821
# A batch handler takes the rows of one message at once (so it can load and record their
# state in a few queries) and answers per row id: True, False, or the exception that
# stopped that row.
BatchHandler = Callable[[list["Outbox"]], dict[int, "bool | Exception"]]  # noqa: F821

_handlers: dict[str, Handler] = {}
_batch_handlers: dict[str, BatchHandler] = {}


class UnknownKind(LookupError):
    pass


def register(kind: str, *, batch: bool = False) -> Callable:
    def decorate(handler):
        if (_handlers.get(kind) or _batch_handlers.get(kind) or handler) is not handler:
            raise ValueError(f"outbox kind {kind!r} has a handler already")
        (_batch_handlers if batch else _handlers)[kind] = handler
        return handler
    return decorate


def _one_by_one(handler: Handler) -> BatchHandler:
    def run(rows):
        results = {}
        for row in rows:
            try:
                results[row.pk] = handler(row)
            except Exception as exc:  # noqa: BLE001 - answered for this row alone
                results[row.pk] = exc
        return results
    return run


def handler_for(kind: str) -> BatchHandler:
    """The kind's handler, as a batch handler whatever way it was registered."""
    if kind in _batch_handlers:
        return _batch_handlers[kind]
    try:
        return _one_by_one(_handlers[kind])
    except KeyError:
        raise UnknownKind(f"no handler is registered for outbox kind {kind!r}") from None


def kinds() -> list[str]:
    return sorted({*_handlers, *_batch_handlers})
