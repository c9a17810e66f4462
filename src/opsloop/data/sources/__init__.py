"""Data sources beyond files: database tables and queries (SQLAlchemy), HTTP JSON APIs;
loaded into content-addressed Parquet snapshots, incrementally past a watermark."""

from opsloop.data.sources.http import fetch_records, read_http_source
from opsloop.data.sources.load import (
    SourceLoad,
    decode_watermark,
    encode_watermark,
    load_source,
    probe_source,
    read_data,
    source_display,
)
from opsloop.data.sources.sql import max_watermark, read_sql_source

__all__ = [
    "SourceLoad",
    "decode_watermark",
    "encode_watermark",
    "fetch_records",
    "load_source",
    "max_watermark",
    "probe_source",
    "read_data",
    "read_http_source",
    "read_sql_source",
    "source_display",
]
