"""Which code does each kind of outbox work. An app registers its handler when it is
loaded (its AppConfig.ready), so the outbox itself imports no app that uses it."""

from collections.abc import Callable

# A handler takes the row and advances its work: it returns True when the work is done,
# False when more steps are under way (they call `services.outbox_advance` again), and
# raises when this attempt failed (the row is retried).
Handler = Callable[["Outbox"], bool]  # noqa: F821

_handlers: dict[str, Handler] = {}


class UnknownKind(LookupError):
    pass


def register(kind: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        if _handlers.get(kind, handler) is not handler:
            raise ValueError(f"outbox kind {kind!r} has a handler already")
        _handlers[kind] = handler
        return handler
    return decorate


def handler_for(kind: str) -> Handler:
    try:
        return _handlers[kind]
    except KeyError:
        raise UnknownKind(f"no handler is registered for outbox kind {kind!r}") from None


def kinds() -> list[str]:
    return sorted(_handlers)
