"""Remove browser uploads (and upload batches) left unfinished for UPLOAD_EXPIRY_HOURS.

Run it hourly (cron or Celery beat calling the same function)."""

from django.core.management.base import BaseCommand

from archive.upload.store import uploads_expire


class Command(BaseCommand):
    help = "Delete unfinished browser uploads older than UPLOAD_EXPIRY_HOURS (default 24)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=None, help="override the age limit")

    def handle(self, *args, hours=None, **options):
        removed = uploads_expire(older_than_hours=hours)
        self.stdout.write(f"removed {removed} upload files")
