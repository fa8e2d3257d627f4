"""Pure logic of exports (no services): checksums, manifests, the archive's checks, value conversions."""

from __future__ import annotations

import io
import json
import tarfile
from decimal import Decimal

import pytest

from localdev.errors import BadInput
from localdev.exports import FORMAT_VERSION, Digest, JsonArrayWriter, check, unpack, write_archive


def test_digest_is_order_independent_and_separates_parts():
    a, b = Digest(), Digest()
    for x in ("one", "two", "three"):
        a.add("row", x)
    for x in ("three", "one", "two"):
        b.add("row", x)
    assert a.hexdigest() == b.hexdigest() and a.count == 3
    c, d = Digest(), Digest()
    c.add("ab", "c")
    d.add("a", "bc")
    assert c.hexdigest() != d.hexdigest()
    e = Digest()
    e.add("row", "one")
    e.add("row", "one")
    assert e.hexdigest() != Digest().hexdigest()  # a duplicate counts


def test_json_array_writer_puts_one_element_per_line():
    buf = io.StringIO()
    w = JsonArrayWriter(buf)
    for v in ({"a": 1}, [2], "x"):
        w.add(json.dumps(v))
    w.close()
    assert json.loads(buf.getvalue()) == [{"a": 1}, [2], "x"]
    assert buf.getvalue().splitlines()[1] == '{"a": 1},'
    empty = io.StringIO()
    JsonArrayWriter(empty).close()
    assert json.loads(empty.getvalue()) == []


