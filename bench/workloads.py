"""What the bench asks of each server, one fresh server per round.

An ingest workload is timed from its first request to two points: acknowledged (the
client has its last success) and done (CloudPACS: every instance verified in both
regions; Orthanc has no second region, so it is done when it has acknowledged). The CPU
of the server's whole process tree is counted over that span, and its summed RSS sampled
throughout."""

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field

import requests

from bench import data, dicomweb
from bench.proctree import PeakMemory, cpu_used

CT_BATCH = 30          # instances per STOW-RS body of the CT series
STUDIES_PER_BODY = 100  # 1-instance studies per STOW-RS body
QIDO_QUERIES = 200
QIDO_STAGES = (1000, 10000)
PARALLEL_ASSOCIATIONS = 4  # C-STORE senders at once (issue 13: four modalities)
ONE_EACH_INSTANCES = 60  # C-STORE with one association per image, as many modalities send


def measure_ingest(server, send, instances: int) -> dict:
    """Run `send(server)` and measure it until acknowledged and until done."""
    baseline = server.stored_instances()
    cpu_before, infra_before = server.tree.cpu_seconds(), server.infrastructure.cpu_seconds()
    with PeakMemory(server.tree) as memory:
        started = time.perf_counter()
        send(server)
        acknowledged = time.perf_counter() - started
        server.wait_archived(baseline + instances)
        done = time.perf_counter() - started
        cpu = cpu_used(cpu_before, server.tree.cpu_seconds())
        infra = cpu_used(infra_before, server.infrastructure.cpu_seconds())
    return {
        "instances": instances,
        "acknowledged_s": acknowledged,
        "acknowledged_per_s": instances / acknowledged,
        "done_s": done,
        "done_per_s": instances / done,
        "cpu_ms_per_instance": sum(cpu.values()) / instances * 1000,
        **{f"cpu_ms_per_instance_{role}": seconds / instances * 1000 for role, seconds in cpu.items()},
        **{f"infrastructure_cpu_ms_per_instance_{role}": s / instances * 1000 for role, s in infra.items()},
        "peak_memory_mb": memory.peak_mb,
        "peak_pss_mb": memory.peak_pss_mb,
    }


def storescu_command(server, paths, calling_ae: str = "STORESCU") -> tuple[list[str], dict]:
    """dcmtk's storescu sending the files over one association: (its arguments, its
    environment, TCP_NODELAY set)."""
    return (["storescu", "-aet", calling_ae, "-aec", server.ae_title, "127.0.0.1", str(server.dicom_port),
             *map(str, paths)], {**os.environ, "TCP_NODELAY": "1"})


def storescu(server, paths) -> None:
    args, env = storescu_command(server, paths)
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=3600)


def stow_kept_alive(server, parts: list[bytes], batch: int) -> None:
    for chunk in data.batches(parts, batch):
        dicomweb.stow(server.session, server.base_url, chunk, server.headers)


def post_bytes(url: str, parts: list[bytes], headers: dict) -> None:
    """One STOW-RS body as bytes (with its Content-Length) on a connection of its own."""
    boundary = "warmup"
    response = requests.post(f"{url}/studies", data=b"".join(dicomweb.multipart_body(parts, boundary)),
                             headers={**headers, "Accept": "application/dicom+json",
                                      "Content-Type": f'multipart/related; type="application/dicom"; '
                                                      f'boundary={boundary}'}, timeout=300)
    response.raise_for_status()


class WarmUp:
    """Untimed first requests to a fresh server, so that first-use imports, connections
    and caches are not timed: one instance per new connection a few times (so each web
    worker likely gets one), one association, then (CloudPACS) until that is archived."""

    def __init__(self):
        self.parts = data.one_instance_studies(5, 512, first=900_000)
        self.files = data.InstanceFiles(self.parts[-1:])

    def __call__(self, server) -> None:
        for part in self.parts[:-1]:
            post_bytes(server.base_url, [part], server.headers)
        storescu(server, self.files.paths)
        server.wait_archived(len(self.parts), timeout=300)
        time.sleep(1)  # the last task's bookkeeping, then an idle server

    def remove(self) -> None:
        self.files.remove()


@dataclass
class Workload:
    key: str
    title: str
    measures: list = field(default_factory=list)
    # Environment CloudPACS is started with for this workload (Orthanc has no counterpart).
    cloudpacs_env: dict = field(default_factory=dict)

    def prepare(self, corpus) -> None:
        """Generate the data (once; every round sends the same to fresh servers)."""

    def measure(self, server) -> dict:
        raise NotImplementedError

    def remove(self) -> None:
        """Delete what `prepare` wrote to disk."""


