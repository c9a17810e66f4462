"""The server over real HTTP on 127.0.0.1: V2 (with tritonclient), /invocations, validation,
limits, slow clients, metrics, micro-batching, canary and shadow routing, feedback, admin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton

from opsloop.serve import JsonlSink, ServerConfig, read_jsonl
from opsloop.serve import app as app_module
from tests.serve.conftest import Running, run_server
from tests.serve.models import (
    Wrapped,
    churn_frame,
    churn_model,
    churn_pipeline,
    load,
    numeric_model,
    regressor_model,
    yes_no_model,
)

ROWS = [[30, 61.5, "paris", True], [52, 38.0, "nice", False]]
COLUMNS = ["age", "income", "city", "member"]
PROBA = {"predict_method": "predict_proba"}


def expected(rows: list[list]) -> np.ndarray:
    """The churn model's class probabilities for ``rows``."""

    df = pd.DataFrame(rows, columns=COLUMNS)
    df["city"] = df["city"].astype(object)
    return churn_pipeline().predict_proba(df)


def expected_labels(rows: list[list]) -> list[int]:
    """The churn model's classes for ``rows`` (what scikit-learn's predict answers)."""

    df = pd.DataFrame(rows, columns=COLUMNS)
    df["city"] = df["city"].astype(object)
    return churn_pipeline().predict(df).tolist()


def v2_body(rows: list[list], **extra: object) -> dict:
    cols = list(zip(*rows, strict=True))
    types = ["INT64", "FP64", "BYTES", "BOOL"]
    return {
        "inputs": [
            {"name": n, "datatype": t, "shape": [len(rows)], "data": list(c)}
            for n, t, c in zip(COLUMNS, types, cols, strict=True)
        ],
        **extra,
    }


# -- V2 protocol ---------------------------------------------------------------------------


def test_tritonclient_health_metadata_and_infer(churn_server: Running) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{churn_server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        assert client.is_model_ready("churn", "1")
        assert not client.is_model_ready("nope")
        meta = client.get_model_metadata("churn")
        assert meta["name"] == "churn"
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("age", "INT64"),
            ("income", "FP64"),
            ("city", "BYTES"),
            ("member", "BOOL"),
        ]
        assert meta["outputs"] == [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ]
        assert client.get_server_metadata()["name"] == "opsloop"

        arrays = [
            np.array([30, 52], dtype=np.int64),
            np.array([61.5, 38.0], dtype=np.float64),
            np.array(["paris", "nice"], dtype=object),
            np.array([True, False]),
        ]
        for binary in (False, True):
            inputs = []
            for name, array, dtype in zip(
                COLUMNS, arrays, ["INT64", "FP64", "BYTES", "BOOL"], strict=True
            ):
                tensor = triton.InferInput(name, [2], dtype)
                tensor.set_data_from_numpy(array, binary_data=binary)
                inputs.append(tensor)
            outputs = [
                triton.InferRequestedOutput("predict_proba", binary_data=binary),
                triton.InferRequestedOutput("predict", binary_data=binary),
            ]
            result = client.infer("churn", inputs, outputs=outputs, request_id=f"trq-{binary}")
            np.testing.assert_allclose(result.as_numpy("predict_proba"), expected(ROWS))
            assert result.as_numpy("predict").tolist() == expected_labels(ROWS)
            response = result.get_response()
            assert response["id"] == f"trq-{binary}"
            assert response["model_version"] == "1"
    finally:
        client.close()


