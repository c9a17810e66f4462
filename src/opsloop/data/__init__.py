"""DataOps: read sources, version datasets by content, check data contracts, profile data."""

from opsloop.data.contract import (
    ColumnContract,
    ContractFailure,
    ContractReport,
    DataContract,
    RowCountRule,
    RuleResult,
    UniqueRule,
    check_contract,
    parse_contract,
    raise_for_errors,
    render_contract_report,
)
from opsloop.data.digest import DIGEST_SCHEME, content_digest
from opsloop.data.ingest import (
    SUPPORTED_SUFFIXES,
    DatasetVersion,
    FileDigest,
    dataset_version,
    ensure_time_column,
    read_source,
    resolve_source,
)
from opsloop.data.profile import (
    ColumnProfile,
    DataProfile,
    all_nan_columns,
    profile_frame,
    render_profile,
)

__all__ = [
    "DIGEST_SCHEME",
    "SUPPORTED_SUFFIXES",
    "ColumnContract",
    "ColumnProfile",
    "ContractFailure",
    "ContractReport",
    "DataContract",
    "DataProfile",
    "DatasetVersion",
    "FileDigest",
    "RowCountRule",
    "RuleResult",
    "UniqueRule",
    "all_nan_columns",
    "check_contract",
    "content_digest",
    "dataset_version",
    "ensure_time_column",
    "parse_contract",
    "profile_frame",
    "raise_for_errors",
    "read_source",
    "render_contract_report",
    "render_profile",
    "resolve_source",
]
