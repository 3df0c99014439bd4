"""Every estimator scikit-learn lists, fitted on tiny data, plus the variants that pull in other
internal classes (tree and distance types, losses, kernels, solvers, string categories).

The pickle allow-list must cover all of them; ``test_sklearn_coverage.py`` pickles each one,
loads it back through the guard and, where the model predicts, registers and serves it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Importing these is what makes scikit-learn list its experimental estimators.
from sklearn.experimental import enable_halving_search_cv, enable_iterative_imputer  # noqa: F401
from sklearn.utils import all_estimators

ROWS = 60


@dataclass
class Case:
    """A fitted model, the rows to call ``predict`` on (None: it does not predict), and the
    input a transformer's ``transform`` takes (None: it has no transform)."""

    label: str
    model: Any  # Any: any scikit-learn estimator
    predict_rows: Any = None  # Any: array, DataFrame or list of texts
    transform_rows: Any = None


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 5.0, size=(ROWS, 4))
    y_bin = (x[:, 0] + x[:, 1] > 5.0).astype(np.int64)
    y_multi = np.digitize(x[:, 0], [1.7, 3.4]).astype(np.int64)
    y_reg = x[:, 0] * 2.0 - x[:, 2]
    return {
        "x": x,
        "y_bin": y_bin,
        "y_multi": y_multi,
        "y_reg": y_reg,
        "y_pos": np.abs(y_reg) + 0.5,
        "y_2d_bin": np.column_stack([y_bin, 1 - y_bin]),
        "y_2d_reg": np.column_stack([y_reg, -y_reg]),
        "y_semi": np.where(np.arange(ROWS) % 3 == 0, -1, y_bin),
        "texts": [f"word{i % 7} token{i % 5} common" for i in range(ROWS)],
        "dicts": [{"a": float(v), "b": "x" if v > 2 else "y"} for v in x[:, 0]],
        "frame": pd.DataFrame(
            {
                "age": x[:, 0] * 10,
                "income": x[:, 1] * 1000,
                "city": np.array(["paris", "lyon", "nice"], dtype=object)[np.arange(ROWS) % 3],
            }
        ),
    }


def _lr() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200)


def _ridge() -> Any:
    from sklearn.linear_model import Ridge

    return Ridge()


def _scaler() -> Any:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


# Settings that fit on 60 rows of 4 features.
_SMALL: dict[str, dict[str, Any]] = {
    "GaussianRandomProjection": {"n_components": 2},
    "SparseRandomProjection": {"n_components": 2},
    "PLSSVD": {"n_components": 1},
    "MissingIndicator": {"features": "all"},
}


# Required constructor arguments of the estimators that have them.
def _required(name: str, is_classifier: bool) -> dict[str, Any] | None:
    base = _lr() if is_classifier else _ridge()
    if name in {"GridSearchCV", "HalvingGridSearchCV"}:
        return {"estimator": base, "param_grid": {"fit_intercept": [True, False]}, "cv": 2}
    if name in {"RandomizedSearchCV", "HalvingRandomSearchCV"}:
        return {"estimator": base, "param_distributions": {"fit_intercept": [True, False]}, "cv": 2}
    if name in {"StackingClassifier", "VotingClassifier"}:
        return {"estimators": [("a", _lr()), ("b", _lr().set_params(C=0.5))]}
    if name in {"StackingRegressor", "VotingRegressor"}:
        return {"estimators": [("a", _ridge()), ("b", _ridge().set_params(alpha=2.0))]}
    if name == "ColumnTransformer":
        return {"transformers": [("scale", _scaler(), [0, 1]), ("keep", "passthrough", [2, 3])]}
    if name == "FeatureUnion":
        from sklearn.decomposition import PCA

        return {"transformer_list": [("scale", _scaler()), ("pca", PCA(n_components=2))]}
    if name == "Pipeline":
        return {"steps": [("scale", _scaler()), ("model", base)]}
    if name == "SparseCoder":
        return {"dictionary": np.eye(3, 4)}
    if name == "FrozenEstimator":
        d = _data()
        return {"estimator": _lr().fit(d["x"], d["y_bin"])}
    if name in {
        "RFE",
        "RFECV",
        "SelectFromModel",
        "SequentialFeatureSelector",
        "SelfTrainingClassifier",
    }:
        return {"estimator": _lr()}
    if name in {"MultiOutputRegressor", "RegressorChain"}:
        return {"estimator": _ridge()}
    if name in _SMALL:
        return dict(_SMALL[name])
    params = inspect.signature(_estimators()[name]).parameters
    if "estimator" in params and params["estimator"].default is inspect.Parameter.empty:
        return {"estimator": _lr()}
    return {}


def _estimators() -> dict[str, type]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(all_estimators())


