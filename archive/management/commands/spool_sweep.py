"""Remove what crashed or killed processes left at rest: spool files of transfers that
ended without finishing, and tier-1 files no index row owns; seal tier-1 files still in
plaintext. Beat runs the same sweep hourly (archive.sweep_leftovers)."""

import json as _json

from django.core.management.base import BaseCommand

from archive.storage.leftovers import leftovers_sweep


class Command(BaseCommand):
    help = ("Remove spool files of ended transfers and tier-1 files no instance owns (older than "
            "TIER1_ORPHAN_GRACE_SECONDS); encrypt tier-1 files left in plaintext.")

    def add_arguments(self, parser):
        parser.add_argument("--grace-seconds", type=float, default=None,
                            help="age a tier-1 file without an instance must reach (default "
                                 "TIER1_ORPHAN_GRACE_SECONDS); use 0 only when no ingest is running")
        parser.add_argument("--spool-after-seconds", type=float, default=None,
                            help="age of a spool file outside any live process's folder (default "
                                 "SPOOL_SWEEP_AFTER_SECONDS)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, grace_seconds=None, spool_after_seconds=None, json=False, **options):
        result = leftovers_sweep(orphan_grace_seconds=grace_seconds, spool_after_seconds=spool_after_seconds)
        if json:
            self.stdout.write(_json.dumps(result.as_dict()))
            return
        self.stdout.write(f"spool files removed {result.spool_files}, tier-1 orphans removed "
                          f"{result.tier1_orphans}, tier-1 files sealed {result.tier1_sealed}, "
                          f"unknown tier-1 files kept {result.tier1_kept_unknown}")