def test_v2_json_infer_with_request_id_header(churn_server: Running) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        r = client.post(
            "/v2/models/churn/versions/1/infer",
            json=v2_body(ROWS, id="body-id"),
            headers={"x-request-id": "hdr-1"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "hdr-1"
        doc = r.json()
        assert doc["id"] == "body-id"
        assert doc["model_name"] == "churn"
        # Without 'outputs', a classifier answers its labels only (as MLServer does).
        assert doc["outputs"] == [
            {"name": "predict", "datatype": "INT64", "shape": [2], "data": expected_labels(ROWS)}
        ]
        both = client.post(
            "/v2/models/churn/infer",
            json=v2_body(ROWS, outputs=[{"name": "predict_proba"}, {"name": "predict"}]),
        ).json()["outputs"]
        assert [o["name"] for o in both] == ["predict_proba", "predict"]
        np.testing.assert_allclose(np.array(both[0]["data"]).reshape(2, 2), expected(ROWS))
        unknown = client.post(
            "/v2/models/churn/infer", json=v2_body(ROWS, outputs=[{"name": "probabilities"}])
        )
        assert unknown.status_code == 400 and unknown.json()["field"] == "outputs"
        generated = client.post("/v2/models/churn/infer", json=v2_body(ROWS)).headers
        assert len(generated["x-request-id"]) >= 16
        other = client.post("/v2/models/churn/infer", json=v2_body(ROWS)).headers
        assert other["x-request-id"] != generated["x-request-id"]


def test_unknown_model_or_version_is_404(churn_server: Running) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        r = client.post("/v2/models/nope/infer", json=v2_body(ROWS))
        assert r.status_code == 404
        assert "model 'nope' is not served" in r.json()["error"]
        r = client.post("/v2/models/churn/versions/9/infer", json=v2_body(ROWS))
        assert r.status_code == 404
        assert client.get("/v2/models/churn/versions/9").status_code == 404
        assert client.get("/v2/models/churn/versions/1").json()["versions"] == ["1"]


# -- MLflow-style ----------------------------------------------------------------------------


def test_invocations_formats_and_health(churn_server: Running) -> None:
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    payloads = [
        {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: [row[i] for row in ROWS] for i, c in enumerate(COLUMNS)}},
    ]
    with httpx.Client(base_url=churn_server.url) as client:
        for payload in payloads:
            r = client.post("/invocations", json=payload)
            assert r.status_code == 200, r.text
            # A classifier answers its classes, as MLflow's scikit-learn flavor does.
            assert r.json()["predictions"] == expected_labels(ROWS)
            assert r.headers["x-request-id"]
            assert "x-opsloop-warning" not in r.headers
            proba = client.post("/invocations", json={**payload, "params": PROBA})
            np.testing.assert_allclose(proba.json()["predictions"], expected(ROWS))
            query = client.post("/invocations?predict_method=predict_proba", json=payload)
            np.testing.assert_allclose(query.json()["predictions"], expected(ROWS))
        assert client.get("/ping").status_code == 200
        assert client.get("/health").json() == {"ready": True}
        r = client.post(
            "/invocations", content=b"age,income\n1,2", headers={"content-type": "text/csv"}
        )
        assert r.status_code == 415
        assert r.json()["error_code"] == "BAD_REQUEST"


def test_columns_beyond_the_signature_are_ignored_with_a_warning_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig(
        models=[churn_model()], port=0, prediction_sink=JsonlSink(tmp_path / "preds.jsonl")
    )
    # A record as it stands in the data file: an id and a date the model does not take.
    records = [
        {
            "customer_id": f"c-{i}",
            **dict(zip(COLUMNS, row, strict=True)),
            "signup_date": "2024-05-01",
        }
        for i, row in enumerate(ROWS)
    ]
    with (
        caplog.at_level(logging.WARNING, logger="opsloop.serve"),
        run_server(config) as running,
        httpx.Client(base_url=running.url) as client,
    ):
        answers = [
            client.post("/invocations", json={"dataframe_records": records}) for _ in range(3)
        ]
        reordered = [dict(reversed(list(r.items()))) for r in records]
        answers.append(client.post("/invocations", json={"dataframe_records": reordered}))
        split = client.post(
            "/invocations",
            json={
                "dataframe_split": {
                    "columns": [*COLUMNS, "customer_id"],
                    "data": [[*ROWS[0], "c-9"]],
                }
            },
        )
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected_labels(ROWS)
        assert r.headers["x-opsloop-warning"] == (
            'columns not in the model\'s signature were ignored: "customer_id", "signup_date"'
        )
    assert split.status_code == 200 and '"customer_id"' in split.headers["x-opsloop-warning"]
    # Logged once per set of columns (in any order), not once per request.
    logged = [r.getMessage() for r in caplog.records if "were ignored" in r.getMessage()]
    assert len(logged) == 2 and "customer_id" in logged[0] and "signup_date" in logged[0]
    preds = read_jsonl(tmp_path / "preds.jsonl")
    assert preds[0]["ids"] == {"customer_id": ["c-0", "c-1"], "signup_date": ["2024-05-01"] * 2}
    assert set(preds[0]["inputs"]) == set(COLUMNS)
    assert preds[-1]["ids"] == {"customer_id": ["c-9"]}


def test_a_flood_of_column_sets_stays_bounded(caplog: pytest.LogCaptureFixture) -> None:
    config = ServerConfig(models=[churn_model()], port=0)
    record = dict(zip(COLUMNS, ROWS[0], strict=True))
    with (
        caplog.at_level(logging.WARNING, logger="opsloop.serve"),
        run_server(config) as running,
        httpx.Client(base_url=running.url) as client,
    ):
        state = running.state
        for i in range(app_module._MAX_IGNORED_SETS + 20):
            # Cheaper than a request each: the same method the handler calls.
            state.ignored_warning("churn", [f"extra-{i}"])
        r = client.post("/invocations", json={"dataframe_records": [{**record, "late": 1}]})
        assert r.status_code == 200 and "late" in r.headers["x-opsloop-warning"]
    assert len(state._ignored_notes) == app_module._MAX_IGNORED_SETS + 1
    assert len(caplog.records) == app_module._MAX_IGNORED_SETS + 1
    assert "further ones are not logged" in caplog.records[-1].getMessage()


def test_text_classes_are_answered_as_words() -> None:
    config = ServerConfig(models=[yes_no_model()], port=0)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    words = ["yes" if label else "no" for label in expected_labels(ROWS)]
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/invocations", json={"dataframe_records": records})
        assert r.json() == {"predictions": words}
        proba = client.post("/invocations", json={"dataframe_records": records, "params": PROBA})
        assert np.array(proba.json()["predictions"]).shape == (2, 2)
        v2 = client.post("/v2/models/yesno/infer", json=v2_body(ROWS)).json()["outputs"]
        assert v2 == [{"name": "predict", "datatype": "BYTES", "shape": [2], "data": words}]


def test_probabilities_of_a_model_without_them_are_400() -> None:
    config = ServerConfig(models=[regressor_model()], port=0)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        plain = client.post("/invocations", json={"instances": [[1.0, 0.0]]})
        assert plain.status_code == 200 and plain.json()["predictions"] == [pytest.approx(2.0)]
        r = client.post("/invocations", json={"instances": [[1.0, 0.0]], "params": PROBA})
        assert r.status_code == 400 and r.json()["field"] == "predict_method"
        assert "answers no class probabilities" in r.json()["message"]
        bad = client.post(
            "/invocations", json={"instances": [[1.0, 0.0]], "params": {"predict_method": "x"}}
        )
        assert bad.status_code == 400 and "'x' is not one of" in bad.json()["message"]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "payload", "field", "words"),
    [
        (
            "/invocations",
            {"dataframe_records": [{"age": 30, "income": "rich", "city": "nice", "member": True}]},
            "income",
            "expected a number",
        ),
        (
            "/invocations",
            {"dataframe_records": [{"age": 30, "income": 1.0, "city": "nice"}]},
            "member",
            "missing column",
        ),
        ("/invocations", {"instances": [[30, 1.0, "nice"]]}, "instances[0]", "3 values"),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]},
            "x",
            "shape [n, 4]",
        ),
        (
            "/v2/models/churn/infer",
            v2_body([[30, "rich", "nice", True]]),
            "income",
            "expected a number",
        ),
    ],
)
def test_bad_requests_name_the_field_and_server_keeps_serving(
    churn_server: Running, path: str, payload: dict, field: str, words: str
) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        r = client.post(path, json=payload)
        assert r.status_code == 400, r.text
        doc = r.json()
        assert doc["field"] == field
        assert words in (doc.get("message") or doc.get("error"))
        assert client.post("/v2/models/churn/infer", json=v2_body(ROWS)).status_code == 200


