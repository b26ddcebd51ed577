"""Reading a header with non-conforming values leaves none of them in logs or warnings."""

import logging
import warnings

from pydicom.dataset import Dataset

from tests.dicom_factory import make_ct_series, to_bytes


def test_non_conforming_values_are_not_quoted_in_logs(tmp_path, caplog, db):
    from archive.ingest.parse import parse_instance

    [ds] = make_ct_series(1)
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.secret<uid>"  # not a valid UI value
    ds.ReferencedImageSequence = [item]
    ds.PatientBirthDate = "notadate-SECRET"  # not a valid DA value
    path = tmp_path / "odd.dcm"
    path.write_bytes(to_bytes(ds))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        try:
            parse_instance(path)
        except Exception:  # refused or not, what matters is what was logged
            pass
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not [line for line in said if "SECRET" in line or "secret<uid>" in line], said
