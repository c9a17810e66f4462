"""What an attacker who can write a model folder does: a model that runs a shell command, put in
place of a benign one with every digest in ``MLmodel`` made to match."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from opsloop.artifacts import digest_bytes
from opsloop.registry import METADATA_FILE, ColumnSpec

#: The reviewer's exploit: the request's ``cmd`` column goes to ``os.system``.
EVIL_TYPES = ["numpy.atleast_1d", "numpy.squeeze", "posix.system"]
CMD = [ColumnSpec(name="cmd", dtype="object")]


def evil_pipeline() -> Pipeline:
    """``np.squeeze`` -> ``os.system`` -> ``np.atleast_1d``: transform runs the command."""
    return Pipeline(
        [
            ("squeeze", FunctionTransformer(np.squeeze)),
            ("run", FunctionTransformer(os.system)),
            ("wrap", FunctionTransformer(np.atleast_1d)),
        ]
    ).fit(pd.DataFrame({"cmd": ["true"]}))


def benign_model() -> OneHotEncoder:
    """A transformer over the same ``cmd`` column."""
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
        pd.DataFrame({"cmd": ["a", "b"]})
    )


def command(marker: Path) -> pd.DataFrame:
    """One request row whose command creates ``marker``."""
    return pd.DataFrame({"cmd": [f"touch {marker}"]})


def forge(folder: Path, *, claim_extra: bool = False) -> None:
    """Put the evil model into a packaged folder and make ``MLmodel`` vouch for it.

    ``trusted_types`` is the field every version of the format has (and the one loading used
    to trust); with ``claim_extra``, ``extra_trusted_types`` claims them too.
    """
    data = sio.dumps(evil_pipeline())
    (folder / "model.skops").write_bytes(data)
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw["files"]["model.skops"] = digest_bytes(data)
    raw["trusted_types"] = list(EVIL_TYPES)
    raw.pop("extra_trusted_types", None)
    if claim_extra:
        raw["extra_trusted_types"] = list(EVIL_TYPES)
    raw["model_class"] = "sklearn.pipeline.Pipeline"
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
