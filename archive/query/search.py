"""A parsed query: its level, what it matches, what it returns, which page."""

from dataclasses import dataclass, field

from archive.query.attributes import INDEXED, Attr

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class SearchQuery:
    level: str
    filters: list[tuple[Attr, str]] = field(default_factory=list)
    include: set[str] = field(default_factory=set)  # tags asked for with includefield
    include_all: bool = False
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fuzzy: bool = False
    limit_clamped: bool = False
    unsupported: list[str] = field(default_factory=list)  # known, but not matchable here

    @property
    def needs_metadata(self) -> bool:
        """Whether some returned attribute must come from a stored header."""
        return self.include_all or any(t not in INDEXED for t in self.include)
