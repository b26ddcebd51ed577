"""`manage.py upgrade_data_keys`: re-wrap data keys written before keys were bound to the
clinic's uuid, and replace their key documents in both regions. Run it once after the
upgrade, while clinics still have their ids: a later restore then matches every key by
uuid rather than by the slug an old key document records. Safe to run again."""

from django.core.management.base import BaseCommand

from archive.storage.keys import data_keys_upgrade
from cloudpacs.objectstore.regions import REGIONS


class Command(BaseCommand):
    help = "Bind old-format data keys to their clinic's uuid, in the database and both regions."

    def handle(self, *args, **options):
        upgraded = data_keys_upgrade(REGIONS)
        self.stdout.write(self.style.SUCCESS(f"upgraded {upgraded} data key(s)"))