# Estimators that take something other than a numeric matrix, or a special target.
def _fit_args(name: str, d: dict[str, Any], kinds: set[str]) -> tuple[Any, ...]:
    x = d["x"]
    if name in {"CountVectorizer", "TfidfVectorizer", "HashingVectorizer"}:
        return (d["texts"],)
    if name == "DictVectorizer":
        return (d["dicts"],)
    if name == "FeatureHasher":
        return ([{k: str(v) for k, v in row.items()} for row in d["dicts"]],)
    if name in {"LabelEncoder", "LabelBinarizer"}:
        return (d["y_multi"],)
    if name == "MultiLabelBinarizer":
        return ([[int(v)] for v in d["y_multi"]],)
    if name == "IsotonicRegression":
        return (x[:, 0], d["y_reg"])
    if name == "PatchExtractor":
        return (x.reshape(ROWS // 4, 4, 4),)
    if name == "KernelCenterer":
        return (x @ x.T,)
    if name in {"MultiOutputClassifier", "ClassifierChain"}:
        return (x, d["y_2d_bin"])
    if name in {"MultiOutputRegressor", "RegressorChain"} or name.startswith("MultiTask"):
        return (x, d["y_2d_reg"])
    if name in {"LabelPropagation", "LabelSpreading", "SelfTrainingClassifier"}:
        return (x, d["y_semi"])
    if name in {"PoissonRegressor", "GammaRegressor", "TweedieRegressor"}:
        return (x, d["y_pos"])
    if name in {"CCA", "PLSCanonical", "PLSSVD"}:
        return (x, d["y_2d_reg"])
    if "classifier" in kinds:
        return (x, d["y_bin"])
    if "regressor" in kinds:
        return (x, d["y_reg"])
    # Transformers and clusterers: supervised ones get the binary target, others ignore it.
    return (x, d["y_bin"])


def _kinds() -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in ("classifier", "regressor", "transformer", "cluster"):
            for name, _ in all_estimators(type_filter=kind):
                kinds.setdefault(name, set()).add(kind)
    return kinds


def _variants() -> Iterator[tuple[str, Any, str]]:
    """Parameter settings whose fitted pickles name other internal classes: label, unfitted
    estimator, and which target to fit (``bin``, ``multi``, ``reg``, ``pos``)."""
    from sklearn import ensemble, gaussian_process, linear_model, neighbors, neural_network, svm
    from sklearn.gaussian_process import kernels

    for algorithm in ("ball_tree", "kd_tree", "brute"):
        for metric in ("euclidean", "manhattan", "chebyshev", "minkowski"):
            yield (
                f"KNeighborsClassifier[{algorithm},{metric}]",
                neighbors.KNeighborsClassifier(algorithm=algorithm, metric=metric),
                "bin",
            )
    yield (
        "KNeighborsRegressor[ball_tree,seuclidean]",
        neighbors.KNeighborsRegressor(
            algorithm="ball_tree", metric="seuclidean", metric_params={"V": np.ones(4)}
        ),
        "reg",
    )
    yield (
        "NearestNeighbors-based LOF[novelty]",
        neighbors.LocalOutlierFactor(novelty=True),
        "bin",
    )
    yield ("KernelDensity[kd_tree]", neighbors.KernelDensity(algorithm="kd_tree"), "bin")
    for loss in (
        "hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron",
        "squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive",
    ):  # fmt: skip
        yield f"SGDClassifier[{loss}]", linear_model.SGDClassifier(loss=loss), "bin"
    for loss in ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        yield f"SGDRegressor[{loss}]", linear_model.SGDRegressor(loss=loss), "reg"
    yield "SGDClassifier[multiclass]", linear_model.SGDClassifier(), "multi"
    for loss in ("log_loss", "exponential"):
        yield (
            f"GradientBoostingClassifier[{loss}]",
            ensemble.GradientBoostingClassifier(loss=loss, n_estimators=5),
            "bin",
        )
    yield (
        "GradientBoostingClassifier[multiclass]",
        ensemble.GradientBoostingClassifier(n_estimators=5),
        "multi",
    )
    for loss in ("squared_error", "absolute_error", "huber", "quantile"):
        yield (
            f"GradientBoostingRegressor[{loss}]",
            ensemble.GradientBoostingRegressor(loss=loss, n_estimators=5),
            "reg",
        )
    for loss in ("squared_error", "absolute_error", "gamma", "poisson", "quantile"):
        yield (
            f"HistGradientBoostingRegressor[{loss}]",
            ensemble.HistGradientBoostingRegressor(
                loss=loss, max_iter=5, **({"quantile": 0.5} if loss == "quantile" else {})
            ),
            "pos" if loss in ("gamma", "poisson") else "reg",
        )
    yield (
        "HistGradientBoostingClassifier[multiclass,categorical]",
        ensemble.HistGradientBoostingClassifier(
            max_iter=5, categorical_features=[False, False, False, True]
        ),
        "multi_cat",
    )
    for name in ("RandomForestClassifier", "ExtraTreesClassifier"):
        yield (
            f"{name}[multiclass]",
            getattr(ensemble, name)(n_estimators=3),
            "multi",
        )
    yield (
        "RandomForestRegressor[poisson]",
        ensemble.RandomForestRegressor(n_estimators=3, criterion="poisson"),
        "pos",
    )
    yield "AdaBoostRegressor", ensemble.AdaBoostRegressor(n_estimators=3), "reg"
    for power, link in ((0.0, "identity"), (1.5, "log"), (2.0, "auto"), (3.0, "log")):
        yield (
            f"TweedieRegressor[{power},{link}]",
            linear_model.TweedieRegressor(power=power, link=link),
            "pos",
        )
    for kernel_name, kernel in (
        ("rbf+white", kernels.RBF() + kernels.WhiteKernel()),
        ("matern*const", kernels.ConstantKernel() * kernels.Matern()),
        ("rq", kernels.RationalQuadratic()),
        ("exp", kernels.Exponentiation(kernels.RBF(), 2)),
        ("dot**2", kernels.DotProduct() ** 2),
        ("pairwise", kernels.PairwiseKernel()),
    ):
        yield (
            f"GaussianProcessRegressor[{kernel_name}]",
            # Fixed hyperparameters: the optimizer can walk some kernels off on 60 rows.
            gaussian_process.GaussianProcessRegressor(kernel=kernel, alpha=0.1, optimizer=None),
            "reg",
        )
    yield (
        "GaussianProcessClassifier[multiclass]",
        gaussian_process.GaussianProcessClassifier(),
        "multi",
    )
    for solver in ("adam", "sgd", "lbfgs"):
        yield (
            f"MLPClassifier[{solver}]",
            neural_network.MLPClassifier(solver=solver, max_iter=20, hidden_layer_sizes=(5,)),
            "multi",
        )
    for kernel_name in ("linear", "poly", "rbf", "sigmoid"):
        yield f"SVC[{kernel_name}]", svm.SVC(kernel=kernel_name), "multi"
    yield "SVC[probability]", svm.SVC(probability=True), "bin"
    yield "LogisticRegression[multiclass]", _lr(), "multi"


def _fit(model: Any, d: dict[str, Any], target: str) -> Any:
    x = d["x"]
    if target == "multi_cat":
        x = x.copy()
        x[:, 3] = np.arange(ROWS) % 3
        return model.fit(x, d["y_multi"])
    y = {"bin": d["y_bin"], "multi": d["y_multi"], "reg": d["y_reg"], "pos": d["y_pos"]}[target]
    return model.fit(x, y)


def _frame_pipelines(d: dict[str, Any]) -> Iterator[Case]:
    """Pipelines on a mixed-type DataFrame, the way most tabular models are built."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

    frame, y = d["frame"], d["y_bin"]
    numeric = make_pipeline(SimpleImputer(), FunctionTransformer(np.log1p))
    prep = ColumnTransformer(
        [
            ("num", numeric, ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    onehot = Pipeline([("prep", prep), ("lr", _lr())]).fit(frame, y)
    yield Case("Pipeline[frame,onehot]", onehot, frame)
    selector = ColumnTransformer(
        [
            ("num", "passthrough", make_column_selector(dtype_include="number")),
            ("cat", OrdinalEncoder(), make_column_selector(dtype_include=object)),
        ]
    )
    hgb = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    yield Case(
        "Pipeline[frame,selector,hgb]",
        make_pipeline(selector, hgb).fit(frame, y),
        frame,
    )
    # A pandas-output transformer needs dense blocks, so a dense one-hot encoder here.
    dense = ColumnTransformer(
        [
            ("num", _scaler(), ["age", "income"]),
            ("cat", OneHotEncoder(sparse_output=False), ["city"]),
        ]
    ).set_output(transform="pandas")
    yield Case("Pipeline[frame,pandas-output]", make_pipeline(dense, _lr()).fit(frame, y), frame)


def cases() -> list[Case]:
    """One fitted case per estimator scikit-learn lists, then the variants."""
    d = _data()
    kinds = _kinds()
    found: list[Case] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in _estimators().items():
            kind = kinds.get(name, set())
            params = _required(name, "classifier" in kind) or {}
            if "random_state" in inspect.signature(cls).parameters:
                params.setdefault("random_state", 0)
            model = cls(**params)
            args = _fit_args(name, d, kind)
            model.fit(*args)
            if name == "IsotonicRegression":  # fitted on one column, predicts (n, 1) rows
                predict_rows = d["x"][:, :1]
            elif args[0] is d["x"] and hasattr(model, "predict"):
                predict_rows = d["x"]
            else:
                predict_rows = None
            found.append(
                Case(
                    name,
                    model,
                    predict_rows=predict_rows,
                    transform_rows=args[0] if hasattr(model, "transform") else None,
                )
            )
        for label, estimator, target in _variants():
            model = _fit(estimator, d, target)
            x = d["x"]
            if target == "multi_cat":
                x = x.copy()
                x[:, 3] = np.arange(ROWS) % 3
            found.append(Case(label, model, predict_rows=x if hasattr(model, "predict") else None))
        found.extend(_frame_pipelines(d))
    return found
