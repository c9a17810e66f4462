"""``opsloop serve``: serve registered model versions over HTTP (V2 and /invocations)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsloop.errors import ConfigError

if TYPE_CHECKING:
    from opsloop.serve.base import ServableModel

__all__ = ["EXAMPLES", "parse_routes", "resolve_loader", "serve_command"]

#: The end of ``opsloop serve --help``: one request per protocol, and a label.
EXAMPLES = "\n".join(
    [
        "Examples, for a server on port 8080 serving model churn (send your model's columns; "
        "GET /v2/models/NAME lists them):",
        "",
        "MLflow-style /invocations answers class labels, or probabilities with "
        "params.predict_method; columns the model does not take (ids …) are ignored and kept "
        "in the prediction log:",
        "",
        "  curl -s localhost:8080/invocations -H 'content-type: application/json' \\",
        """    -d '{"dataframe_records": [{"customer_id": "c-17", "tenure_months": 12, """
        """"plan": "pro"}],""",
        """         "params": {"predict_method": "predict_proba"}}'""",
        "",
        "Open Inference Protocol (V2): outputs predict (labels, the default) and predict_proba:",
        "",
        "  curl -s localhost:8080/v2/models/churn/infer -H 'content-type: application/json' \\",
        """    -d '{"inputs": [{"name": "tenure_months", "datatype": "INT64", "shape": [1], """
        """"data": [12]},""",
        """                    {"name": "plan", "datatype": "BYTES", "shape": [1], """
        """"data": ["pro"]}],""",
        """         "outputs": [{"name": "predict_proba"}]}'""",
        "",
        "Feedback, the true label of an answered request, by the x-request-id of its answer:",
        "",
        "  curl -s localhost:8080/v1/feedback -H 'content-type: application/json' \\",
        """    -d '{"request_id": "REQUEST_ID", "label": 1}'""",
    ]
)

if TYPE_CHECKING:
    Loader = Callable[[str], ServableModel]
else:
    # typer reads the command's annotations when it builds the CLI: at run time the alias must
    # not need opsloop.serve.base, which loads pandas for every command.
    Loader = Callable[[str], Any]


def _import_loader(spec: str) -> Loader:
    """``module:function`` to the function (the ``--loader`` option's parser)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise typer.BadParameter(f"expected MODULE:FUNCTION, got {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise typer.BadParameter(f"cannot import {spec!r}: {exc}") from exc
    if not callable(found):
        raise typer.BadParameter(f"{spec!r} is not callable")
    loader: Loader = found
    return loader


def resolve_loader(loader: Loader | None) -> Loader:
    """The loader to use: the one given, else ``opsloop.registry.load_model``.

    Raises:
        ConfigError: No loader was given and the registry has none.
    """
    if loader is not None:
        return loader
    try:
        registry = importlib.import_module("opsloop.registry")
        found: Loader = registry.load_model
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "no model loader: opsloop.registry.load_model is not available",
            hint="pass --loader MODULE:FUNCTION that turns a model URI into a servable model",
        ) from exc
    return found


def parse_routes(values: list[str], option: str) -> dict[str, list[tuple[str, str]]]:
    """Parse ``MODEL=VERSION[:WEIGHT],...`` options into ``{model: [(version, weight)]}``.

    Raises:
        ConfigError: A value does not have that form.
    """
    routes: dict[str, list[tuple[str, str]]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(
                f"{option} {value!r}: expected MODEL=VERSION[:WEIGHT][,VERSION[:WEIGHT]...]"
            )
        for part in rest.split(","):
            version, _, weight = part.partition(":")
            if not version:
                raise ConfigError(f"{option} {value!r}: empty version")
            routes.setdefault(name, []).append((version, weight))
    return routes


def _sink(target: str | None, deployment: str | None, *, feedback: bool) -> Any:
    """A file sink when a log file is given, ``none`` for no log, else the metadata store."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop.serve, opsloop.context: each loads with
    # the command that needs it, not with every CLI call.
    from opsloop.serve.sinks import open_sink  # noqa: PLC0415

    if target == "none":
        return None
    if target:
        return open_sink(target)
    from opsloop.context import current_project  # noqa: PLC0415
    from opsloop.serve.store_sink import StoreFeedbackSink, StorePredictionSink  # noqa: PLC0415

    project = current_project()
    kind = "feedback" if feedback else "predictions"
    # Records the store refuses are kept here, one JSON object per line, never dropped.
    dead_letter = project.state_dir / "dead-letter" / f"{deployment or 'serve'}-{kind}.jsonl"
    if feedback:
        return StoreFeedbackSink(project.store, deployment or "", dead_letter)
    # Large requests are logged as opsloop.yaml's monitoring.prediction_log says.
    policy = project.spec.monitoring.prediction_log if project.spec is not None else None
    return StorePredictionSink(
        project.store, deployment or "", dead_letter, artifacts=project.artifacts, policy=policy
    )


