"""The data the bench sends, generated once per run. Every round starts both servers
fresh, so each round can send the same instances again without being a re-send."""

import shutil
import tempfile
import uuid
from functools import cached_property
from pathlib import Path

from bench.dicomweb import multipart_body
from tests.dicom_factory import make_ct_series, to_bytes

NAMES = ["Smith^Anna", "Jones^Peter", "Müller^Jürgen", "Garcia^Maria", "Chen^Wei", "Brown^Tom"]


def ct_series_bytes(slices: int, seed: int = 1) -> tuple[str, str, list[bytes]]:
    """A `slices`-slice 512x512 CT series: (study UID, series UID, instances)."""
    datasets = make_ct_series(slices, 512, 512, patient_name="Bench^Patient", seed=seed)
    return datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID, [to_bytes(ds) for ds in datasets]


def one_instance_studies(count: int, size: int, first: int = 0) -> list[bytes]:
    """`count` studies of one CT slice each (`size`² pixels), with patients, accession
    numbers and study dates spread for QIDO's searches. The pixels of one slice serve all:
    generating a phantom per study would take longer than sending it."""
    template = make_ct_series(1, size, size, seed=0)[0]
    out = []
    for i in range(first, first + count):
        ds = make_ct_series(1, 1, 1, patient_name=f"{NAMES[i % len(NAMES)]}{i}", patient_id=f"P{i:06d}",
                            accession=f"A{i:07d}", study_date=f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
                            seed=i)[0]
        ds.Rows, ds.Columns, ds.PixelData = template.Rows, template.Columns, template.PixelData
        out.append(to_bytes(ds))
    return out


def batches(parts: list[bytes], size: int) -> list[list[bytes]]:
    return [parts[i:i + size] for i in range(0, len(parts), size)]


class BodyFiles:
    """STOW-RS bodies written to files once, for curl to send (`--data-binary @file`)."""

    def __init__(self, parts: list[bytes], batch: int):
        self.boundary = uuid.uuid4().hex
        self.folder = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
        self.paths = []
        for i, chunk in enumerate(batches(parts, batch)):
            path = self.folder / f"{i:05d}.multipart"
            path.write_bytes(b"".join(multipart_body(chunk, self.boundary)))
            self.paths.append(path)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class InstanceFiles:
    """Instances written to files once, for storescu to send."""

    def __init__(self, parts: list[bytes]):
        self.folder = Path(tempfile.mkdtemp(prefix="bench-cstore-"))
        self.paths = []
        for i, part in enumerate(parts):
            path = self.folder / f"{i:05d}.dcm"
            path.write_bytes(part)
            self.paths.append(path)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Corpus:
    """Everything the selected workloads send, each part generated on first use."""

    def __init__(self, slices: int, single_studies: int, qido_studies: int):
        self.slices, self.n_single, self.n_qido = slices, single_studies, qido_studies

    @cached_property
    def ct(self) -> tuple[str, str, list[bytes]]:
        return ct_series_bytes(self.slices)

    def ct_studies(self, count: int) -> list[tuple[str, str, list[bytes]]]:
        """`count` CT studies sharing the CT's slices between them (as many bytes in all)."""
        return [ct_series_bytes(self.slices // count, seed=100 + i) for i in range(count)]

    @cached_property
    def single_studies(self) -> list[bytes]:
        return one_instance_studies(self.n_single, 512)

    @cached_property
    def qido_studies(self) -> list[bytes]:
        """Small (8x8) instances: QIDO is about how many studies there are, not their size."""
        return one_instance_studies(self.n_qido, 8)
