"""The anchors' side of benchmarks/serving.py, run inside their own venvs.

Usage:
    python benchmarks/_serving_anchor.py mlflow DATA_DIR OUT_DIR
    python benchmarks/_serving_anchor.py mlserver DATA_DIR OUT_DIR PORT GRPC_PORT METRICS_PORT
        [--adaptive MAX_BATCH_SIZE MAX_BATCH_TIME_S]

Writes a model directory ready for ``mlflow models serve`` or ``mlserver start``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from _serving_common import COLUMNS, train


def mlflow_model(data: Path, out: Path) -> None:
    # Lazy imports here and below (noqa: PLC0415) of mlflow, pandas, joblib: each loads only where
    # it is used, so importing this module stays light.
    import mlflow.sklearn  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    from mlflow.models import infer_signature  # noqa: PLC0415

    pipe = train(data, with_names=True)
    example = pd.DataFrame([[0.0] * len(COLUMNS)], columns=COLUMNS)
    signature = infer_signature(example, pipe.predict_proba(example))
    if out.exists():
        shutil.rmtree(out)
    # pyfunc_predict_fn makes MLflow answer with probabilities, as the other servers do.
    mlflow.sklearn.save_model(
        pipe, str(out), signature=signature, pyfunc_predict_fn="predict_proba"
    )


def mlserver_model(data: Path, out: Path, ports: list[int], adaptive: list[str]) -> None:
    import joblib  # noqa: PLC0415

    pipe = train(data, with_names=False)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    joblib.dump(pipe, out / "model.joblib")
    model: dict[str, object] = {
        "name": "bench",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    if adaptive:
        model["max_batch_size"] = int(adaptive[0])
        model["max_batch_time"] = float(adaptive[1])
    (out / "model-settings.json").write_text(json.dumps(model))
    http, grpc, metrics = ports
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "debug": False,
    }
    (out / "settings.json").write_text(json.dumps(settings))


def main() -> None:
    kind, data, out, *rest = sys.argv[1:]
    if kind == "mlflow":
        mlflow_model(Path(data), Path(out))
    elif kind == "mlserver":
        adaptive: list[str] = []
        if "--adaptive" in rest:
            at = rest.index("--adaptive")
            adaptive = rest[at + 1 : at + 3]
            rest = rest[:at]
        mlserver_model(Path(data), Path(out), [int(p) for p in rest], adaptive)
    else:
        raise SystemExit(f"unknown anchor {kind!r}")


if __name__ == "__main__":
    main()