def serve_command(
    model_uri: Annotated[
        list[str],
        typer.Argument(
            help="Model URI(s) to serve (models:/NAME/VERSION, models:/NAME@ALIAS); each is "
            "loaded by the model registry."
        ),
    ],
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", help="Port to listen on.")
    ] = 8080,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Most rows per predict call.")
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option("--max-wait-ms", min=0, help="Longest a request waits to join a batch."),
    ] = 2.0,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Micro-batch concurrent requests.")
    ] = True,
    traffic: Annotated[
        list[str] | None,
        typer.Option(
            "--traffic",
            metavar="SPLIT",
            help="Canary split MODEL=VERSION:WEIGHT,..., e.g. churn=3:90,4:10 (repeatable).",
        ),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(
            "--shadow",
            metavar="SHADOWS",
            help="Shadow versions MODEL=VERSION,..., e.g. churn=5 (repeatable).",
        ),
    ] = None,
    prediction_log: Annotated[
        str | None,
        typer.Option(
            "--prediction-log",
            metavar="LOG",
            help="Prediction log: FILE.jsonl, parquet://DIR or none (default: the project's "
            "metadata store).",
        ),
    ] = None,
    feedback_log: Annotated[
        str | None,
        typer.Option(
            "--feedback-log",
            metavar="LOG",
            help="Feedback log: FILE.jsonl, parquet://DIR or none (default: the project's "
            "metadata store).",
        ),
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, help="Largest request body, in MiB.")
    ] = 10.0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="File holding the bearer token for predictions, model metadata and feedback "
            "(else $OPSLOOP_SERVE_TOKEN; without either these are open). Required beyond "
            "loopback unless --insecure.",
        ),
    ] = None,
    feedback_token_file: Annotated[
        Path | None,
        typer.Option(
            "--feedback-token-file",
            metavar="FILE",
            help="File holding a bearer token for feedback only, for a label pipeline that "
            "must not predict (else $OPSLOOP_FEEDBACK_TOKEN).",
        ),
    ] = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            "--admin-token-file",
            metavar="FILE",
            help="File holding the bearer token for /v1/admin/models, which also grants "
            "predictions and feedback (else $OPSLOOP_ADMIN_TOKEN; without either, admin is "
            "for loopback clients only).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen beyond loopback without a token: anyone who reaches the server may "
            "predict and send labels.",
        ),
    ] = False,
    max_connections_per_client: Annotated[
        int,
        typer.Option(
            "--max-connections-per-client",
            min=1,
            help="Most open connections from one client address (raise it behind a proxy).",
        ),
    ] = 256,
    admin_token: Annotated[
        str | None,
        typer.Option("--admin-token", hidden=True, help="Refused: use --admin-token-file."),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            metavar="NAME",
            help="Deployment name written into every prediction and feedback.",
        ),
    ] = None,
    loader: Annotated[
        Loader | None,
        typer.Option(
            "--loader",
            parser=_import_loader,
            metavar="MODULE:FUNCTION",
            help="A function turning a model URI into a servable model (default: the registry).",
        ),
    ] = None,
) -> None:
    """Serve model versions with the V2 inference protocol and MLflow-style /invocations.

    Tokens come from the environment (OPSLOOP_SERVE_TOKEN, OPSLOOP_ADMIN_TOKEN) or from files
    (--token-file, --admin-token-file), never from an argument, which other users of the
    machine can read in the process list. Clients send them as Authorization: Bearer TOKEN.
    """
    from opsloop.loop.privacy import prediction_log_privacy  # noqa: PLC0415
    from opsloop.serve.auth import (  # noqa: PLC0415
        ADMIN_TOKEN_ENV,
        FEEDBACK_TOKEN_ENV,
        SERVE_TOKEN_ENV,
        is_loopback,
        read_token,
    )
    from opsloop.serve.config import ServerConfig  # noqa: PLC0415
    from opsloop.serve.server import bind_socket, serve  # noqa: PLC0415
    from opsloop.spec.loader import find_project_dir, load_spec  # noqa: PLC0415

    if admin_token is not None:
        raise ConfigError(
            "--admin-token is not accepted: a token on the command line shows in the process list",
            hint=f"put it in a file for --admin-token-file, or in ${ADMIN_TOKEN_ENV}",
        )
    token = read_token(file=token_file, env_var=SERVE_TOKEN_ENV, what="server token")
    feedback_token = read_token(
        file=feedback_token_file, env_var=FEEDBACK_TOKEN_ENV, what="feedback token"
    )
    admin = read_token(file=admin_token_file, env_var=ADMIN_TOKEN_ENV, what="admin token")
    if not is_loopback(host) and token is None and not insecure:
        raise ConfigError(
            f"--host {host} is reachable from other machines and no token is set",
            hint=f"set ${SERVE_TOKEN_ENV} or --token-file FILE, or pass --insecure",
        )
    from opsloop.cli._common import State  # noqa: PLC0415

    here = State.project_dir or find_project_dir(Path.cwd())
    # Bound first: a taken port is one line at once, not after the models have loaded.
    sock = bind_socket(host, port, advice="pick another with --port PORT")
    with sock:
        load = resolve_loader(loader)
        models = [load(uri) for uri in model_uri]
        shadows = {
            name: [version for version, _ in pairs]
            for name, pairs in parse_routes(shadow or [], "--shadow").items()
        }
        try:
            weights = {
                name: {version: float(weight or 100) for version, weight in pairs}
                for name, pairs in parse_routes(traffic or [], "--traffic").items()
            }
            config = ServerConfig(
                models=models,
                traffic=weights,
                shadow=shadows,
                host=host,
                port=port,
                batching=batching,
                max_batch_size=max_batch_size,
                max_wait_ms=max_wait_ms,
                max_body_bytes=int(max_body_mb * 1024 * 1024),
                prediction_sink=_sink(prediction_log, deployment, feedback=False),
                feedback_sink=_sink(feedback_log, deployment, feedback=True),
                token=token,
                feedback_token=feedback_token,
                admin_token=admin,
                insecure=insecure,
                max_connections_per_client=max_connections_per_client,
                loader=load,
                deployment=deployment,
                # PII columns of the project's contract: hashed or dropped in the log.
                **prediction_log_privacy(load_spec(here) if here else None),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid server options: {exc}") from exc
        if token is None and not is_loopback(host):
            typer.echo(
                f"warning: serving on {host} without a token (--insecure): anyone who reaches "
                "it may predict and send feedback labels",
                err=True,
            )
        uris = ", ".join(model_uri)
        serve(
            config,
            sock=sock,
            on_started=lambda url: typer.echo(f"serving {uris} on {url}", err=True),
            # A line the local GitOps runtime finds as the reason a replica is gone.
            on_stopped=lambda url: typer.echo(f"stopped serving {uris}", err=True),
        )
