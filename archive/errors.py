"""What the archive's reads raise when a clinic has no such object. Each door turns it into
its own answer (an HTTP 404, a DIMSE status); another clinic's object is "no such object"."""


class NotFound(LookupError):
    """No such object in this clinic."""


class StudyNotFound(NotFound):
    pass


class SeriesNotFound(NotFound):
    pass


class InstanceNotFound(NotFound):
    pass
