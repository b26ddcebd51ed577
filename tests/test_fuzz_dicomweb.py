"""Fuzzing the DICOMweb routes (hypothesis): whatever a client sends, the answer is never a
5xx, and a refused STOW leaves no spool file behind.

In-process through Django's test client (which re-raises a view's exception, so a crash
fails the test even before its 500 is looked at), with a clinic's API token. Streamed
bodies are read to the end, so an error half-way through a multipart answer counts too.
Deterministic (derandomize) and bounded (max_examples): the whole file runs in well under
a minute. A failure prints the request hypothesis shrank it to; add that as an example.
"""

import io
from urllib.parse import quote, urlencode

import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archive.query.attributes import INDEXED
from tests.archive.dicomweb_data import bearer, bundled, ingest, ingest_datasets
from tests.archive.stow_helpers import files_under, multipart, private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture
def archive(tenant, make_token, private_dirs):  # noqa: F811
    """A clinic with a small CT series (one image with a nested bulk value) and a
    compressed two-frame instance stored."""
    series = make_ct_series(2, 8, 8)
    series[1].add_new(0x00400275, "SQ", [pydicom.Dataset()])  # RequestAttributesSequence
    series[1].RequestAttributesSequence[0].add_new(0x00091010, "OB", bytes(2000))
    ingest_datasets(tenant, series)
    rle = bundled("SC_rgb_rle_2frame.dcm")
    ingest(tenant, rle)
    instances = [(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                 for ds in [*series, pydicom.dcmread(io.BytesIO(rle), stop_before_pixels=True)]]
    return {"tenant": tenant, "token": make_token(tenant, scopes=("upload", "read")),
            "instances": instances, "dicom": to_bytes(make_ct_series(1, 4, 4)[0]),
            "settings": private_dirs}


def send(client, archive, method: str, path: str, query: list[tuple[str, str]] = (), *,
         headers: dict | None = None, body: bytes = b"", content_type: str = "") -> int:
    url = f"/t/{archive['tenant'].slug}/dicomweb/{path}"
    if query:
        url += "?" + urlencode(list(query))
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
    response = client.generic(method, url, body, content_type=content_type, **bearer(archive["token"]),
                              **extra)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code < 500, (method, url, headers, content[:300])
    return response.status_code


# ---- generated pieces -------------------------------------------------------------------

# Text a client could put anywhere: printable and odd (controls, NUL, non-Latin), no
# surrogates (not encodable, so never on the wire).
odd_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
digits = st.text("0123456789", min_size=1, max_size=40)
uid_like = st.one_of(
    st.from_regex(r"\A[0-9][0-9.]{0,70}\Z"),
    st.lists(st.integers(0, 10**40), min_size=1, max_size=6).map(lambda xs: ".".join(map(str, xs))),
    odd_text)

KEYWORDS = sorted({"PatientName", "PatientID", "StudyDate", "StudyTime", "AccessionNumber",
                   "ModalitiesInStudy", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                   "SeriesNumber", "InstanceNumber", "Modality", "ReferringPhysicianName",
                   "PatientBirthDate", "Rows", "NumberOfFrames", "PatientComments", "PixelData",
                   "00400275.00400009", "00100010.00100020", "RequestAttributesSequence"})
attribute_name = st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(sorted(INDEXED)),
                           st.from_regex(r"\A[0-9A-Fa-f]{8}\Z"), odd_text)
date = st.from_regex(r"\A\d{8}\Z")
attribute_value = st.one_of(
    odd_text, digits, date, uid_like,
    st.tuples(st.one_of(date, st.just(""), odd_text), st.one_of(date, st.just(""), odd_text)).map("-".join),
    st.from_regex(r"\A[A-Za-z*?%_\\^=, ]{0,12}\Z"),  # wildcards, PN groups, lists
    st.lists(uid_like, max_size=4).map(",".join), st.lists(uid_like, max_size=4).map("\\".join))
paging_value = st.one_of(digits, st.integers(-10, 10**40).map(str), odd_text,
                         st.sampled_from(["", "0", "1000", "1001", str(2**31 - 1), str(2**31), str(2**63)]))