def _export_folder(tmp_path, version=FORMAT_VERSION):
    folder = tmp_path / "export"
    (folder / "seeds" / "redis").mkdir(parents=True)
    keys = folder / "seeds" / "redis" / "keys.json"
    keys.write_text('[{"key": "a", "type": "string", "value": "b"}]\n')
    import hashlib

    manifest = {"format_version": version, "services": {"redis": {"counts": {"keys": 1}, "checksum": "x"}},
                "files": {"seeds/redis/keys.json": hashlib.sha256(keys.read_bytes()).hexdigest()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("compress", [True, False])
def test_an_archive_round_trips_and_its_damage_is_bad_input(tmp_path, compress):
    folder = _export_folder(tmp_path)
    archive = tmp_path / "a.tar"
    with open(archive, "wb") as fh:
        write_archive(folder, fh, compress)
    assert unpack(archive, tmp_path / "out", "a.tar")["services"]["redis"]["counts"] == {"keys": 1}
    data = archive.read_bytes()
    # cut inside a header, inside the manifest, inside a file's data (a cut in the final padding leaves every
    # file whole and checked: that archive is complete)
    cuts = (len(data) // 2, len(data) - 8) if compress else (100, 700, 2100, 2570)
    for cut in cuts:
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(BadInput, match="cut off|missing|no manifest"):
            unpack(tmp_path / "cut.tar", tmp_path / f"cut-{cut}", "cut.tar")


def test_the_manifest_checks(tmp_path):
    folder = _export_folder(tmp_path)
    assert check(folder, "x")["format_version"] == FORMAT_VERSION
    (folder / "seeds" / "redis" / "keys.json").write_text("[]\n")
    with pytest.raises(BadInput, match="does not match its SHA-256"):
        check(folder, "x")
    newer = _export_folder(tmp_path / "n", version=FORMAT_VERSION + 1)
    with pytest.raises(BadInput, match="newer localdev"):
        check(newer, "x")
    extra = _export_folder(tmp_path / "e")
    (extra / "seeds" / "redis" / "more.json").write_text("[]")
    with pytest.raises(BadInput, match="not in the manifest"):
        check(extra, "x")


def test_unsafe_members_are_refused(tmp_path):
    for name, kind in (("../up", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE), ("seeds/l", tarfile.SYMTYPE),
                       ("seeds/h", tarfile.LNKTYPE)):
        archive = tmp_path / "bad.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        with pytest.raises(BadInput, match="outside its folder|not a file or a folder"):
            unpack(archive, tmp_path / "dest", "bad.tar")


def test_dynamodb_items_become_plain_json_or_dynamodb_json_and_read_back_exactly(tmp_path):
    from boto3.dynamodb.types import TypeSerializer

    from localdev.services.dynamodb.export import _normal, _plain_item
    from localdev.services.dynamodb.seeds import TableFixture, _checked_item

    item = {"id": {"B": b"\x00\x01"}, "n": {"N": "12.50"}, "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    assert json.loads(_plain_item(item, {"id": "B"})) == {"id": "AAE=", "n": 12.5, "m": {"l": [True, None]}}
    assert '"n":12.50' in _plain_item(item, {"id": "B"})  # the number's text as stored
    assert _normal({"a": {"NS": ["2", "1.0"]}, "b": {"N": "1.50"}}) == {"a": {"NS": ["1", "2"]}, "b": {"N": "1.5"}}

    fx = TableFixture(path=tmp_path / "t.json", table={}, types={"id": "B"}, keys=["id"])
    serialize = TypeSerializer().serialize
    odd = [{"id": {"B": b"1"}, "tags": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\xff", b"x"]},
            "blob": {"B": b"\x00"}, "deep": {"M": {"l": {"L": [{"SS": ["z"]}, {"N": "3"}]}}}},
           {"id": {"B": b"2"}, "$dynamodb": {"S": "beside another attribute: plain JSON is not ambiguous"}}]
    for typed in odd:
        line = _plain_item(typed, {"id": "B"})
        assert list(json.loads(line)) == (["$dynamodb"] if typed is odd[0] else ["id", "$dynamodb"])
        back = _checked_item(fx, json.loads(line, parse_float=Decimal), "t.json:1: item 1")
        assert _normal({k: serialize(v) for k, v in back.items()}) == _normal(typed)
    # an item whose one attribute is named $dynamodb (its key) would read as the typed form: written typed
    lone = {"$dynamodb": {"S": "k"}}
    assert json.loads(_plain_item(lone, {"$dynamodb": "S"})) == {"$dynamodb": lone}
    fx = TableFixture(path=tmp_path / "t.json", table={}, types={"$dynamodb": "S"}, keys=["$dynamodb"])
    assert _checked_item(fx, json.loads(_plain_item(lone, {"$dynamodb": "S"})), "w") == {"$dynamodb": "k"}


@pytest.mark.parametrize("typed, message", [
    ({"id": {"S": "a"}, "x": {"SS": []}}, "attribute 'x': SS needs a non-empty list"),
    ({"id": {"S": "a"}, "x": {"SS": ["a", "a"]}}, "members that differ"),
    ({"id": {"S": "a"}, "x": {"NS": [1]}}, "numbers written as strings"),
    ({"id": {"S": "a"}, "x": {"B": "not base64!"}}, "B needs base64 text"),
    ({"id": {"S": "a"}, "x": {"Q": 1}}, "expected one of S, N, B"),
    ({"id": {"S": "a"}, "x": {"M": {"y": {"L": [{"S": 1}]}}}}, r"attribute 'x'\.y\[0\]: S needs a string"),
    ({"id": {"N": "1"}}, "attribute 'id' must be of type S"),
    ({"x": {"S": "a"}}, "key attribute 'id' is missing"),
    ([], "must hold an item in DynamoDB's JSON"),
])
def test_bad_dynamodb_json_items_are_refused_by_attribute(tmp_path, typed, message):
    from localdev.services.dynamodb.seeds import TableFixture, _checked_item

    fx = TableFixture(path=tmp_path / "t.json", table={}, types={"id": "S"}, keys=["id"])
    with pytest.raises(BadInput, match=rf"^t.json:3: item 2: .*{message}"):
        _checked_item(fx, {"$dynamodb": typed}, "t.json:3: item 2")


def test_object_keys_that_are_no_file_path_are_refused(tmp_path):
    from localdev.services.aws.export import _target

    assert _target(tmp_path, "b", "a/b.txt") == tmp_path / "a" / "b.txt"
    (tmp_path / "a" / "b.txt").write_text("x")
    for key in ("a/b.txt", "a/b.txt/c", "x//y", "./x", "../x", ".hidden", "dir/"):
        with pytest.raises(BadInput):
            _target(tmp_path, "b", key)


def test_pg_dump_restrict_lines_are_skipped_only_between_statements():
    from localdev.services.postgres.sqlscript import statements

    lines = ["\\restrict K3y\n", "SELECT 1;\n", "COPY t (a) FROM stdin;\n", "\\restrict K3y\n", "\\.\n",
             "\\unrestrict K3y\n"]
    seen = []
    for st in statements(lines):
        seen.append((st.sql, list(st.copy_rows) if st.copy_rows is not None else None))
    # a \restrict line inside COPY data is data; outside statements it is skipped
    assert seen == [("SELECT 1;", None), ("COPY t (a) FROM stdin;", ["\\restrict K3y\n"])]


def test_a_backup_index_is_checked(tmp_path):
    from localdev.backups import read_index

    with pytest.raises(BadInput, match="not a localdev backup"):
        read_index(tmp_path)
    (tmp_path / "backup.json").write_text(json.dumps({"format_version": 1, "tokens": [], "namespaces": [
        {"name": "a", "archive": "../../etc/passwd", "sha256": "0", "secrets": {}}]}))
    with pytest.raises(BadInput, match="outside the backup"):
        read_index(tmp_path)
    (tmp_path / "backup.json").write_text(json.dumps({"format_version": 9, "tokens": [], "namespaces": []}))
    with pytest.raises(BadInput, match="newer localdev"):
        read_index(tmp_path)


def test_a_compressed_stream_is_read_in_bounded_memory_across_frames():
    import tracemalloc

    import zstandard

    from localdev.exports import _Unzstd

    zeros = 64 << 20  # ~2 KB compressed: what one call of the decompressor would have returned at once
    stream = zstandard.ZstdCompressor().compress(b"\0" * zeros) + zstandard.ZstdCompressor().compress(b"tail")
    reader, total, last = _Unzstd(io.BytesIO(stream)), 0, b""
    tracemalloc.start()
    try:
        while chunk := reader.read(10240):
            total, last = total + len(chunk), chunk
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (total, last[-4:]) == (zeros + 4, b"tail")
    assert peak < 6 << 20, f"reading held {peak >> 20} MiB"
    with pytest.raises(EOFError):
        _Unzstd(io.BytesIO(stream[:-3])).read()