def test_out_of_range_numbers_are_400_not_500(churn_server: Running) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        for age in ("9223372036854775808", "1e20", "18446744073709551616"):
            body = f'{{"instances": [[{age}, 1.0, "paris", true]]}}'.encode()
            r = client.post(
                "/invocations", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 400, r.text
            assert r.json()["error_code"] == "BAD_REQUEST" and r.json()["field"] == "age"
            assert "out of range" in r.json()["message"]
        tensor = v2_body(ROWS[:1])
        tensor["inputs"][0]["datatype"] = "INT8"
        tensor["inputs"][0]["data"] = [300]
        r = client.post("/v2/models/churn/infer", json=tensor)
        assert r.status_code == 400 and "out of range for datatype INT8" in r.json()["error"]
        tensor["inputs"][0]["parameters"] = {"binary_data_size": -1}
        r = client.post("/v2/models/churn/infer", json=tensor)
        assert r.status_code == 400 and "binary_data_size must be a non-negative" in r.text
        assert client.post("/v2/models/churn/infer", json=v2_body(ROWS)).status_code == 200


def test_content_types_are_checked(churn_server: Running) -> None:
    body = orjson_dumps({"instances": ROWS})
    with httpx.Client(base_url=churn_server.url) as client:
        for bad in ("application/jsonx", "text/plain", "application/x-www-form-urlencoded", ""):
            r = client.post("/invocations", content=body, headers={"content-type": bad})
            assert r.status_code == 415, bad
            assert r.json()["error_code"] == "BAD_REQUEST"
        ok = client.post(
            "/invocations",
            content=body,
            headers={"content-type": "Application/JSON; charset=utf-8"},
        )
        assert ok.status_code == 200
        v2 = orjson_dumps(v2_body(ROWS))
        # V2: JSON, no content type at all (tritonclient sends none), or binary with its header.
        for good in ("application/json", "application/json; charset=utf-8", None):
            headers = {"content-type": good} if good else {}
            r = client.post("/v2/models/churn/infer", content=v2, headers=headers)
            assert r.status_code == 200, good
        binary = {"content-type": "application/octet-stream"}
        r = client.post("/v2/models/churn/infer", content=v2, headers=binary)
        assert r.status_code == 415 and "Inference-Header-Content-Length" in r.json()["error"]
        binary["inference-header-content-length"] = str(len(v2))
        assert client.post("/v2/models/churn/infer", content=v2, headers=binary).status_code == 200
        r = client.post("/v2/models/churn/infer", content=v2, headers={"content-type": "text/csv"})
        assert r.status_code == 415


def orjson_dumps(value: object) -> bytes:
    return orjson.dumps(value)


def test_malformed_json_is_400(churn_server: Running) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        for path in ("/invocations", "/v2/models/churn/infer"):
            r = client.post(
                path, content=b'{"inputs": [', headers={"content-type": "application/json"}
            )
            assert r.status_code == 400
            assert "not valid JSON" in r.text


def test_oversized_body_is_413_without_reading_it() -> None:
    config = ServerConfig(models=[churn_model()], port=0, max_body_bytes=2048)
    with (
        run_server(config) as running,
        socket.create_connection(("127.0.0.1", running.port)) as sock,
    ):
        # Announce 100 MiB, send only the headers and a few bytes: the answer must come anyway.
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 104857600\r\n\r\n{"instances": ['
        )
        sock.settimeout(5)
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 413"), head
        assert b"exceeds the limit of 2048 bytes" in head
        # Chunked (no Content-Length): counted while reading, cut at the limit.
        with httpx.Client(base_url=running.url) as client:

            def chunks():
                for _ in range(100):
                    yield b" " * 1024

            r = client.post(
                "/invocations", content=chunks(), headers={"content-type": "application/json"}
            )
            assert r.status_code == 413
            assert client.post("/v2/models/churn/infer", json=v2_body(ROWS)).status_code == 200


def test_slow_clients_do_not_block_others_and_are_cut_off() -> None:
    config = ServerConfig(models=[churn_model()], port=0, header_timeout_s=1.0, body_timeout_s=1.0)
    with run_server(config) as running:
        slow = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(20)]
        stop = threading.Event()

        def dribble() -> None:
            # Slowloris: a byte of headers every 100 ms on every connection.
            for i in range(40):
                if stop.is_set():
                    return
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"POST /invocations HTTP/1.1\r\nX-a: "[i % 10 : i % 10 + 1])
                time.sleep(0.1)

        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        try:
            latencies = []
            with httpx.Client(base_url=running.url) as client:
                for _ in range(30):
                    start = time.perf_counter()
                    assert (
                        client.post("/v2/models/churn/infer", json=v2_body(ROWS)).status_code == 200
                    )
                    latencies.append(time.perf_counter() - start)
                    time.sleep(0.02)
            assert max(latencies) < 1.0
            time.sleep(1.5)
            # Past the header deadline the server has closed every slowloris connection.
            for sock in slow:
                sock.settimeout(2)
                assert sock.recv(1024) == b""
        finally:
            stop.set()
            thread.join()
            for sock in slow:
                sock.close()

        # A body that trickles in slower than body_timeout_s gets 408.
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")