class StowNewConnections(Workload):
    def __init__(self, key, title, expect_100: bool):
        super().__init__(key, title)
        self.expect_100 = expect_100

    def prepare(self, corpus) -> None:
        self.instances = len(corpus.ct[2])
        self.bodies = data.BodyFiles(corpus.ct[2], CT_BATCH)

    def measure(self, server) -> dict:
        def send(server):
            for path in self.bodies.paths:
                dicomweb.stow_curl(server.base_url, path, self.bodies.boundary, server.headers, self.expect_100)
        return measure_ingest(server, send, self.instances)

    def remove(self) -> None:
        self.bodies.remove()


class StowKeptAlive(Workload):
    def __init__(self, key, title, batch: int, source: str):
        super().__init__(key, title)
        self.batch, self.source = batch, source

    def prepare(self, corpus) -> None:
        self.parts = corpus.ct[2] if self.source == "ct" else corpus.single_studies

    def measure(self, server) -> dict:
        return measure_ingest(server, lambda s: stow_kept_alive(s, self.parts, self.batch), len(self.parts))


class CStore(Workload):
    def prepare(self, corpus) -> None:
        self.files = data.InstanceFiles(corpus.ct[2])

    def measure(self, server) -> dict:
        return measure_ingest(server, lambda s: storescu(s, self.files.paths), len(self.files.paths))

    def remove(self) -> None:
        self.files.remove()


class CStoreOneEach(Workload):
    """A modality that opens an association for every image (many X-ray, ultrasound and
    older devices do): storescu run once per instance, one after the other."""

    def prepare(self, corpus) -> None:
        self.files = data.InstanceFiles(corpus.ct[2][:ONE_EACH_INSTANCES])

    def measure(self, server) -> dict:
        def send(server):
            for path in self.files.paths:
                storescu(server, [path])
        return measure_ingest(server, send, len(self.files.paths))

    def remove(self) -> None:
        self.files.remove()


class CStoreParallel(Workload):
    """Modalities sending at once: PARALLEL_ASSOCIATIONS studies of a quarter of the CT's
    slices each, every study over its own association (its own storescu), all started
    together; acknowledged when the last has its last success."""

    def prepare(self, corpus) -> None:
        self.files = [data.InstanceFiles(parts) for _, _, parts in corpus.ct_studies(PARALLEL_ASSOCIATIONS)]

    def measure(self, server) -> dict:
        def send(server):
            commands = [storescu_command(server, files.paths, f"STORESCU{i}") for i, files in enumerate(self.files)]
            senders = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
                       for args, env in commands]
            said = [sender.communicate(timeout=3600)[0] for sender in senders]
            for sender, output in zip(senders, said, strict=True):
                if sender.returncode:
                    raise RuntimeError(f"storescu exited {sender.returncode}: "
                                       f"{output.decode(errors='replace')[-500:]}")
        return measure_ingest(server, send, sum(len(files.paths) for files in self.files))

    def remove(self) -> None:
        for files in self.files:
            files.remove()


WADO_READS = 5


class WadoSeries(Workload):
    """The CT series stored (untimed, and for CloudPACS archived: the read is measured on
    an idle server), then read back whole as stored by requests and by curl, five times each."""

    def prepare(self, corpus) -> None:
        self.study, self.series, self.parts = corpus.ct

    def measure(self, server) -> dict:
        baseline = server.stored_instances()
        stow_kept_alive(server, self.parts, CT_BATCH)
        server.wait_archived(baseline + len(self.parts))
        # A read takes a tenth of a second: each client reads WADO_READS times per round,
        # taking turns, and the round's figure is their median (one read swung 0.7-1.3x).
        by_requests, by_curl = [], []
        for _ in range(WADO_READS):
            started = time.perf_counter()
            size = dicomweb.wado_series_bytes(requests.Session(), server.base_url, self.study, self.series,
                                              server.headers)
            by_requests.append(size / (time.perf_counter() - started) / 1e6)
            curl_size, seconds = dicomweb.wado_series_curl(server.base_url, self.study, self.series,
                                                           server.headers)
            by_curl.append(curl_size / seconds / 1e6)
        return {"mb": size / 1e6, "requests_mb_per_s": statistics.median(by_requests),
                "curl_mb_per_s": statistics.median(by_curl)}


