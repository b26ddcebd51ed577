"""The STOW-RS parse process (archive.ingest.parse_ahead): same answers as parsing in the
web worker, the file's SHA-256, refusals carried back as values, the caller's limits
applied, and a parse process that dies is replaced without losing the instance or the web
worker."""

import hashlib
import os
import signal
import time

import pytest

from archive.ingest import errors, parse_ahead
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance, parse_instance
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import wait_for


@pytest.fixture
def ct_file(tmp_path):
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(make_ct_series(1, 32, 32)[0]))
    return path


def test_parsed_in_another_process_same_as_here(ct_file):
    parsing = parse_ahead.ParseAhead()
    parsing.submit(ct_file)
    prepared = parsing.result(ct_file)
    assert isinstance(prepared.outcome, ParsedInstance)
    assert prepared.outcome == parse_instance(ct_file)
    assert prepared.sha256 == hashlib.sha256(ct_file.read_bytes()).hexdigest()
    pool = parse_ahead._pool_get()
    assert os.getpid() not in {p.pid for p in pool._processes.values()}
    assert pool.submit(os.getpid).result() != os.getpid()


def test_refusal_comes_back_with_its_code(tmp_path):
    path = tmp_path / "not.dcm"
    path.write_bytes(b"plain text, not DICOM" * 20)
    parsing = parse_ahead.ParseAhead()
    parsing.submit(path)
    refused = parsing.result(path).outcome
    assert isinstance(refused, InvalidInstance)
    assert refused.code == errors.CANNOT_UNDERSTAND and "not a DICOM file" in refused.reason


def test_the_callers_inflate_limit_is_used(tmp_path, settings):
    """The parse process does not see this process's settings: the limit travels along."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = make_ct_series(1, 64, 64)[0]
    path = tmp_path / "deflated.dcm"
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    settings.INGEST_MAX_INFLATED_BYTES = 1000
    parsing = parse_ahead.ParseAhead()
    parsing.submit(path)
    refused = parsing.result(path).outcome
    assert isinstance(refused, InvalidInstance) and refused.code == errors.OUT_OF_RESOURCES


def test_a_killed_parse_process_is_replaced(ct_file):
    pool = parse_ahead._pool_get()
    pool.submit(time.sleep, 60)  # keeps the only parse process busy: ours waits behind it
    parsing = parse_ahead.ParseAhead()
    parsing.submit(ct_file)
    for process in list(pool._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
    assert isinstance(parsing.result(ct_file).outcome, ParsedInstance)  # parsed again in a new pool
    assert parse_ahead._pool_get() is not pool
    wait_for(lambda: pool._broken, timeout=10, what="the old pool to be marked broken")


def test_without_parse_processes_parses_on_this_thread(ct_file, settings):
    settings.INGEST_PARSE_PROCESSES = 0
    parsing = parse_ahead.ParseAhead()
    parsing.submit(ct_file)
    assert parsing.result(ct_file).outcome == parse_instance(ct_file)
    assert not parsing._futures


def test_files_not_started_are_parsed_here_from_the_back(tmp_path, monkeypatch):
    """results(): with the parse process busy, this thread parses the waiting files. Up to
    two may already sit in the pool's call queue (max_workers + 1 deep), where they can no
    longer be taken."""
    paths = []
    for n, ds in enumerate(make_ct_series(6, 16, 16)):
        paths.append(tmp_path / f"{n}.dcm")
        paths[-1].write_bytes(to_bytes(ds))
    pool = parse_ahead._pool_get()
    pool.submit(time.sleep, 1)
    parsing = parse_ahead.ParseAhead()
    for path in paths:
        parsing.submit(path)
    here = []
    parse = parse_ahead.parse_outcome  # called by prepare(); the parse process has its own copy
    monkeypatch.setattr(parse_ahead, "parse_outcome", lambda path, **kw: here.append(path) or parse(path, **kw))
    prepared = parsing.results(paths)
    assert len(here) >= len(paths) - 2
    assert here == paths[::-1][:len(here)]  # last first
    assert [p.outcome.sop_uid for p in prepared] == [parse_instance(p).sop_uid for p in paths]
    assert [p.sha256 for p in prepared] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
