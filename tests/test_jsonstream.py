"""The streaming JSON reader: the same values as json.loads whatever the chunk size, the same errors with
their file:line, and memory bounded by the largest element rather than the file."""

import json
import tracemalloc
from decimal import Decimal

import pytest

from localdev.errors import BadInput
from localdev.jsonstream import JsonStream, iter_array

TRICKY = [
    {"s": "a]b}c,d", "q": 'say "hi" \\ back', "u": "ünï 😀 \u2028", "empty": "", "nested": [[], {}, [{"x": [1]}]]},
    "[{\"not\": \"json\"}]",
    12345678901234567890123,
    -0.5e-10,
    1.25,
    0,
    True,
    None,
    [1, [2, [3, [4]]]],
]


def write(tmp_path, text: str, name: str = "f.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 16])
@pytest.mark.parametrize("indent,ascii_only", [(None, True), (2, False)])
def test_elements_equal_json_loads_at_any_chunk_size(tmp_path, chunk_size, indent, ascii_only):
    text = json.dumps(TRICKY, indent=indent, ensure_ascii=ascii_only)
    path = write(tmp_path, text)
    got = list(iter_array(path, chunk_size=chunk_size))
    assert [value for _, value in got] == json.loads(text)
    if indent:  # each element's line is where it starts (lines end at \n only, as for json.loads)
        lines = text.split("\n")
        for line, value in got:
            assert lines[line - 1].strip().startswith(json.dumps(value, indent=indent, ensure_ascii=ascii_only)[0])


@pytest.mark.parametrize("chunk_size", range(1, 12))
def test_numbers_cut_by_the_chunk_boundary_are_read_whole(tmp_path, chunk_size):
    """"12" read before "3" arrives must not become 12: the value is decoded again after a refill."""
    text = "[1,22,333,4444,-5.5e+10,6E-7,0.25,123456789,1e2]"
    path = write(tmp_path, text)
    decoder = json.JSONDecoder(parse_float=Decimal)
    assert [v for _, v in iter_array(path, decoder, chunk_size=chunk_size)] == json.loads(text, parse_float=Decimal)


def test_a_syntax_error_deep_in_the_file_names_its_line_and_column(tmp_path):
    lines = ["["] + [json.dumps({"i": i, "pad": "x" * (i % 40)}) + "," for i in range(3000)] + ['  {"b": ]', "]"]
    path = write(tmp_path, "\n".join(lines))
    for chunk_size in (1, 5, 4096, 1 << 16):
        with pytest.raises(BadInput) as err:
            list(iter_array(path, chunk_size=chunk_size))
        assert str(err.value) == f"{path}:3002: invalid JSON: Expecting value (column 9)"


@pytest.mark.parametrize("text,problem", [
    ('[1, 2,\n]', ":2: invalid JSON: Expecting value (column 1)"),
    ('[1 2]', ":1: invalid JSON: Expecting ',' delimiter (column 4)"),
    ('[{"a": 1}]\n[]', ":2: invalid JSON: Extra data (column 1)"),
    ('[\n"never closed]', ":2: invalid JSON: Unterminated string starting at (column 1)"),
    ('[tru]', ":1: invalid JSON: Expecting value (column 2)"),
    ('{"a": 1}', ":1: expected a JSON array"),
    ('', ":1: expected a JSON array"),
])
def test_errors_are_file_line_problem(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as err:
        list(iter_array(path, chunk_size=2))
    assert str(err.value) == f"{path}{problem}"


def test_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b'["ok", "\xc3\xa9", "\xff"]')
    with pytest.raises(BadInput, match=r"f.json: not UTF-8 text \(invalid start byte at byte 14\)"):
        list(iter_array(path, chunk_size=3))


def test_a_hook_refusing_an_object_is_bad_input_at_the_element_line(tmp_path):
    def hook(obj):
        if "bad" in obj:
            raise ValueError("no bad keys")
        return obj

    path = write(tmp_path, '[{"a": 1},\n\n {"x": {"bad": 1}}]')
    with pytest.raises(BadInput, match=r"f.json:3: no bad keys"):
        list(iter_array(path, json.JSONDecoder(object_hook=hook), chunk_size=4))


def test_members_stream_one_key_and_decode_another_in_any_order(tmp_path):
    path = write(tmp_path, '{"items": [{"n": 1},\n{"n": 2}],\n "table": {"TableName": "t"}}')
    seen = []
    with JsonStream(path, chunk_size=3) as stream:
        for key, line in stream.members():
            if key == "items":
                seen += [(line, n, item["n"]) for n, item in stream.array()]
            else:
                seen.append((line, key, stream.value()))
        stream.end()
    assert seen == [(1, 1, 1), (1, 2, 2), (3, "table", {"TableName": "t"})]


def test_memory_stays_far_below_the_file_size(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({"pk": f"item-{i:06d}", "n": i, "price": i / 100, "note": "x" * 80})
                                     for i in range(50_000)) + "\n]\n")
    size = path.stat().st_size
    assert size > 5_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_array(path, json.JSONDecoder(parse_float=Decimal)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < size / 4, f"peak {peak} bytes for a {size}-byte file"
