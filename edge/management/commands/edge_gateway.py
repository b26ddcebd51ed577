"""`manage.py edge_gateway`: the on-site gateway (edge/). Runs with no database server; its
state is its spool folder.

    edge_gateway --cloud URL --token TOKEN --port 11112 --spool DIR   receive and upload
    edge_gateway status --spool DIR [--json]                         the queue, from the spool
    edge_gateway migrate --source AE@HOST:PORT [--since YYYYMMDD] --cloud URL --token TOKEN --spool DIR
                                                                     the old archive, study by study
"""

import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from edge.spool import Spool, SpoolBusy
from edge.state import EdgeState, snapshot
from edge.status_page import start_status_page
from edge.uploader import Uploader

STALE_INCOMING_SECONDS = 600  # a data set not written to for this long was abandoned mid-transfer


class Command(BaseCommand):
    help = ("Run the on-site edge gateway: C-STORE from the clinic's modalities into a durable spool, "
            "uploaded to the clinic's cloud archive by STOW-RS. `edge_gateway status --spool DIR` "
            "shows its queue.")

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", default="run", choices=["run", "status", "migrate"])
        parser.add_argument("--spool", required=True, help="the spool folder (the gateway's only state)")
        parser.add_argument("--cloud", help="the clinic's DICOMweb root, e.g. https://pacs.example.org/t/acme/dicomweb")
        parser.add_argument("--token", help="a clinic API token with the upload scope (or CLOUDPACS_EDGE_TOKEN)")
        parser.add_argument("--host", default=settings.DICOM_HOST,
                            help="address to receive DICOM on (the clinic network's, e.g. 0.0.0.0)")
        parser.add_argument("--port", type=int, default=None,
                            help="DICOM port (run: 11112 unless given; migrate: modalities may send meanwhile "
                                 "when given)")
        parser.add_argument("--ae-title", default="CLOUDPACS_EDGE")
        parser.add_argument("--allow-ae", action="append", default=[], metavar="AE_TITLE",
                            help="accept only these calling AE titles (repeat it); default: any on the network")
        parser.add_argument("--status-host", default="127.0.0.1")
        parser.add_argument("--status-port", type=int, default=11180, help="the local status page; 0: none")
        parser.add_argument("--batch-instances", type=int, default=50)
        parser.add_argument("--batch-mb", type=int, default=64)
        parser.add_argument("--max-backoff", type=float, default=300, help="longest wait between retries, seconds")
        parser.add_argument("--json", action="store_true", help="status: as JSON")
        parser.add_argument("--source", help="migrate: the old PACS, AE@HOST:PORT (it must allow our C-FIND and C-GET)")
        parser.add_argument("--since", default="", help="migrate: studies from this date on, YYYYMMDD")

    def handle(self, *args, action, spool, **options):
        if action == "status":
            return self.status(Path(spool), as_json=options["json"])
        if action == "migrate":
            return self.migrate(Path(spool), **options)
        return self.run(Path(spool), **options)

    def _start(self, root: Path, cloud, token, batch_instances, batch_mb, max_backoff):
        token = token or os.environ.get("CLOUDPACS_EDGE_TOKEN", "")
        if not cloud or not token:
            raise CommandError("give --cloud URL and --token TOKEN (or CLOUDPACS_EDGE_TOKEN)")
        if not cloud.startswith(("https://", "http://")):
            raise CommandError("--cloud is the clinic's DICOMweb root URL, https://…/t/<clinic>/dicomweb")
        if cloud.startswith("http://") and urlsplit(cloud).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError("--cloud must be https:// (images and the token would cross the network in clear)")
        spool = Spool(root, token)
        try:
            spool.lock()
        except SpoolBusy as exc:
            raise CommandError(str(exc)) from exc
        left = spool.sweep()
        state = EdgeState(spool)
        uploader = Uploader(spool, state, cloud_url=cloud, token=token, batch_instances=batch_instances,
                            batch_bytes=batch_mb << 20, max_backoff=max_backoff)
        uploader.start()
        return spool, state, uploader, token, left

    def migrate(self, root: Path, *, source, since, cloud, token, host, port, ae_title, allow_ae, batch_instances,
                batch_mb, max_backoff, **_):
        from edge.migrate import Migration, SourceError, parse_source, report
        from edge.receiver import receive_to_spool, start_receiver

        if not source:
            raise CommandError("give --source AE@HOST:PORT, the old PACS")
        try:
            parse_source(source)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if since and not (len(since) == 8 and since.isdigit()):
            raise CommandError("--since is a date, YYYYMMDD")
        spool, state, uploader, token, _ = self._start(root, cloud, token, batch_instances, batch_mb, max_backoff)
        receive_to_spool(spool)
        # The clinic keeps scanning during a migration of days: its modalities still send here.
        receiver = start_receiver(spool, state, host=host, port=port, ae_title=ae_title,
                                  on_spooled=uploader.wake.set, allowed=allow_ae) if port else None
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        migration = Migration(spool, state, source=source, cloud_url=cloud, token=token, calling_ae=ae_title,
                              since=since, write=lambda line: (self.stdout.write(line), self.stdout.flush()),
                              wake=uploader.wake.set)
        try:
            progress = migration.run(stopping)
        except SourceError as exc:
            raise CommandError(f"the old PACS: {exc}") from exc
        finally:
            if receiver:
                receiver.shutdown()
            uploader.stop()
            uploader.join(30)
            state.stopped()
        self.stdout.write(report(progress))
        if progress.failed:
            raise CommandError(f"{len(progress.failed)} studies failed: run migrate again to retry them")

    def status(self, root: Path, *, as_json: bool) -> None:
        if not (root / "queue").is_dir():
            raise CommandError(f"{root} is not an edge gateway spool")
        status = snapshot(root)
        if as_json:
            self.stdout.write(json.dumps(status, indent=2))
            return
        oldest = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["oldest_queued_at"])) \
            if status["oldest_queued_at"] else "-"
        self.stdout.write(
            f"running:   {'yes' if status['running'] else 'no'}\n"
            f"queued:    {status['queued']} instances, {status['bytes']} bytes\n"
            f"oldest:    {oldest}\n"
            f"rejected:  {status['rejected']} (kept in {root / 'rejected'})\n"
            f"last sent: {time.ctime(status['last_sent_at']) if status.get('last_sent_at') else '-'}\n"
            f"last error: {status.get('last_error') or '-'}")

    def run(self, root: Path, *, cloud, token, host, port, ae_title, allow_ae, status_host, status_port,
            batch_instances, batch_mb, max_backoff, **_):
        from edge.receiver import start_receiver

        spool, state, uploader, token, left = self._start(root, cloud, token, batch_instances, batch_mb,
                                                          max_backoff)
        port = port or 11112
        receiver = start_receiver(spool, state, host=host, port=port, ae_title=ae_title,
                                  on_spooled=uploader.wake.set, allowed=allow_ae)
        status_server = start_status_page(root, status_host, status_port) if status_port else None
        self.stdout.write(f"edge gateway: DICOM on {host}:{port} as {ae_title}, spool {root}"
                          f"{f' (removed {left} unfinished files)' if left else ''}, uploading to {cloud}"
                          + (f", status on http://{status_host}:{status_port}/" if status_server else ""))
        self.stdout.flush()
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        try:
            while not stopping.wait(60):
                _remove_abandoned(spool.incoming)
        finally:
            receiver.shutdown()
            uploader.stop()
            uploader.join(30)
            if status_server:
                status_server.shutdown()
            state.stopped()


def _remove_abandoned(folder: Path) -> None:
    """Data sets a peer stopped sending mid-transfer (pynetdicom leaves them)."""
    cutoff = time.time() - STALE_INCOMING_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            continue
