"""What each hook that the pickle allow-list lets a file reach was read to do.

Keys are ``<defining class>.<hook>`` (``<class>.<attribute>.__set__`` for a data descriptor)
or, for functions, ``<module>.<name>``; values say what reading the code showed. Which hooks
a file reaches, and why these, is explained in :mod:`modelport.flavors._pickle_allowlist`;
``tests/unit/flavors/test_pickle_allowlist.py`` recomputes them for every allowed class and
fails on any that is missing here.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelport.flavors._pickle_allowlist import (
    CLASSIFICATION_METRICS,
    CLUSTER_METRICS,
    NUMPY_REDUCTIONS,
    NUMPY_UFUNCS,
    RANKING_METRICS,
    REGRESSION_METRICS,
)


def _audited(note: str, keys: str) -> dict[str, str]:
    return dict.fromkeys(keys.split(), note)


def _expand(module: str, names: str, suffixes: str) -> str:
    """``module.<name><suffix>`` for every name and suffix."""
    return " ".join(f"{module}.{n}{s}" for n in names.split() for s in suffixes.split()) + " "


# Hook implementations (``<defining class>.<hook>``, ``<class>.<attr>.__set__`` for a data
# descriptor) reached by allowed classes, and functions, each with what reading it showed.
AUDIT: Mapping[str, str] = {
    # -- Python and numpy types implemented in C ------------------------------------------
    **_audited(
        "CPython container: stores keys and values; default_factory is called only for a "
        "missing key, later, and can only be an allowed callable",
        """
        collections.OrderedDict.__eq__ collections.OrderedDict.__init__
        collections.OrderedDict.__setitem__ collections.defaultdict.__init__
        collections.defaultdict.default_factory.__set__
        """,
    ),
    **_audited(
        "stores func, args and keywords (func must be callable, so an allowed global); "
        "never calls func while being built",
        "functools.partial.__new__ functools.partial.__setattr__ functools.partial.__setstate__",
    ),
    **_audited(
        "numpy scalar type: converts its argument to a value of the type; compares and "
        "hashes the value (C)",
        """
        numpy.bool.__new__ numpy.bool.__eq__ numpy.bool.__hash__
        numpy.bytes_.__new__ numpy.bytes_.__eq__ numpy.bytes_.__hash__
        numpy.str_.__new__ numpy.str_.__eq__ numpy.str_.__hash__
        numpy.complex64.__new__ numpy.complex64.__eq__ numpy.complex64.__hash__
        numpy.complex128.__new__ numpy.complex128.__eq__ numpy.complex128.__hash__
        numpy.float16.__new__ numpy.float16.__eq__ numpy.float16.__hash__
        numpy.float32.__new__ numpy.float32.__eq__ numpy.float32.__hash__
        numpy.float64.__new__ numpy.float64.__eq__ numpy.float64.__hash__
        numpy.longdouble.__new__ numpy.longdouble.__eq__ numpy.longdouble.__hash__
        numpy.int8.__new__ numpy.int8.__eq__ numpy.int8.__hash__
        numpy.int16.__new__ numpy.int16.__eq__ numpy.int16.__hash__
        numpy.int32.__new__ numpy.int32.__eq__ numpy.int32.__hash__
        numpy.int64.__new__ numpy.int64.__eq__ numpy.int64.__hash__
        numpy.uint8.__new__ numpy.uint8.__eq__ numpy.uint8.__hash__
        numpy.uint16.__new__ numpy.uint16.__eq__ numpy.uint16.__hash__
        numpy.uint32.__new__ numpy.uint32.__eq__ numpy.uint32.__hash__
        numpy.uint64.__new__ numpy.uint64.__eq__ numpy.uint64.__hash__
        numpy.generic.__setstate__
        """,
    ),
    **_audited(
        "numpy.object_(x) returns x; attribute and item access go to that object (C)",
        """
        numpy.object_.__new__ numpy.object_.__eq__ numpy.object_.__hash__
        numpy.object_.__setattr__ numpy.object_.__setitem__
        """,
    ),
    **_audited(
        "parses a type code or tuple; __setstate__ sets byte order, fields, sub-array shape "
        "and sizes from the state, each checked in C (arraydescr_setstate)",
        "numpy.dtype.__new__ numpy.dtype.__eq__ numpy.dtype.__hash__ numpy.dtype.__setstate__",
    ),
    **_audited(
        "allocates from shape and dtype; __setstate__ copies raw bytes after checking their "
        "length against shape and item size (object arrays take a list of objects already "
        "unpickled); item assignment and comparison are elementwise",
        """
        numpy.ndarray.__new__ numpy.ndarray.__eq__ numpy.ndarray.__setitem__
        numpy.ndarray.__setstate__
        """,
    ),
    **_audited(
        "masked array (Python): __new__ converts data and mask with np.array; __setstate__ "
        "restores both through ndarray.__setstate__ and sets fill_value (converted to the "
        "dtype); item assignment and comparison are elementwise",
        """
        numpy.ma.MaskedArray.__new__ numpy.ma.MaskedArray.__eq__
        numpy.ma.MaskedArray.__setitem__ numpy.ma.MaskedArray.__setstate__
        """,
    ),
    **_audited(
        "random bit generators: seed from a number or SeedSequence; __setstate__ takes a "
        "state dict whose generator name must match, then sets integers (Cython)",
        """
        numpy.random._mt19937.MT19937.__new__ numpy.random._mt19937.MT19937.__init__
        numpy.random._pcg64.PCG64.__new__ numpy.random._pcg64.PCG64.__init__
        numpy.random.bit_generator.BitGenerator.__new__
        numpy.random.bit_generator.BitGenerator.__init__
        numpy.random.bit_generator.BitGenerator.__setstate__
        numpy.random.bit_generator.SeedSequence.__new__
        numpy.random.bit_generator.SeedSequence.__init__
        numpy.random.bit_generator.SeedSequence.__setstate__
        """,
    ),
    # -- scipy ---------------------------------------------------------------------------
    **_audited(
        "B-spline: __init__ converts knots and coefficients with np.asarray and checks the "
        "degree; the t and c setters store arrays",
        """
        scipy.interpolate._bsplines.BSpline.__init__ scipy.interpolate._bsplines.BSpline.c.__set__
        scipy.interpolate._bsplines.BSpline.t.__set__
        """,
    ),
    **_audited(
        "sparse matrices: __init__ builds from another matrix, a tuple of arrays or a shape "
        "(np.asarray, check_shape), never from a path; __setstate__ renames legacy row/col "
        "keys then updates __dict__; item assignment is index arithmetic; the setters store "
        "flags, shapes (reshape) and array views",
        """
        scipy.sparse._base._spbase.__init__ scipy.sparse._base._spbase.__eq__
        scipy.sparse._bsr._bsr_base.__init__ scipy.sparse._bsr._bsr_base.__setitem__
        scipy.sparse._compressed._cs_matrix.__init__
        scipy.sparse._compressed._cs_matrix.has_canonical_format.__set__
        scipy.sparse._compressed._cs_matrix.has_sorted_indices.__set__
        scipy.sparse._coo._coo_base.__init__ scipy.sparse._coo._coo_base.__setitem__
        scipy.sparse._coo._coo_base.col.__set__ scipy.sparse._coo._coo_base.row.__set__
        scipy.sparse._coo.coo_matrix.__setitem__ scipy.sparse._coo.coo_matrix.__setstate__
        scipy.sparse._data._data_matrix.__init__ scipy.sparse._data._data_matrix.dtype.__set__
        scipy.sparse._dia._dia_base.__init__ scipy.sparse._dok._dok_base.__init__
        scipy.sparse._dok.dok_matrix.shape.__set__ scipy.sparse._index.IndexMixin.__setitem__
        scipy.sparse._lil._lil_base.__init__ scipy.sparse._lil._lil_base.__setitem__
        scipy.sparse._matrix.spmatrix.shape.__set__
        """,
    ),
    # -- scikit-learn, Python --------------------------------------------------------------
    "sklearn.base.BaseEstimator.__setstate__": (
        "pops _sklearn_version and warns if it differs, then updates __dict__"
    ),
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor.__setstate__": (
        "updates __dict__, then casts the nodes array to the predictor's record dtype"
    ),
    "sklearn.isotonic.IsotonicRegression.__setstate__": (
        "BaseEstimator's, then rebuilds f_ from its threshold arrays with "
        "scipy.interpolate.interp1d (computation)"
    ),
    **_audited(
        "Bunch (a dict): __init__ stores keyword arguments, attribute access reads and "
        "writes items, __setstate__ does nothing",
        """
        sklearn.utils._bunch.Bunch.__init__ sklearn.utils._bunch.Bunch.__getattr__
        sklearn.utils._bunch.Bunch.__setattr__ sklearn.utils._bunch.Bunch.__setstate__
        """,
    ),
    **_audited(
        "metadata routing: __init__ makes one MethodMetadataRequest per known method name; "
        "__getattr__ answers only the fixed composite method names, merging those objects",
        """
        sklearn.utils._metadata_requests.MetadataRequest.__init__
        sklearn.utils._metadata_requests.MetadataRequest.__getattr__
        """,
    ),
    "sklearn.frozen._frozen.FrozenEstimator.__getattr__": (
        "reads the attribute from the wrapped estimator (itself an allowed object)"
    ),
    **_audited(
        "deprecation wrapper: warns, then object.__new__",
        """
        sklearn.linear_model._passive_aggressive.PassiveAggressiveClassifier.__new__
        sklearn.linear_model._passive_aggressive.PassiveAggressiveRegressor.__new__
        """,
    ),
    **_audited(
        "dataclass: stores two bounds and two flags; compares fields",
        "sklearn._loss.link.Interval.__init__ sklearn._loss.link.Interval.__eq__",
    ),
    **_audited(
        "checks a numeric parameter (check_scalar), then builds the Cython loss and an "
        "Interval from numbers",
        """
        sklearn._loss.loss.HalfTweedieLoss.__init__
        sklearn._loss.loss.HalfTweedieLossIdentity.__init__
        sklearn._loss.loss.HuberLoss.__init__ sklearn._loss.loss.PinballLoss.__init__
        """,
    ),
    "sklearn.cluster._birch._CFSubcluster.__init__": (
        "stores an array and its squared norm (np.dot)"
    ),
    **_audited(
        "maps the deprecated criterion 'friedman_mse' (with a warning), then assigns its "
        "parameters",
        """
        sklearn.ensemble._forest.ExtraTreesRegressor.__init__
        sklearn.ensemble._forest.RandomForestRegressor.__init__
        sklearn.tree._classes.DecisionTreeRegressor.__init__
        """,
    ),
    **_audited(
        "checks its implementation name against a constant list, then assigns parameters",
        "sklearn.svm._base.BaseLibSVM.__init__",
    ),
    **_audited("empty base __init__", "sklearn.utils.metaestimators._BaseComposition.__init__"),
    **_audited(
        "checks integer and boolean parameters, then assigns them",
        """
        sklearn.model_selection._split._BaseKFold.__init__
        sklearn.model_selection._split._RepeatedSplits.__init__
        """,
    ),
    **_audited(
        "kernels: equality compares get_params() values; the theta setter exponentiates an "
        "array into hyperparameters and calls set_params (attribute assignment)",
        """
        sklearn.gaussian_process.kernels.Kernel.__eq__
        sklearn.gaussian_process.kernels.Kernel.theta.__set__
        sklearn.gaussian_process.kernels.KernelOperator.__eq__
        sklearn.gaussian_process.kernels.KernelOperator.theta.__set__
        sklearn.gaussian_process.kernels.CompoundKernel.__eq__
        sklearn.gaussian_process.kernels.CompoundKernel.theta.__set__
        sklearn.gaussian_process.kernels.Exponentiation.__eq__
        sklearn.gaussian_process.kernels.Exponentiation.theta.__set__
        """,
    ),
    **_audited(
        "namedtuples: __new__ builds the tuple (Hyperparameter also shapes its bounds with "
        "np.atleast_2d/np.repeat); fields are read-only; equality compares fields",
        """
        sklearn.gaussian_process.kernels.Hyperparameter.__new__
        sklearn.gaussian_process.kernels.Hyperparameter.__eq__
        sklearn.gaussian_process.kernels.Hyperparameter.bounds.__set__
        sklearn.gaussian_process.kernels.Hyperparameter.fixed.__set__
        sklearn.gaussian_process.kernels.Hyperparameter.n_elements.__set__
        sklearn.gaussian_process.kernels.Hyperparameter.name.__set__
        sklearn.gaussian_process.kernels.Hyperparameter.value_type.__set__
        sklearn.impute._iterative._ImputerTriplet.__new__
        sklearn.impute._iterative._ImputerTriplet.estimator.__set__
        sklearn.impute._iterative._ImputerTriplet.feat_idx.__set__
        sklearn.impute._iterative._ImputerTriplet.neighbor_feat_idx.__set__
        """,
    ),
    # -- scikit-learn, Cython (read in the .pyx sources shipped with the package) -----------
    **_audited(
        "Tree: __cinit__ sizes per-output buffers from its arguments; __setstate__ checks "
        "the node and value arrays' dtypes and shapes, then copies exactly that many bytes",
        "sklearn.tree._tree.Tree.__new__ sklearn.tree._tree.Tree.__setstate__",
    ),
    **_audited(
        "KD/ball trees: __cinit__ makes one-element placeholder arrays; __init__ builds a "
        "tree from data (check_array, computation); __setstate__ assigns arrays, integers "
        "and the distance metric from the state tuple and recomputes the weight sum",
        _expand(
            "sklearn.neighbors._kd_tree",
            "BinaryTree32 BinaryTree64",
            ".__new__ .__init__ .__setstate__",
        )
        + _expand(
            "sklearn.neighbors._ball_tree",
            "BinaryTree32 BinaryTree64",
            ".__new__ .__init__ .__setstate__",
        )
        + """
        sklearn.neighbors._kd_tree.KDTree32.__new__ sklearn.neighbors._kd_tree.KDTree64.__new__
        sklearn.neighbors._ball_tree.BallTree32.__new__
        sklearn.neighbors._ball_tree.BallTree64.__new__
        """,
    ),
    **_audited(
        "distance metrics: __cinit__ sets p=2 and one-element arrays; __init__ stores p, "
        "weights or V as float arrays (Mahalanobis inverts V); __setstate__ sets p, vec and "
        "mat, and for PyFuncDistance func and kwargs (func is called on two arrays at query "
        "time and can only be an allowed callable)",
        _expand(
            "sklearn.metrics._dist_metrics",
            """
            BrayCurtisDistance CanberraDistance ChebyshevDistance DiceDistance EuclideanDistance
            HammingDistance HaversineDistance JaccardDistance KulsinskiDistance
            MahalanobisDistance ManhattanDistance MatchingDistance MinkowskiDistance
            PyFuncDistance RogersTanimotoDistance RussellRaoDistance SEuclideanDistance
            SokalMichenerDistance SokalSneathDistance DistanceMetric
            """,
            "32.__new__ 32.__init__ 32.__setstate__ 64.__new__ 64.__init__ 64.__setstate__",
        )
        + " sklearn.metrics._dist_metrics.DistanceMetric.__new__"
        " sklearn.metrics._dist_metrics.DistanceMetric.__setstate__",
    ),
    **_audited(
        "Cython losses: store one double parameter (power, delta, quantile); "
        "CyHalfMultinomialLoss.__setstate__ is Cython's generated one, which assigns its "
        "typed fields after checking the layout checksum",
        _expand(
            "sklearn._loss._loss",
            """
            CyAbsoluteError CyExponentialLoss CyHalfBinomialLoss CyHalfGammaLoss
            CyHalfMultinomialLoss CyHalfPoissonLoss CyHalfSquaredError CyHalfTweedieLoss
            CyHalfTweedieLossIdentity CyHuberLoss CyPinballLoss CyLossFunction
            """,
            ".__new__",
        )
        + """
        sklearn._loss._loss.CyHalfMultinomialLoss.__setstate__
        sklearn._loss._loss.CyHalfTweedieLoss.__init__
        sklearn._loss._loss.CyHalfTweedieLoss.power.__set__
        sklearn._loss._loss.CyHalfTweedieLossIdentity.__init__
        sklearn._loss._loss.CyHalfTweedieLossIdentity.power.__set__
        sklearn._loss._loss.CyHuberLoss.__init__ sklearn._loss._loss.CyHuberLoss.delta.__set__
        sklearn._loss._loss.CyPinballLoss.__init__
        sklearn._loss._loss.CyPinballLoss.quantile.__set__
        """,
    ),
    **_audited(
        "SGD losses (Cython): store one double (threshold or epsilon)",
        _expand(
            "sklearn.linear_model._sgd_fast",
            """
            Classification Regression EpsilonInsensitive Hinge ModifiedHuber
            SquaredEpsilonInsensitive SquaredHinge
            """,
            ".__new__ .__init__",
        ),
    ),
    # -- functions: called with arguments from the file ------------------------------------
    **_audited(
        "rebuilds an object from an allowed class: base.__new__(cls, state), then "
        "base.__init__ (both audited above)",
        "copyreg._reconstructor",
    ),
    **_audited(
        "replaced by a latin-1-only encoder (LATIN1_ENCODE): the file cannot choose a codec",
        "_codecs.encode",
    ),
    **_audited(
        "numpy reconstruction helpers: allocate an array or scalar of an allowed type from "
        "shape, dtype and raw bytes (object dtype cannot be made from a buffer)",
        """
        numpy._core.multiarray._reconstruct numpy._core.multiarray.scalar
        numpy._core.numeric._frombuffer numpy.ma.core._mareconstruct
        """,
    ),
    **_audited(
        "numpy.random constructors: look a bit generator up by name in numpy's own table "
        "(or take an allowed class) and call it; the SeedSequence unpickler is Cython's "
        "generated one",
        """
        numpy.random._pickle.__bit_generator_ctor numpy.random._pickle.__generator_ctor
        numpy.random._pickle.__randomstate_ctor
        numpy.random.bit_generator.__pyx_unpickle_SeedSequence
        sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss
        """,
    ),
    **_audited(
        "newObj(cls) is cls.__new__(cls): allocation of an allowed class",
        """
        sklearn.metrics._dist_metrics.newObj sklearn.neighbors._kd_tree.newObj
        sklearn.neighbors._ball_tree.newObj
        """,
    ),
    **_audited(
        "pure computation on arrays (elementwise math, reductions, conversions, scores, "
        "statistics); no I/O, no callable argument",
        " ".join(f"numpy.{name}" for name in (NUMPY_UFUNCS + NUMPY_REDUCTIONS).split())
        + """
        scipy._lib.array_api_compat.numpy._aliases.asarray sklearn.utils.validation.check_array
        sklearn.cluster._kmeans._kmeans_single_lloyd
        sklearn.feature_selection._mutual_info.mutual_info_classif
        sklearn.feature_selection._mutual_info.mutual_info_regression
        sklearn.feature_selection._univariate_selection.chi2
        sklearn.feature_selection._univariate_selection.f_classif
        sklearn.feature_selection._univariate_selection.f_regression
        sklearn.feature_selection._univariate_selection.r_regression
        sklearn.metrics._scorer.negative_likelihood_ratio
        sklearn.metrics._scorer.positive_likelihood_ratio
        """,
    ),
    **_audited(
        "metric functions scorers refer to: compute a score from label and prediction arrays",
        " ".join(
            f"{module}.{name}"
            for module, names in (
                ("sklearn.metrics._classification", CLASSIFICATION_METRICS),
                ("sklearn.metrics._ranking", RANKING_METRICS),
                ("sklearn.metrics._regression", REGRESSION_METRICS),
                ("sklearn.metrics.cluster._supervised", CLUSTER_METRICS),
            )
            for name in names.split()
        ),
    ),
}
