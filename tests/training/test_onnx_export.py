"""ONNX export and the parity check, including models tampered with after export."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from sklearn.ensemble import RandomForestRegressor

from training import estimator, onnx_export
from training.config import TrainConfig
from training.datasets import load_dataset
from training.errors import TrainingError


def _trained(dataset_name: str, n_estimators: int = 10) -> tuple[estimator.Estimator, np.ndarray]:
    dataset = load_dataset(dataset_name)
    config = TrainConfig(dataset=dataset_name, n_estimators=n_estimators)
    split = estimator.split_dataset(dataset, config)
    return estimator.fit(dataset, split, config), split.X_test


def _attribute(proto: onnx.ModelProto, op_type: str, name: str) -> onnx.AttributeProto:
    node = next(n for n in proto.graph.node if n.op_type == op_type)
    attribute: onnx.AttributeProto = next(a for a in node.attribute if a.name == name)
    return attribute


def _outputs(exported: onnx_export.ExportedModel, X: np.ndarray) -> dict[str, np.ndarray]:
    session = onnx_export.session_for(exported.proto)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {exported.input_name: X}), strict=True))


def test_classifier_graph_follows_the_contract() -> None:
    model, X = _trained("iris")
    exported = onnx_export.export(model, 4)
    onnx.checker.check_model(exported.proto)
    assert exported.input_name == "input"
    assert exported.outputs == {"label": "label", "probabilities": "probabilities"}
    (graph_input,) = exported.proto.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = graph_input.type.tensor_type.shape.dim
    assert [d.dim_value for d in dims][1:] == [4]
    assert not dims[0].HasField("dim_value")  # any batch size
    outputs = _outputs(exported, X)
    assert outputs["label"].dtype == np.int64
    assert outputs["probabilities"].dtype == np.float32
    assert outputs["probabilities"].shape == (len(X), 3)


def test_classifier_parity() -> None:
    model, X = _trained("iris")
    gap = onnx_export.check_parity(model, onnx_export.export(model, 4), X)
    assert 0.0 <= gap <= onnx_export.PARITY_TOLERANCE


def test_regressor_graph_follows_the_contract() -> None:
    model, X = _trained("diabetes")
    exported = onnx_export.export(model, 10)
    # The server on main reads the role "value" (CONTRACT.md says `label`; see the merge notes).
    assert exported.outputs == {"value": "value"}
    assert [o.name for o in exported.proto.graph.output] == ["value"]
    outputs = _outputs(exported, X)
    assert outputs["value"].shape == (len(X), 1)


def test_regressor_parity_within_1e_5() -> None:
    # The full default forest: float32 summation would miss the bound on this dataset.
    model, X = _trained("diabetes", n_estimators=100)
    exported = onnx_export.export(model, 10)
    gap = onnx_export.check_parity(model, exported, X)
    assert gap <= 1e-5
    predicted = _outputs(exported, X)["value"].ravel()
    assert np.max(np.abs(predicted - model.predict(X))) <= 1e-5


def test_regressor_with_single_leaf_trees() -> None:
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, np.full(20, 4.5))
    assert all(tree.tree_.node_count == 1 for tree in model.estimators_)
    exported = onnx_export.export(model, 3)
    assert onnx_export.check_parity(model, exported, X) <= 1e-12
    assert np.allclose(_outputs(exported, X)["value"], 4.5)


def test_tampered_classifier_labels_fail_parity() -> None:
    model, X = _trained("iris")
    exported = onnx_export.export(model, 4)
    class_ids = _attribute(exported.proto, "TreeEnsembleClassifier", "class_ids")
    class_ids.ints[:] = [(c + 1) % 3 for c in class_ids.ints]  # every leaf votes for the next class
    with pytest.raises(TrainingError) as caught:
        onnx_export.check_parity(model, exported, X)
    assert str(caught.value) == (
        f"ONNX parity check failed: {len(X)} of {len(X)} held-out rows get a different label "
        "from onnxruntime than from scikit-learn; nothing was registered"
    )


def test_tampered_classifier_weight_fails_parity() -> None:
    model, X = _trained("iris")
    exported = onnx_export.export(model, 4)
    weights = _attribute(exported.proto, "TreeEnsembleClassifier", "class_weights")
    weights.floats[:] = [w * 1.01 for w in weights.floats]  # labels unchanged, probabilities off
    with pytest.raises(TrainingError, match=r"^ONNX parity check failed: a probability differs"):
        onnx_export.check_parity(model, exported, X)


def _shift_leaves(exported: onnx_export.ExportedModel, by: float) -> None:
    attribute = _attribute(exported.proto, "TreeEnsemble", "leaf_weights")
    attribute.t.CopyFrom(
        numpy_helper.from_array(numpy_helper.to_array(attribute.t) + by, attribute.t.name)
    )


def test_tampered_regressor_leaf_fails_parity() -> None:
    model, X = _trained("diabetes")
    exported = onnx_export.export(model, 10)
    _shift_leaves(exported, 1e-3)  # every tree, so every prediction, moves by 100x the tolerance
    with pytest.raises(TrainingError) as caught:
        onnx_export.check_parity(model, exported, X)
    assert str(caught.value) == (
        "ONNX parity check failed: a prediction differs by 0.001 (allowed 1e-05); "
        "nothing was registered"
    )


def test_a_gap_inside_the_tolerance_passes() -> None:
    model, X = _trained("diabetes")
    exported = onnx_export.export(model, 10)
    _shift_leaves(exported, 1e-6)
    assert 5e-7 < onnx_export.check_parity(model, exported, X) <= 1e-5


def test_a_graph_onnxruntime_cannot_run_fails_parity() -> None:
    model, X = _trained("iris")
    exported = onnx_export.export(model, 4)
    del exported.proto.graph.node[:]
    with pytest.raises(TrainingError, match=r"^ONNX parity check failed: onnxruntime cannot run"):
        onnx_export.check_parity(model, exported, X)
