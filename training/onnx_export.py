"""Export the fitted model to ONNX and prove that onnxruntime agrees with scikit-learn.

Classifiers go through skl2onnx (float32 in; `label` and `probabilities` out, no ZipMap).
Regressors are written as one ai.onnx.ml TreeEnsemble node in double precision: skl2onnx's
float32 TreeEnsembleRegressor sums leaf values in float32, which drifts by ~3e-5 on targets in
the hundreds, more than the 1e-5 parity bound. The input stays float32 and is cast inside the
graph, so every model takes the same request tensor.
"""

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from training.errors import TrainingError
from training.estimator import Estimator

INPUT_NAME = "input"
PARITY_TOLERANCE = 1e-5
_OPSET = 18
_ML_OPSET_TREE_ENSEMBLE = 5


@dataclass(frozen=True)
class ExportedModel:
    proto: onnx.ModelProto
    input_name: str
    outputs: dict[str, str]  # role ("label", "probabilities", "value") -> ONNX output name


def export(model: Estimator, n_features: int) -> ExportedModel:
    """Convert a fitted RandomForest to ONNX."""
    if isinstance(model, RandomForestClassifier):
        proto = to_onnx(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": _OPSET, "ai.onnx.ml": 3},
        )
        names = [o.name for o in proto.graph.output]
        return ExportedModel(proto, INPUT_NAME, {"label": names[0], "probabilities": names[1]})
    return ExportedModel(_regressor_to_onnx(model, n_features), INPUT_NAME, {"value": "value"})


def _regressor_to_onnx(model: RandomForestRegressor, n_features: int) -> onnx.ModelProto:
    feature_ids: list[int] = []
    splits: list[float] = []
    true_ids: list[int] = []
    true_leafs: list[int] = []
    false_ids: list[int] = []
    false_leafs: list[int] = []
    leaf_weights: list[float] = []
    roots: list[int] = []
    for tree in (e.tree_ for e in model.estimators_):
        branches = [i for i in range(tree.node_count) if tree.children_left[i] != -1]
        leaves = [i for i in range(tree.node_count) if tree.children_left[i] == -1]
        node_at = {node: len(feature_ids) + k for k, node in enumerate(branches)}
        leaf_at = {node: len(leaf_weights) + k for k, node in enumerate(leaves)}
        roots.append(len(feature_ids))
        if not branches:  # a single-leaf tree still needs a root branch: both sides lead to it
            feature_ids.append(0)
            splits.append(0.0)
            true_ids.append(leaf_at[0])
            true_leafs.append(1)
            false_ids.append(leaf_at[0])
            false_leafs.append(1)
        for node in branches:
            feature_ids.append(int(tree.feature[node]))
            splits.append(float(tree.threshold[node]))
            for child, ids, is_leaf in (
                (tree.children_left[node], true_ids, true_leafs),
                (tree.children_right[node], false_ids, false_leafs),
            ):
                ids.append(leaf_at[child] if child in leaf_at else node_at[child])
                is_leaf.append(int(child in leaf_at))
        leaf_weights.extend(float(tree.value[node][0][0]) for node in leaves)

    def doubles(name: str, values: list[float]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(values, dtype=np.float64), name)

    ensemble = helper.make_node(
        "TreeEnsemble",
        ["input_double"],
        ["value"],
        domain="ai.onnx.ml",
        aggregate_function=0,  # AVERAGE: a random forest's prediction is the mean over trees
        n_targets=1,
        tree_roots=roots,
        nodes_featureids=feature_ids,
        nodes_splits=doubles("nodes_splits", splits),
        nodes_modes=numpy_helper.from_array(np.zeros(len(splits), dtype=np.uint8), "modes"),
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leafs,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leafs,
        leaf_targetids=[0] * len(leaf_weights),
        leaf_weights=doubles("leaf_weights", leaf_weights),
    )
    graph = helper.make_graph(
        [helper.make_node("Cast", [INPUT_NAME], ["input_double"], to=TensorProto.DOUBLE), ensemble],
        "random_forest_regressor",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("value", TensorProto.DOUBLE, [None, 1])],
    )
    proto = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", _OPSET),
            helper.make_opsetid("ai.onnx.ml", _ML_OPSET_TREE_ENSEMBLE),
        ],
        producer_name="mlops-model-platform",
    )
    proto.ir_version = 10
    onnx.checker.check_model(proto)
    return proto


def session_for(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def check_parity(model: Estimator, exported: ExportedModel, X: np.ndarray) -> float:
    """Raise unless onnxruntime reproduces scikit-learn on every row; return the largest gap."""
    try:
        session = session_for(exported.proto)
        results = dict(
            zip(
                [o.name for o in session.get_outputs()],
                session.run(None, {exported.input_name: X.astype(np.float32)}),
                strict=True,
            )
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors on a broken graph
        raise TrainingError(
            f"ONNX parity check failed: onnxruntime cannot run the model: {exc}"
        ) from exc
    if isinstance(model, RandomForestClassifier):
        labels = np.asarray(results[exported.outputs["label"]]).ravel()
        expected_labels = model.predict(X)
        mismatched = int(np.count_nonzero(labels != expected_labels))
        if mismatched:
            raise TrainingError(
                f"ONNX parity check failed: {mismatched} of {len(X)} held-out rows get a "
                "different label from onnxruntime than from scikit-learn; nothing was registered"
            )
        got = np.asarray(results[exported.outputs["probabilities"]], dtype=np.float64)
        expected = model.predict_proba(X)
        what = "probability"
    else:
        got = np.asarray(results[exported.outputs["value"]], dtype=np.float64).ravel()
        expected = model.predict(X)
        what = "prediction"
    if got.shape != expected.shape:
        raise TrainingError(
            f"ONNX parity check failed: output shape {got.shape} != scikit-learn's {expected.shape}"
        )
    gap = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not gap <= PARITY_TOLERANCE:
        raise TrainingError(
            f"ONNX parity check failed: a {what} differs by {gap:.3g} "
            f"(allowed {PARITY_TOLERANCE:g}); nothing was registered"
        )
    return gap