# -- metrics and batching --------------------------------------------------------------------


def concurrent_posts(
    url: str, path: str, bodies: list[dict], headers: list[dict] | None = None
) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(path, json=body, headers=(headers or [{}] * len(bodies))[i])
                    for i, body in enumerate(bodies)
                )
            )

    return asyncio.run(main())


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in metrics")


def test_concurrent_requests_are_batched_and_metrics_show_it() -> None:
    model = Wrapped(churn_model())
    config = ServerConfig(models=[model], port=0, max_wait_ms=20)
    with run_server(config) as running:
        df, _ = churn_frame(n=64, seed=5)
        rows = df.to_numpy().tolist()
        responses = concurrent_posts(
            running.url, "/v2/models/churn/infer", [v2_body([row]) for row in rows]
        )
        assert all(r.status_code == 200 for r in responses)
        for row, r in zip(rows, responses, strict=True):
            np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected([row])[0])
        httpx.post(f"{running.url}/invocations", json={"instances": [[1, "x", "nice", True]]})
        text = httpx.get(f"{running.url}/metrics").text
    predict_calls = len(model.calls) - 1  # minus the warm-up
    assert predict_calls < 64
    labels = '{model="churn",version="1"}'
    assert metric(text, f"opsloop_batch_size_count{labels}") == predict_calls
    assert metric(text, f"opsloop_batch_size_sum{labels}") == 64
    assert metric(text, 'opsloop_requests_total{model="churn",protocol="v2",version="1"}') == 64
    assert metric(text, f"opsloop_request_latency_seconds_count{labels}") == 64
    assert metric(text, 'opsloop_request_errors_total{code="400",model="churn",version="1"}') == 1
    assert metric(text, f"opsloop_model_ready{labels}") == 1