def qido_latencies(server, count: int, queries: int = QIDO_QUERIES) -> dict:
    """Study searches as a worklist or viewer sends them, over `count` stored studies."""
    session = requests.Session()
    cases = [
        lambda i: {"PatientID": f"P{(i * 37) % count:06d}"},
        lambda i: {"PatientName": f"{['smith', 'jones', 'chen'][i % 3]}*", "limit": "25"},
        lambda i: {"StudyDate": f"20{10 + i % 15:02d}0101-20{10 + i % 15:02d}0131", "limit": "25"},
        lambda i: {"AccessionNumber": f"A{(i * 91) % count:07d}"},
    ]
    timings = sorted(dicomweb.qido_ms(session, server.base_url, cases[i % len(cases)](i), server.headers)[0]
                     for i in range(queries))
    return {"p50_ms": statistics.median(timings), "p95_ms": timings[int(len(timings) * 0.95)]}


class QidoAfterLoading(Workload):
    """1-instance studies loaded in bodies of 100 up to each stage (1,000, then 10,000),
    and QIDO-RS measured right after each load, without waiting for CloudPACS's worker to
    archive what was just loaded. How much it still had to do then (the backlog) is
    recorded with the figures: a worker that keeps pace with ingest leaves none."""

    def prepare(self, corpus) -> None:
        self.studies = corpus.qido_studies
        self.stages = [s for s in QIDO_STAGES if s < len(self.studies)] + [len(self.studies)]

    def measure(self, server) -> dict:
        result, loaded = {}, 0
        with PeakMemory(server.tree) as memory:
            for stage in self.stages:
                started = time.perf_counter()
                stow_kept_alive(server, self.studies[loaded:stage], STUDIES_PER_BODY)
                result[f"load_{stage}_per_s"] = (stage - loaded) / (time.perf_counter() - started)
                loaded = stage
                for name, value in qido_latencies(server, stage).items():
                    result[f"{name}_{stage}"] = value
                if server.progress:
                    result[f"backlog_{stage}"] = server.progress.now().unverified
                server.check_running()  # "while the worker archives" only holds if it still runs
        result["peak_memory_mb"] = memory.peak_mb
        result["peak_pss_mb"] = memory.peak_pss_mb
        return result


def all_workloads(args) -> list[Workload]:
    n_single = args.single_studies
    return [
        StowNewConnections("stow-curl", f"STOW-RS, {args.slices}-slice 512² CT, {CT_BATCH} per body, "
                                        "a new connection per body with Content-Length (curl"
                                        + (", `Expect: 100-continue`)" if args.curl_expect_100 else ")"),
                           args.curl_expect_100),
        StowKeptAlive("stow-keepalive", f"STOW-RS, {args.slices}-slice 512² CT, {CT_BATCH} per body, "
                                        "one kept-alive connection, chunked (as dicomweb-client)", CT_BATCH, "ct"),
        StowKeptAlive("single-100", f"STOW-RS, {n_single} studies of one 512² CT slice, {STUDIES_PER_BODY} "
                                    "per body, one kept-alive connection, chunked", STUDIES_PER_BODY, "single"),
        StowKeptAlive("single-1", f"STOW-RS, {n_single} studies of one 512² CT slice, one per request, "
                                  "one kept-alive connection, chunked", 1, "single"),
        _in_primary_mode(StowNewConnections(
            "stow-curl-primary", "STOW-RS as stow-curl, CloudPACS with INGEST_DURABILITY=primary (acknowledged "
                                 "once the primary region holds the copy)", args.curl_expect_100)),
        _in_primary_mode(StowKeptAlive(
            "single-1-primary", "STOW-RS as single-1, CloudPACS with INGEST_DURABILITY=primary", 1, "single")),
        CStore("cstore", f"C-STORE, {args.slices}-slice 512² CT over one association (dcmtk storescu)"),
        CStoreParallel("cstore-4", f"C-STORE, {PARALLEL_ASSOCIATIONS} CT studies of {args.slices // PARALLEL_ASSOCIATIONS}"
                                   " 512² slices, each over its own association, all at once (dcmtk storescu)"),
        CStoreOneEach("cstore-each", f"C-STORE, {min(ONE_EACH_INSTANCES, args.slices)} slices of the CT, a new association "
                                     "for each (dcmtk storescu run once per image)"),
        WadoSeries("wado", f"WADO-RS series retrieve of the {args.slices}-slice CT (transfer-syntax=*), "
                           "after it is archived"),
        QidoAfterLoading("qido", "QIDO-RS study search right after loading 1-instance studies (not waiting "
                                   "for the archive pipeline)"),
    ]


def _in_primary_mode(workload: Workload) -> Workload:
    """The workload with each acknowledgement waiting for the primary region's copy (the
    bench's regions are local folders on the same disk: an extra write and flush per
    instance, where an S3 region adds a round trip)."""
    workload.cloudpacs_env = {"INGEST_DURABILITY": "primary"}
    return workload
