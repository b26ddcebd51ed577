"""Browser upload: tus 1.0 resumable uploads of files and zips, ingested through the one
ingest path (archive.ingest.service.instance_ingest)."""