def test_metric_labels_name_loaded_models_and_versions_only(churn_server: Running) -> None:
    with httpx.Client(base_url=churn_server.url) as client:
        client.post("/v2/models/nope/infer", json=v2_body(ROWS))
        client.post("/v2/models/nope/versions/7/infer", json=v2_body(ROWS))
        client.post("/v2/models/churn/versions/..%2F..%2Fetc/infer", json=v2_body(ROWS))
        client.post("/invocations?model=churn&version=../../etc", json={"instances": ROWS})
        client.post("/invocations", json={"instances": ROWS}, headers={"x-opsloop-model": "zz"})
        text = client.get("/metrics").text
    assert "nope" not in text and "etc" not in text and "zz" not in text
    assert metric(text, 'opsloop_request_errors_total{code="404",model="unknown",version=""}') >= 2
    assert (
        metric(text, 'opsloop_request_errors_total{code="404",model="unknown",version="unknown"}')
        >= 1
    )
    assert (
        metric(text, 'opsloop_request_errors_total{code="404",model="churn",version="unknown"}')
        >= 2
    )


# -- canary and shadow -----------------------------------------------------------------------


def test_canary_split_is_deterministic_per_request_id_and_url_version_bypasses(
    tmp_path: Path,
) -> None:
    config = ServerConfig(
        models=[churn_model("3"), churn_model("4", c=0.01)],
        traffic={"churn": {"3": 90, "4": 10}},
        port=0,
    )
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        seen: dict[str, str] = {}
        for i in range(300):
            r = client.post(
                "/v2/models/churn/infer", json=v2_body(ROWS), headers={"x-request-id": f"u{i}"}
            )
            seen[f"u{i}"] = r.json()["model_version"]
        share = sum(v == "4" for v in seen.values()) / len(seen)
        assert 0.04 < share < 0.2
        for rid in list(seen)[:20]:
            again = client.post(
                "/invocations", json={"instances": ROWS}, headers={"x-request-id": rid}
            )
            body = client.post(
                "/v2/models/churn/infer", json=v2_body(ROWS), headers={"x-request-id": rid}
            )
            assert body.json()["model_version"] == seen[rid]
            assert again.status_code == 200
        pinned = {
            client.post("/v2/models/churn/versions/4/infer", json=v2_body(ROWS)).json()[
                "model_version"
            ]
            for _ in range(20)
        }
        assert pinned == {"4"}


