"""Reading sources: good files, globs, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from opsloop.data import dataset_version, ensure_time_column, read_source, resolve_source
from opsloop.data.ingest import _UTF8_CHUNK
from opsloop.errors import DataError


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def test_reads_csv_with_inferred_types(tmp_path: Path) -> None:
    write(tmp_path / "d.csv", "id,when,ok,fee,name\n1,2024-01-02,true,1.5,a\n2,,false,,\n")
    df = read_source("d.csv", base_dir=tmp_path)
    assert list(df.columns) == ["id", "when", "ok", "fee", "name"]
    assert df["id"].tolist() == [1, 2]
    assert pd.api.types.is_datetime64_any_dtype(df["when"])
    assert df["ok"].tolist() == [True, False]
    assert df["fee"].isna().tolist() == [False, True]
    assert df["name"].isna().tolist() == [False, True]


def test_reads_gzip_csv_and_parquet(tmp_path: Path, customers: pd.DataFrame) -> None:
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(customers.to_csv(index=False).encode()))
    customers.to_parquet(tmp_path / "c.parquet")
    customers.to_parquet(tmp_path / "c.pq")
    from_gz = read_source("c.csv.gz", base_dir=tmp_path)
    from_parquet = read_source("c.parquet", base_dir=tmp_path)
    assert from_gz.shape == from_parquet.shape == customers.shape
    assert from_gz["email"].tolist() == from_parquet["email"].tolist()
    assert read_source(str(tmp_path / "c.pq"), base_dir=Path("/")).shape == customers.shape


def test_parquet_index_named_kept_unnamed_dropped(tmp_path: Path, customers: pd.DataFrame) -> None:
    customers.set_index("customer_id").to_parquet(tmp_path / "named.parquet")
    customers[customers["churned"]].to_parquet(tmp_path / "filtered.parquet")
    named = read_source("named.parquet", base_dir=tmp_path)
    assert named.columns[0] == "customer_id"
    assert named.index.equals(pd.RangeIndex(len(customers)))
    filtered = read_source("filtered.parquet", base_dir=tmp_path)
    assert list(filtered.columns) == list(customers.columns)
    assert filtered.index.equals(pd.RangeIndex(int(customers["churned"].sum())))


def test_glob_concatenates_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "data" / "b.csv", "id,v\n3,\n4,\n")  # all-empty column fits any type
    write(tmp_path / "data" / "a.csv", "id,v\n1,1\n2,2\n")
    pd.DataFrame({"v": [5.5], "id": [5]}).to_parquet(tmp_path / "data" / "c.parquet")
    df = read_source("data/*", base_dir=tmp_path)
    assert df["id"].tolist() == [1, 2, 3, 4, 5]
    assert df["v"].tolist()[:2] == [1.0, 2.0]
    assert df["v"].iloc[-1] == 5.5
    files = resolve_source("data/*", base_dir=tmp_path)
    assert [f.name for f in files] == ["a.csv", "b.csv", "c.parquet"]


def test_glob_with_mismatched_types_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "p" / "1.csv", "id,plan\n1,basic\n")
    write(tmp_path / "p" / "2.csv", "id,plan\n2,3\n")
    with pytest.raises(DataError) as caught:
        read_source("p/*.csv", base_dir=tmp_path)
    message = str(caught.value)
    assert "p/1.csv" in message and "p/2.csv" in message and "'plan'" in message


def test_glob_with_missing_column_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "p" / "1.csv", "id,plan\n1,basic\n")
    write(tmp_path / "p" / "2.csv", "id\n2\n")
    with pytest.raises(DataError, match=r"column 'plan' is in p/1.csv but not in p/2.csv"):
        read_source("p/*.csv", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("missing.csv", r"missing.csv: file does not exist"),
        ("nothing/*.csv", r"no files match 'nothing/\*.csv'"),
        ("data", r"data: is a directory"),
        ("notes.txt", r"notes.txt: unsupported file type"),
    ],
)
def test_bad_source_paths(tmp_path: Path, source: str, pattern: str) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match=pattern):
        read_source(source, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("empty.csv", b"", r"empty.csv: file is empty"),
        ("blank.csv", b"\n  \n", r"blank.csv: file is empty"),
        ("empty.parquet", b"", r"empty.parquet: file is empty"),
        ("empty.csv.gz", gzip.compress(b"", mtime=0), r"empty.csv.gz: file is empty"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, content: bytes, pattern: str) -> None:
    write(tmp_path / name, content)
    with pytest.raises(DataError, match=pattern):
        read_source(name, base_dir=tmp_path)


def test_header_only_csv_is_an_empty_table(tmp_path: Path) -> None:
    write(tmp_path / "h.csv", "a,b\n")
    df = read_source("h.csv", base_dir=tmp_path)
    assert list(df.columns) == ["a", "b"]
    assert len(df) == 0


def test_not_utf8_names_byte_offset_and_line(tmp_path: Path) -> None:
    write(tmp_path / "latin.csv", b"id,city\n1,Paris\n2,Montr" + b"\xe9al\n")
    with pytest.raises(DataError) as caught:
        read_source("latin.csv", base_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith("latin.csv: not valid UTF-8 at byte offset 23 (line 3)")
    assert "0xe9" in message


def test_not_utf8_past_first_chunk(tmp_path: Path) -> None:
    # The file is validated in chunks; put a two-byte character across the first chunk
    # border and the bad byte after it, so the offset arithmetic is exercised.
    head = b"id,name\n"
    filler_rows = (_UTF8_CHUNK - len(head) - 1) // 8
    body = head + b"1,abcde\n" * filler_rows
    body += b"x" * (_UTF8_CHUNK - len(body) - 1)
    body += "ë\n".encode()  # starts on the last byte of the first chunk
    bad_at = len(body) + 2
    body += b"2," + b"\xff\n"
    write(tmp_path / "x.csv", body)
    line = body.count(b"\n", 0, bad_at) + 1
    with pytest.raises(DataError, match=rf"byte offset {bad_at} \(line {line}\)"):
        read_source("x.csv", base_dir=tmp_path)


def test_utf8_with_bom_and_multibyte_reads(tmp_path: Path) -> None:
    write(tmp_path / "u.csv", "\ufeffid,name\n1,Zoë\n2,東京\n")
    df = read_source("u.csv", base_dir=tmp_path)
    assert list(df.columns) == ["id", "name"]
    assert df["name"].tolist() == ["Zoë", "東京"]


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("a,b,c\n1,2,3\n4,5\n6,7,8\n", r"r.csv: line 3: expected 3 fields, found 2"),
        ("a,b,c\n1,2,3\n4,5,6,7\n", r"r.csv: line 3: expected 3 fields, found 4"),
        ('a,b\n1,"x\n2\n', r"r.csv: line 2: not valid CSV: a quoted field .* never closed"),
    ],
)
def test_ragged_and_broken_csv(tmp_path: Path, content: str, pattern: str) -> None:
    write(tmp_path / "r.csv", content)
    with pytest.raises(DataError, match=pattern):
        read_source("r.csv", base_dir=tmp_path)


def test_ragged_row_far_down_a_large_file(tmp_path: Path) -> None:
    lines = ["a,b,c", *(f"{i},{i},x{i}" for i in range(100_000))]
    lines.insert(80_001, "1,2")
    write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big.csv: line 80002: expected 3 fields, found 2"):
        read_source("big.csv", base_dir=tmp_path)


def test_quoted_newlines_and_stray_quotes_are_fine(tmp_path: Path) -> None:
    write(tmp_path / "q.csv", 'a,b\n1,"two\nlines"\n2,5" wide\n')
    df = read_source("q.csv", base_dir=tmp_path)
    assert df["b"].tolist() == ["two\nlines", '5" wide']


def test_binary_file_named_csv(tmp_path: Path, customers: pd.DataFrame) -> None:
    customers.to_parquet(tmp_path / "real.parquet")
    write(tmp_path / "fake.csv", (tmp_path / "real.parquet").read_bytes())
    with pytest.raises(DataError, match=r"fake.csv: not a valid CSV text file: NUL byte .*Parquet"):
        read_source("fake.csv", base_dir=tmp_path)


def test_duplicate_header_column(tmp_path: Path) -> None:
    write(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"d.csv: line 1: column 'a' appears more than once"):
        read_source("d.csv", base_dir=tmp_path)


def test_invalid_gzip(tmp_path: Path) -> None:
    write(tmp_path / "g.csv.gz", b"this is not gzip at all")
    with pytest.raises(DataError, match=r"g.csv.gz: not a valid gzip file"):
        read_source("g.csv.gz", base_dir=tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"id,name\n1,a\n", b"PAR1 garbage in the middle PAR1", b"PAR1" + b"\x00" * 64],
)
def test_invalid_parquet_bytes(tmp_path: Path, content: bytes) -> None:
    write(tmp_path / "bad.parquet", content)
    with pytest.raises(DataError, match=r"bad.parquet: not a valid Parquet file"):
        read_source("bad.parquet", base_dir=tmp_path)


def test_truncated_parquet(tmp_path: Path, customers: pd.DataFrame) -> None:
    customers.to_parquet(tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    write(tmp_path / "cut.parquet", data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.parquet: not a valid Parquet file"):
        read_source("cut.parquet", base_dir=tmp_path)


def test_type_change_after_first_block_is_read_as_text(tmp_path: Path) -> None:
    # Arrow infers types from the first block (1 MiB); a later non-number must not fail.
    rows = [f"{i},{i * 3}" for i in range(150_000)] + ["150000,n/a-ish"]
    write(tmp_path / "late.csv", "id,v\n" + "\n".join(rows) + "\n")
    assert (tmp_path / "late.csv").stat().st_size > 1 << 20
    df = read_source("late.csv", base_dir=tmp_path)
    assert len(df) == 150_001
    assert df["v"].iloc[-1] == "n/a-ish"
    assert df["v"].iloc[0] == "0"


def test_dataset_version_records_files(tmp_path: Path, customers: pd.DataFrame) -> None:
    customers.iloc[:100].to_csv(tmp_path / "part-1.csv", index=False)
    customers.iloc[100:].to_csv(tmp_path / "part-2.csv", index=False)
    files = resolve_source("part-*.csv", base_dir=tmp_path)
    df = read_source("part-*.csv", base_dir=tmp_path)
    version = dataset_version(df, source="part-*.csv", files=files, base_dir=tmp_path)
    assert version.rows == len(customers)
    assert [f.path for f in version.files] == ["part-1.csv", "part-2.csv"]
    assert version.files[0].size == (tmp_path / "part-1.csv").stat().st_size
    assert len(version.files[0].sha256) == 64
    assert version.files[0].sha256 != version.files[1].sha256
    assert version.columns["customer_id"] == "int64"
    assert version.created_at.tzinfo is not None
    dumped = json.loads(version.model_dump_json())
    assert dumped["digest"] == version.digest and dumped["source"] == "part-*.csv"
    assert type(version).model_validate(dumped) == version
    assert version.short == version.digest[:12]


def test_dataset_version_missing_file(tmp_path: Path, customers: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"gone.csv: cannot hash file"):
        dataset_version(customers, source="gone.csv", files=["gone.csv"], base_dir=tmp_path)


def test_ensure_time_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": ["2024-01-01", "2024-02-03T10:00:00", None], "v": [1, 2, 3]})
    out = ensure_time_column(frame, "t")
    assert pd.api.types.is_datetime64_any_dtype(out["t"])
    assert frame["t"].dtype != out["t"].dtype  # the input is left alone
    assert ensure_time_column(out, "t") is out
    with pytest.raises(DataError, match=r"time column 'when' is not in the data"):
        ensure_time_column(frame, "when")
    bad = pd.DataFrame({"t": ["2024-01-01", "yesterday"]})
    with pytest.raises(DataError, match=r"time column 't': row 1: 'yesterday'"):
        ensure_time_column(bad, "t")
