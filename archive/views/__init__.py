"""Server-rendered pages of the archive (worklist, study page)."""