def test_shadow_gets_a_copy_never_answers_and_never_delays(tmp_path: Path) -> None:
    shadow = Wrapped(churn_model("2", c=0.01), delay=1.0)
    sink = JsonlSink(tmp_path / "preds.jsonl")
    config = ServerConfig(
        models=[churn_model("1"), shadow],
        shadow={"churn": ["2"]},
        port=0,
        prediction_sink=sink,
    )
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        for i in range(5):
            start = time.perf_counter()
            r = client.post(
                "/v2/models/churn/infer", json=v2_body(ROWS), headers={"x-request-id": f"s{i}"}
            )
            assert time.perf_counter() - start < 0.6
            assert r.json()["model_version"] == "1"
        # An explicit version is not shadowed.
        client.post("/v2/models/churn/versions/1/infer", json=v2_body(ROWS))
        deadline = time.monotonic() + 10
        while running.state.shadow_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        text = client.get("/metrics").text
    records = read_jsonl(tmp_path / "preds.jsonl")
    shadows = [r for r in records if r["shadow"]]
    assert sorted(r["request_id"] for r in shadows) == [f"s{i}" for i in range(5)]
    assert all(r["version"] == "2" and isinstance(r["agreed"], bool) for r in shadows)
    agreed = sum(
        metric(
            text,
            f'opsloop_shadow_predictions_total{{agreed="{a}",model="churn",shadow_version="2",version="1"}}',
        )
        for a in ("true", "false")
        if f'agreed="{a}"' in text
    )
    assert agreed == 5
    assert len([r for r in records if not r["shadow"]]) == 6


# -- prediction log and feedback -------------------------------------------------------------


def test_prediction_log_and_feedback(tmp_path: Path) -> None:
    config = ServerConfig(
        models=[churn_model()],
        port=0,
        prediction_sink=JsonlSink(tmp_path / "preds.jsonl"),
        feedback_sink=JsonlSink(tmp_path / "labels.jsonl"),
    )
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/invocations", json={"instances": ROWS}, headers={"x-request-id": "p-1"})
        rid2 = client.post("/v2/models/churn/infer", json=v2_body(ROWS[:1])).headers["x-request-id"]
        rid3 = client.post("/v2/models/churn/infer", json=v2_body(ROWS[1:])).headers["x-request-id"]
        # p-1 had two rows: one label per row.
        assert client.post("/v1/feedback", json={"request_id": "p-1", "label": [1, 0]}).json() == {
            "accepted": 1
        }
        many = [
            {"request_id": rid2, "label": 0, "model": "churn"},
            {"request_id": rid3, "label": [1]},
        ]
        assert client.post("/v1/feedback", json=many).json() == {"accepted": 2}
        bad = client.post("/v1/feedback", json=[{"request_id": "x", "label": 1}, {"label": 2}])
        assert bad.status_code == 400
        assert bad.json()["field"] == "request_id[1]"
        assert client.post("/v1/feedback", json={"request_id": "x"}).json()["field"] == "label"
        again = client.post("/v1/feedback", json={"request_id": "p-1", "label": [0, 0]})
        assert again.status_code == 409 and "'p-1' has a label already" in again.json()["error"]
    preds = read_jsonl(tmp_path / "preds.jsonl")
    assert [p["request_id"] for p in preds] == ["p-1", rid2, rid3]
    assert preds[0]["inputs"]["city"] == ["paris", "nice"]
    # The client got labels; the log keeps the probabilities the monitors need.
    assert r.json()["predictions"] == expected_labels(ROWS)
    np.testing.assert_allclose(preds[0]["outputs"], expected(ROWS))
    assert preds[0]["model"] == "churn" and preds[0]["version"] == "1"
    assert preds[0]["latency_ms"] > 0 and preds[0]["timestamp"].endswith("+00:00")
    labels = read_jsonl(tmp_path / "labels.jsonl")
    assert [(f["request_id"], f["label"], f["model"]) for f in labels] == [
        ("p-1", [1, 0], "churn"),
        (rid2, 0, "churn"),
        (rid3, [1], "churn"),
    ]


def test_feedback_without_sink_is_refused(churn_server: Running) -> None:
    r = httpx.post(f"{churn_server.url}/v1/feedback", json={"request_id": "a", "label": 1})
    assert r.status_code == 501


# -- admin and zero-downtime changes ---------------------------------------------------------