control_param = st.one_of(
    st.tuples(st.sampled_from(["limit", "offset"]), paging_value),
    st.tuples(st.just("includefield"),
              st.one_of(st.just("all"), st.lists(attribute_name, max_size=3).map(",".join))),
    st.tuples(st.just("fuzzymatching"), st.one_of(st.sampled_from(["true", "false", "TRUE"]), odd_text)),
    st.tuples(st.sampled_from(["orderby", "emptyvaluematching", "_"]), odd_text))
query_params = st.lists(st.one_of(st.tuples(attribute_name, attribute_value), control_param), max_size=6)

TRANSFER_SYNTAXES = ["*", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                     "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]
MEDIA = ["application/dicom", "application/octet-stream", "image/jpeg", "image/png", "image/jp2",
         "image/jls", "image/dicom-rle", "image/*", "*/*", "*", "application/dicom+json",
         "application/json", "text/html"]
media_range = st.builds(
    lambda outer, inner, ts, q, junk: "; ".join(
        x for x in [outer if outer else inner,
                    f'type="{inner}"' if outer else "",
                    f"transfer-syntax={ts}" if ts else "", f"q={q}" if q else "", junk] if x),
    st.sampled_from(["multipart/related", "multipart/*", ""]), st.sampled_from(MEDIA),
    st.one_of(st.none(), st.sampled_from(TRANSFER_SYNTAXES), odd_text),
    st.one_of(st.none(), st.sampled_from(["0", "0.5", "1", "1.0", "x", "-1", "1e9"])),
    st.one_of(st.just(""), odd_text.filter(lambda s: "," not in s)))
# Header values go out as latin-1 text: keep to what a real client can put on the wire.
latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
accept_header = st.one_of(st.lists(media_range, min_size=1, max_size=3).map(", ".join),
                          st.text(latin1, max_size=60))


# Mostly GET; the others must be refused cleanly (405, or STOW's answers on a study path).
methods = st.sampled_from(["GET"] * 8 + ["HEAD", "OPTIONS", "POST", "DELETE", "PUT", "PATCH"])

# ---- QIDO-RS -----------------------------------------------------------------------------

@settings(FUZZ, max_examples=250)
@given(data=st.data(), params=query_params)
@example(data=None, params=[("offset", "9" * 30)])
@example(data=None, params=[("limit", "9" * 30)])
@example(data=None, params=[("PatientID", "\x00")])
@example(data=None, params=[("StudyInstanceUID", "1." + "1" * 80)])
@example(data=None, params=[("StudyDate", "-")])
def test_qido_never_5xx(client, archive, data, params):
    study, series, _ = archive["instances"][0]
    paths = ["studies", "series", "instances", f"studies/{study}/series", f"studies/{study}/instances",
             f"studies/{study}/series/{series}/instances"]
    path, method, accept = "studies", "GET", None
    if data is not None:
        path = data.draw(st.sampled_from(paths), label="path")
        method = data.draw(methods, label="method")
        accept = data.draw(st.one_of(st.none(), accept_header), label="accept")
    send(client, archive, method, path, params, headers={"Accept": accept} if accept is not None else None)


# ---- WADO-RS -----------------------------------------------------------------------------

def _segment(value: str) -> str:
    return quote(value, safe="")


@settings(FUZZ, max_examples=250)
@given(data=st.data(), accept=st.one_of(st.none(), accept_header))
@example(data=None, accept=None)
def test_wado_never_5xx(client, archive, data, accept):
    if data is None:  # the reported case: a bulkdata path through pixel data
        study, series, sop = archive["instances"][0]
        path = f"studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010/0/0010"
        send(client, archive, "GET", path)
        return
    uids = data.draw(st.sampled_from(archive["instances"]), label="instance")
    if data.draw(st.integers(0, 4), label="fuzz uids") == 0:  # mostly stored ones: reach the views
        uids = [data.draw(st.one_of(st.just(real), uid_like), label=f"uid{n}") for n, real in enumerate(uids)]
    study, series, sop = (_segment(u) for u in uids)
    instance = f"studies/{study}/series/{series}/instances/{sop}"
    frame_list = st.one_of(st.lists(st.integers(-3, 5).map(str), min_size=1, max_size=4).map(",".join),
                           odd_text.map(_segment).filter(bool))
    tag_path = st.one_of(
        st.sampled_from(["7FE00010", "7fe00010", "7FE00010/0/0010", "7FE00010/", "00100010",
                         "00400275/0/00091010", "00080018/0", "FFFFFFFF", "123456789"]),
        st.lists(st.one_of(st.from_regex(r"\A[0-9A-Fa-f]{8}\Z"), digits, odd_text.map(_segment)),
                 min_size=1, max_size=5).map("/".join).filter(lambda p: p.strip("/")))
    rest = data.draw(st.one_of(
        st.sampled_from([f"studies/{study}", f"studies/{study}/series/{series}", instance,
                         f"studies/{study}/metadata", f"studies/{study}/series/{series}/metadata",
                         f"{instance}/metadata", f"{instance}/rendered", f"{instance}/thumbnail",
                         f"studies/{study}/thumbnail", f"studies/{study}/series/{series}/thumbnail"]),
        frame_list.map(lambda f: f"{instance}/frames/{f}"),
        frame_list.map(lambda f: f"{instance}/frames/{f}/rendered"),
        tag_path.map(lambda p: f"{instance}/bulkdata/{p}")), label="path")
    query = data.draw(st.lists(st.tuples(st.sampled_from(["quality", "viewport", "window", "annotation",
                                                          "charset", "accept"]), odd_text), max_size=2))
    send(client, archive, data.draw(methods, label="method"), rest, query,
         headers={"Accept": accept} if accept is not None else None)


# ---- STOW-RS -----------------------------------------------------------------------------

boundary = st.one_of(st.from_regex(r"\A[0-9A-Za-z'()+_,\-./:=?]{1,70}\Z"), st.text(latin1, max_size=80))
content_type = st.one_of(
    st.builds(lambda t, b, extra: "; ".join(x for x in ["multipart/related", t, b, extra] if x),
              st.one_of(st.just(""), st.sampled_from(['type="application/dicom"', "type=application/dicom",
                                                      'type="application/dicom+json"', "type="])),
              st.one_of(st.just(""), boundary.map(lambda b: f'boundary="{b}"'), boundary.map("boundary={}".format)),
              st.one_of(st.just(""), st.text(latin1, max_size=20))),
    st.sampled_from(["", "application/dicom", "multipart/form-data; boundary=x", "text/plain"]),
    st.text(latin1, max_size=60))


@settings(FUZZ, max_examples=120)
@given(data=st.data(), ctype=content_type)
@example(data=None, ctype="multipart/related; type=\"application/dicom\"")
@example(data=None, ctype="multipart/related; type=\"application/dicom\"; boundary=" + "b" * 71)
def test_stow_never_5xx_and_leaves_no_spool_file(client, archive, data, ctype):
    if data is None:
        body = b"--x\r\n\r\n--x--\r\n"
        study = None
    else:
        # Parts: a real instance, its first bytes, noise; with the header's boundary, or another.
        parts = data.draw(st.lists(st.one_of(
            st.just(archive["dicom"]), st.integers(0, 400).map(lambda n: archive["dicom"][:n]),
            st.binary(max_size=300),
            st.tuples(st.one_of(st.none(), st.sampled_from(["application/dicom", "text/plain"]), odd_text),
                      st.just(archive["dicom"]))), max_size=3), label="parts")
        sep = data.draw(st.one_of(st.just(ctype.partition("boundary=")[2].strip('"')), boundary), label="sep")
        close = data.draw(st.booleans(), label="close")
        body = data.draw(st.one_of(st.just(multipart(parts, boundary=sep or "x", close=close)[0]),
                                   st.binary(max_size=400)), label="body")
        study = data.draw(st.one_of(st.none(), uid_like.map(_segment).filter(bool)), label="study")
    status = send(client, archive, "POST", "studies" + (f"/{study}" if study else ""),
                  body=body, content_type=ctype)
    assert files_under(archive["settings"].INGEST_TMP_DIR) == [], status
