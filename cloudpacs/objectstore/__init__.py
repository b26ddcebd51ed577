"""The object stores below every app: the two regions, streaming object I/O in them, and
the master key that wraps every other key. It imports no app of the project, so the
clinics' audit anchors (tenants) and the archive's copies (archive.storage) both use it."""