def test_admin_token_guard_and_actions() -> None:
    config = ServerConfig(models=[churn_model("1")], port=0, admin_token="s3cret", loader=load)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        assert client.get("/v1/admin/models").status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (
            client.post("/v1/admin/models", json={"action": "unload"}, headers=wrong).status_code
            == 401
        )
        auth = {"authorization": "Bearer s3cret"}
        r = client.post(
            "/v1/admin/models", json={"action": "load", "uri": "test:churn-strict/2"}, headers=auth
        )
        assert r.status_code == 200, r.text
        assert r.json()["models"]["churn"]["traffic"] == {"1": 100.0}
        r = client.post(
            "/v1/admin/models",
            json={
                "action": "set_traffic",
                "model": "churn",
                "traffic": {"1": 50, "2": 50},
                "shadow": [],
            },
            headers=auth,
        )
        assert r.json()["models"]["churn"]["traffic"] == {"1": 50, "2": 50}
        r = client.post(
            "/v1/admin/models", json={"action": "load", "uri": "test:broken/3"}, headers=auth
        )
        assert r.status_code == 422
        assert "warm-up" in r.json()["error"]
        r = client.post("/v1/admin/models", json={"action": "jump"}, headers=auth)
        assert r.status_code == 400 and r.json()["field"] == "action"
        r = client.post(
            "/v1/admin/models",
            json={"action": "unload", "model": "churn", "version": "1"},
            headers=auth,
        )
        assert r.status_code == 200
        assert client.get("/v1/admin/models", headers=auth).json()["models"]["churn"][
            "versions"
        ] == ["2"]
        assert (
            client.post("/v2/models/churn/infer", json=v2_body(ROWS)).json()["model_version"] == "2"
        )


def test_swap_under_traffic_loses_no_request() -> None:
    config = ServerConfig(models=[churn_model("1")], port=0, loader=load)
    with run_server(config) as running:
        stop = threading.Event()
        results: list[tuple[int, str]] = []

        def traffic() -> None:
            with httpx.Client(base_url=running.url) as client:
                while not stop.is_set():
                    r = client.post("/v2/models/churn/infer", json=v2_body(ROWS))
                    results.append((r.status_code, r.json().get("model_version", r.text)))

        workers = [threading.Thread(target=traffic) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.3)
            with httpx.Client(base_url=running.url) as admin:
                bad = admin.post(
                    "/v1/admin/models", json={"action": "swap", "uri": "test:broken/9"}
                )
                assert bad.status_code == 422
                time.sleep(0.2)
                ok = admin.post(
                    "/v1/admin/models", json={"action": "swap", "uri": "test:churn-strict/2"}
                )
                assert ok.status_code == 200, ok.text
            time.sleep(0.3)
        finally:
            stop.set()
            for w in workers:
                w.join()
    assert results
    assert {code for code, _ in results} == {200}
    versions = [v for _, v in results]
    assert versions[0] == "1" and versions[-1] == "2"
    assert "9" not in versions


def test_in_process_swap_via_app_state(churn_server: Running) -> None:
    # The router on app.state is the same object the admin endpoint drives.
    assert churn_server.app.state.router is churn_server.state.router
    assert churn_server.state.router.names == ["churn"]


def test_startup_fails_when_a_model_cannot_warm_up() -> None:
    config = ServerConfig(models=[Wrapped(numeric_model(), fail_load=True)], port=0)
    with pytest.raises(RuntimeError, match="did not start"), run_server(config):
        pass


def test_several_models_need_a_name_on_invocations_and_ids_are_bounded() -> None:
    config = ServerConfig(models=[churn_model("1"), numeric_model("1")], port=0)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/invocations", json={"instances": ROWS})
        assert r.status_code == 400
        assert r.json()["field"] == "model"
        assert "['churn', 'num']" in r.json()["message"]
        ok = client.post("/invocations?model=churn", json={"instances": ROWS})
        assert ok.status_code == 200
        num = client.post(
            "/invocations",
            json={"instances": [[0.1, 0.2, 0.3, 0.4]]},
            headers={"x-opsloop-model": "num"},
        )
        assert num.status_code == 200
        assert num.json()["predictions"][0] in (0, 1)
        long_id = client.post(
            "/v2/models/churn/infer", json=v2_body(ROWS), headers={"x-request-id": "x" * 300}
        )
        assert long_id.status_code == 400
        assert long_id.json()["field"] == "x-request-id"
