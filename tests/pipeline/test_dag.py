"""Building pipelines: DAG derivation, parameters, and the errors of bad definitions."""

from __future__ import annotations

import pytest

import opsloop.pipeline as package
from opsloop.errors import PipelineError
from opsloop.pipeline import Pipeline, Step, StepOutput, pipeline, runner, step

from . import steps_fixture as sf


def test_dag_follows_the_data():
    dag = sf.training.build({"rows": 50})
    assert list(dag.nodes) == ["make_frame", "split", "fit", "evaluate"]
    assert sorted(dag.edges()) == [
        ("fit", "evaluate"),
        ("make_frame", "split"),
        ("split", "evaluate"),
        ("split", "fit"),
    ]
    assert dag.nodes["make_frame"].params == {"rows": 50, "seed": 0}
    assert dag.nodes["fit"].params == {"c": 1.0}
    assert dag.nodes["fit"].inputs == {"train": StepOutput("split", "train")}
    assert dag.nodes["evaluate"].inputs == {
        "model": StepOutput("fit", "output"),
        "test": StepOutput("split", "test"),
    }
    assert dag.descendants("split") == {"fit", "evaluate"}
    assert dag.order() == ["make_frame", "split", "fit", "evaluate"]


def test_independent_steps_have_no_edges_and_repeated_steps_get_suffixes():
    dag = sf.concurrent_pair.build({"folder": "/x"})
    assert list(dag.nodes) == ["rendezvous", "rendezvous_2", "join"]
    assert dag.nodes["rendezvous"].upstream == []
    assert dag.nodes["rendezvous_2"].params == {
        "me": "b",
        "other": "a",
        "folder": "/x",
        "wait": 20.0,
    }
    assert dag.nodes["join"].upstream == ["rendezvous", "rendezvous_2"]


def test_string_parameters_are_coerced_by_annotation_and_default():
    @pipeline
    def typed(n: int, rate: float = 0.5, on: bool = False, names: list[str] | None = None):
        sf.light()

    values = typed.coerce_params({"n": "3", "rate": "0.25", "on": "true", "names": '["a","b"]'})
    assert values == {"n": 3, "rate": 0.25, "on": True, "names": ["a", "b"]}

    @pipeline
    def untyped(k=2, label="x"):
        sf.light()

    assert untyped.coerce_params({"k": "7"}) == {"k": 7, "label": "x"}


def test_bad_pipeline_parameters_are_named():
    with pytest.raises(PipelineError, match="needs parameter"):
        sf.parity_pipeline.build({"n": 1})
    with pytest.raises(PipelineError, match=r"has no parameter.*bogus"):
        sf.training.build({"bogus": 1})
    with pytest.raises(PipelineError, match="pipeline parameter 'rows'='many'"):
        sf.training.build({"rows": "many"})


def test_step_outside_a_pipeline_is_a_plain_call():
    assert sf.parity(5) == 1
    assert isinstance(sf.parity, Step)
    assert sf.split.outputs == ("train", "test")


def test_step_outputs_cannot_be_used_as_values_while_building():
    @pipeline
    def branching():
        if sf.source_value():
            sf.light()

    with pytest.raises(PipelineError, match="has no value while the pipeline is being built"):
        branching.build()

    @pipeline
    def unpacking():
        _a, _b = sf.source_value()

    with pytest.raises(PipelineError, match="cannot be unpacked"):
        unpacking.build()


def test_parameters_must_be_json_values():
    @pipeline
    def bad_param():
        sf.parity(object())

    with pytest.raises(PipelineError, match=r"argument 'n' of step 'parity' is a builtins\.object"):
        bad_param.build()

    @pipeline
    def nested_output():
        sf.join([sf.source_value()], "x")

    with pytest.raises(PipelineError, match="inside a container"):
        nested_output.build()


def test_bad_step_calls_and_definitions():
    @pipeline
    def wrong_args():
        sf.parity(1, 2)

    with pytest.raises(PipelineError, match="step 'parity' called with bad arguments"):
        wrong_args.build()

    with pytest.raises(PipelineError, match="named parameters only"):

        @step
        def varargs(*values):
            return values

    def plain() -> None:
        return None

    with pytest.raises(PipelineError, match="invalid output name 'not ok'"):
        step(outputs=("ok", "not ok"))(plain)
    with pytest.raises(PipelineError, match="output names repeat"):
        step(outputs=("a", "a"))(plain)
    with pytest.raises(PipelineError, match="retries must be"):
        step(retries=-1)(plain)
    with pytest.raises(PipelineError, match="calls no step"):
        Pipeline(plain).build()


def test_pipelines_cannot_be_nested_and_body_errors_are_wrapped():
    @pipeline
    def outer():
        sf.training.build()

    with pytest.raises(PipelineError, match="cannot be nested"):
        outer.build()

    @pipeline
    def broken():
        raise KeyError("oops")

    with pytest.raises(PipelineError, match="building pipeline 'broken' failed: KeyError"):
        broken.build()


def test_named_steps_and_pipelines():
    @step(name="renamed", outputs="result")
    def original(x: int) -> int:
        return x

    @pipeline(name="custom-name")
    def p():
        original(1)

    dag = p.build()
    assert dag.pipeline == "custom-name"
    assert list(dag.nodes) == ["renamed"]
    assert original.outputs == ("result",)


def test_the_package_itself_decorates_like_pipeline():
    @package
    def bare():
        sf.light()

    @package(name="named-flow")
    def named():
        sf.light()

    assert isinstance(bare, Pipeline) and bare.name == "bare"
    assert isinstance(named, Pipeline) and named.name == "named-flow"
    # Still the package: its names are there.
    assert package.run_pipeline is runner.run_pipeline
