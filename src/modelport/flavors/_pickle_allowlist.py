"""The pickle allow-list: every global a pickle, joblib or skops file may name, and the audit
that put each one there.

Unpickling calls what a file names: a class (``REDUCE``, ``NEWOBJ``, ``INST``: its ``__new__``
and ``__init__`` with arguments from the file), then ``__setstate__`` with state from the file
(or, for a class without one, ``__dict__`` updates and ``setattr`` through its data
descriptors), ``__setitem__``/``append``/``extend``/``add`` for container opcodes, and
``__hash__``/``__eq__`` on dictionary keys and set items; ``__getattr__`` runs when pickle looks
for ``__setstate__``, and ``__del__`` when an object dies. A function named by the file is called
with arguments from the file. skops reaches ``__new__`` and ``__setstate__`` (or ``__dict__``).

So an entry is safe only if all of those do nothing but build the object, whatever the file
says: no file or network access, no import or evaluation of strings, no call of a callable taken
from the state except allow-listed ones. ``ALLOWED`` names classes and functions exactly, by
module and name (never a package or prefix: scipy's distribution objects ``exec`` a string from
their state in ``__setstate__``, which is how a package-wide rule was broken). ``AUDIT`` records,
for each hook implementation those classes reach, what it was read to do; the test
``tests/unit/flavors/test_pickle_allowlist.py`` recomputes, for every allowed class, the hooks it
would run and fails on any not listed here (so a scikit-learn, numpy or scipy upgrade that adds
or changes one is re-read before it is trusted). Estimator ``__init__`` methods that only assign
their arguments (scikit-learn's own rule for estimators) are checked by that test from their
source, not listed one by one.

What the list does not promise: a crafted file can still hold arrays that are inconsistent with
each other (a tree whose child indices point past its nodes), and scikit-learn's compiled code
trusts them; such a model can crash the process or predict nonsense. Loading runs no code from
the file; trusting what it computes is what signatures are for.
"""

from __future__ import annotations

from collections.abc import Mapping


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# numpy: scalar and array types (calling one converts a value), elementwise ufuncs and
# reductions (pure computation on arrays; FunctionTransformer and pooling functions name them).
NUMPY_TYPES = """
    bool_ bytes_ complex128 complex64 dtype float16 float32 float64 int16 int32 int64 int8 intp
    longdouble ndarray object_ str_ uint16 uint32 uint64 uint8 uintp
"""
NUMPY_UFUNCS = """
    abs absolute add arccos arccosh arcsin arcsinh arctan arctanh cbrt ceil cos cosh divide exp
    exp2 expm1 fabs floor fmax fmin isfinite isnan log log10 log1p log2 maximum minimum
    multiply negative power reciprocal rint sign sin sinh sqrt square subtract tan tanh
    true_divide trunc
"""
NUMPY_REDUCTIONS = "clip max mean median min nanmax nanmean nanmedian nanmin round std sum var"

# Metric functions that fitted scorers (``scoring=...`` in a search) refer to.
CLASSIFICATION_METRICS = """
        accuracy_score balanced_accuracy_score brier_score_loss d2_brier_score d2_log_loss_score
        f1_score jaccard_score log_loss matthews_corrcoef precision_score recall_score
"""
RANKING_METRICS = """
        average_precision_score roc_auc_score top_k_accuracy_score
"""
REGRESSION_METRICS = """
        d2_absolute_error_score explained_variance_score max_error mean_absolute_error
        mean_absolute_percentage_error mean_gamma_deviance mean_poisson_deviance
        mean_squared_error mean_squared_log_error median_absolute_error r2_score
        root_mean_squared_error root_mean_squared_log_error
"""
CLUSTER_METRICS = """
        adjusted_mutual_info_score adjusted_rand_score completeness_score fowlkes_mallows_score
        homogeneity_score mutual_info_score normalized_mutual_info_score rand_score
        v_measure_score
"""

ALLOWED: Mapping[str, frozenset[str]] = {
    # Python's own containers and scalars; OrderedDict/defaultdict for dict-valued attributes.
    "builtins": _names(
        "bool bytearray bytes complex dict float frozenset int list object range set slice str "
        "tuple"
    ),
    "collections": _names("OrderedDict defaultdict"),
    # Protocol 0-1 objects, protocol-2 bytes (see SUBSTITUTES), functools.partial attributes.
    "copyreg": _names("_reconstructor"),
    "_codecs": _names("encode"),
    "functools": _names("partial"),
    "joblib.numpy_pickle": _names("NumpyArrayWrapper"),
    "numpy": _names(NUMPY_TYPES + NUMPY_UFUNCS + NUMPY_REDUCTIONS),
    "numpy._core.multiarray": _names("_reconstruct scalar"),
    "numpy._core.numeric": _names("_frombuffer"),
    "numpy.ma": _names("MaskedArray"),
    "numpy.ma.core": _names("MaskedArray _mareconstruct"),
    "numpy.random._mt19937": _names("MT19937"),
    "numpy.random._pcg64": _names("PCG64"),
    "numpy.random._pickle": _names("__bit_generator_ctor __generator_ctor __randomstate_ctor"),
    "numpy.random.bit_generator": _names("SeedSequence __pyx_unpickle_SeedSequence"),
    # scipy: B-splines (SplineTransformer), sparse matrices, an array-API helper.
    "scipy._lib.array_api_compat.numpy._aliases": _names("asarray"),
    "scipy.interpolate._bsplines": _names("BSpline"),
    "scipy.sparse._bsr": _names("bsr_array bsr_matrix"),
    "scipy.sparse._coo": _names("coo_array coo_matrix"),
    "scipy.sparse._csc": _names("csc_array csc_matrix"),
    "scipy.sparse._csr": _names("csr_array csr_matrix"),
    "scipy.sparse._dia": _names("dia_array dia_matrix"),
    "scipy.sparse._dok": _names("dok_array dok_matrix"),
    "scipy.sparse._lil": _names("lil_array lil_matrix"),
    "sklearn._loss._loss": _names(
        """
        CyAbsoluteError CyExponentialLoss CyHalfBinomialLoss CyHalfGammaLoss
        CyHalfMultinomialLoss CyHalfPoissonLoss CyHalfSquaredError CyHalfTweedieLoss
        CyHalfTweedieLossIdentity CyHuberLoss CyPinballLoss __pyx_unpickle_CyHalfMultinomialLoss
        """
    ),
    "sklearn._loss.link": _names(
        """
        HalfLogitLink IdentityLink Interval LogLink LogitLink MultinomialLogit
        """
    ),
    "sklearn._loss.loss": _names(
        """
        AbsoluteError ExponentialLoss HalfBinomialLoss HalfBinomialLossArrayAPI HalfGammaLoss
        HalfMultinomialLoss HalfMultinomialLossArrayAPI HalfPoissonLoss HalfPoissonLossArrayAPI
        HalfSquaredError HalfTweedieLoss HalfTweedieLossIdentity HuberLoss PinballLoss
        """
    ),
    "sklearn.calibration": _names(
        """
        CalibratedClassifierCV _CalibratedClassifier _SigmoidCalibration
        """
    ),
    "sklearn.cluster._affinity_propagation": _names("AffinityPropagation"),
    "sklearn.cluster._agglomerative": _names("AgglomerativeClustering FeatureAgglomeration"),
    "sklearn.cluster._bicluster": _names("SpectralBiclustering SpectralCoclustering"),
    "sklearn.cluster._birch": _names("Birch _CFNode _CFSubcluster"),
    "sklearn.cluster._bisect_k_means": _names("BisectingKMeans _BisectingTree"),
    "sklearn.cluster._dbscan": _names("DBSCAN"),
    "sklearn.cluster._hdbscan.hdbscan": _names("HDBSCAN"),
    "sklearn.cluster._kmeans": _names("KMeans MiniBatchKMeans _kmeans_single_lloyd"),
    "sklearn.cluster._mean_shift": _names("MeanShift"),
    "sklearn.cluster._optics": _names("OPTICS"),
    "sklearn.cluster._spectral": _names("SpectralClustering"),
    "sklearn.compose._column_transformer": _names("ColumnTransformer make_column_selector"),
    "sklearn.compose._target": _names("TransformedTargetRegressor"),
    "sklearn.covariance._elliptic_envelope": _names("EllipticEnvelope"),
    "sklearn.covariance._empirical_covariance": _names("EmpiricalCovariance"),
    "sklearn.covariance._graph_lasso": _names("GraphicalLasso GraphicalLassoCV"),
    "sklearn.covariance._robust_covariance": _names("MinCovDet"),
    "sklearn.covariance._shrunk_covariance": _names("LedoitWolf OAS ShrunkCovariance"),
    "sklearn.cross_decomposition._pls": _names("CCA PLSCanonical PLSRegression PLSSVD"),
    "sklearn.decomposition._dict_learning": _names(
        """
        DictionaryLearning MiniBatchDictionaryLearning SparseCoder
        """
    ),
    "sklearn.decomposition._factor_analysis": _names("FactorAnalysis"),
    "sklearn.decomposition._fastica": _names("FastICA"),
    "sklearn.decomposition._incremental_pca": _names("IncrementalPCA"),
    "sklearn.decomposition._kernel_pca": _names("KernelPCA"),
    "sklearn.decomposition._lda": _names("LatentDirichletAllocation"),
    "sklearn.decomposition._nmf": _names("MiniBatchNMF NMF"),
    "sklearn.decomposition._pca": _names("PCA"),
    "sklearn.decomposition._sparse_pca": _names("MiniBatchSparsePCA SparsePCA"),
    "sklearn.decomposition._truncated_svd": _names("TruncatedSVD"),
    "sklearn.discriminant_analysis": _names(
        """
        LinearDiscriminantAnalysis QuadraticDiscriminantAnalysis
        """
    ),
    "sklearn.dummy": _names("DummyClassifier DummyRegressor"),
    "sklearn.ensemble._bagging": _names("BaggingClassifier BaggingRegressor"),
    "sklearn.ensemble._forest": _names(
        """
        ExtraTreesClassifier ExtraTreesRegressor RandomForestClassifier RandomForestRegressor
        RandomTreesEmbedding
        """
    ),
    "sklearn.ensemble._gb": _names("GradientBoostingClassifier GradientBoostingRegressor"),
    "sklearn.ensemble._hist_gradient_boosting.binning": _names("_BinMapper"),
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": _names(
        """
        HistGradientBoostingClassifier HistGradientBoostingRegressor
        """
    ),
    "sklearn.ensemble._hist_gradient_boosting.predictor": _names("TreePredictor"),
    "sklearn.ensemble._iforest": _names("IsolationForest"),
    "sklearn.ensemble._stacking": _names("StackingClassifier StackingRegressor"),
    "sklearn.ensemble._voting": _names("VotingClassifier VotingRegressor"),
    "sklearn.ensemble._weight_boosting": _names("AdaBoostClassifier AdaBoostRegressor"),
    "sklearn.feature_extraction._dict_vectorizer": _names("DictVectorizer"),
    "sklearn.feature_extraction._hash": _names("FeatureHasher"),
    "sklearn.feature_extraction.image": _names("PatchExtractor"),
    "sklearn.feature_extraction.text": _names(
        """
        CountVectorizer HashingVectorizer TfidfTransformer TfidfVectorizer
        """
    ),
    "sklearn.feature_selection._from_model": _names("SelectFromModel"),
    "sklearn.feature_selection._mutual_info": _names("mutual_info_classif mutual_info_regression"),
    "sklearn.feature_selection._rfe": _names("RFE RFECV"),
    "sklearn.feature_selection._sequential": _names("SequentialFeatureSelector"),
    "sklearn.feature_selection._univariate_selection": _names(
        """
        GenericUnivariateSelect SelectFdr SelectFpr SelectFwe SelectKBest SelectPercentile chi2
        f_classif f_regression r_regression
        """
    ),
    "sklearn.feature_selection._variance_threshold": _names("VarianceThreshold"),
    "sklearn.frozen._frozen": _names("FrozenEstimator"),
    "sklearn.gaussian_process._gpc": _names(
        """
        GaussianProcessClassifier _BinaryGaussianProcessClassifierLaplace
        """
    ),
    "sklearn.gaussian_process._gpr": _names("GaussianProcessRegressor"),
    "sklearn.gaussian_process.kernels": _names(
        """
        CompoundKernel ConstantKernel DotProduct ExpSineSquared Exponentiation Hyperparameter
        Matern PairwiseKernel Product RBF RationalQuadratic Sum WhiteKernel
        """
    ),
    "sklearn.impute._base": _names("MissingIndicator SimpleImputer"),
    "sklearn.impute._iterative": _names("IterativeImputer _ImputerTriplet"),
    "sklearn.impute._knn": _names("KNNImputer"),
    "sklearn.isotonic": _names("IsotonicRegression"),
    "sklearn.kernel_approximation": _names(
        """
        AdditiveChi2Sampler Nystroem PolynomialCountSketch RBFSampler SkewedChi2Sampler
        """
    ),
    "sklearn.kernel_ridge": _names("KernelRidge"),
    "sklearn.linear_model._base": _names("LinearRegression"),
    "sklearn.linear_model._bayes": _names("ARDRegression BayesianRidge"),
    "sklearn.linear_model._coordinate_descent": _names(
        """
        ElasticNet ElasticNetCV Lasso LassoCV MultiTaskElasticNet MultiTaskElasticNetCV
        MultiTaskLasso MultiTaskLassoCV
        """
    ),
    "sklearn.linear_model._glm.glm": _names("GammaRegressor PoissonRegressor TweedieRegressor"),
    "sklearn.linear_model._huber": _names("HuberRegressor"),
    "sklearn.linear_model._least_angle": _names("Lars LarsCV LassoLars LassoLarsCV LassoLarsIC"),
    "sklearn.linear_model._logistic": _names("LogisticRegression LogisticRegressionCV"),
    "sklearn.linear_model._omp": _names("OrthogonalMatchingPursuit OrthogonalMatchingPursuitCV"),
    "sklearn.linear_model._passive_aggressive": _names(
        """
        PassiveAggressiveClassifier PassiveAggressiveRegressor
        """
    ),
    "sklearn.linear_model._perceptron": _names("Perceptron"),
    "sklearn.linear_model._quantile": _names("QuantileRegressor"),
    "sklearn.linear_model._ransac": _names("RANSACRegressor"),
    "sklearn.linear_model._ridge": _names("Ridge RidgeCV RidgeClassifier RidgeClassifierCV"),
    "sklearn.linear_model._sgd_fast": _names(
        """
        EpsilonInsensitive Hinge ModifiedHuber SquaredEpsilonInsensitive SquaredHinge
        """
    ),
    "sklearn.linear_model._stochastic_gradient": _names(
        """
        SGDClassifier SGDOneClassSVM SGDRegressor
        """
    ),
    "sklearn.linear_model._theil_sen": _names("TheilSenRegressor"),
    "sklearn.manifold._classical_mds": _names("ClassicalMDS"),
    "sklearn.manifold._isomap": _names("Isomap"),
    "sklearn.manifold._locally_linear": _names("LocallyLinearEmbedding"),
    "sklearn.manifold._mds": _names("MDS"),
    "sklearn.manifold._spectral_embedding": _names("SpectralEmbedding"),
    "sklearn.manifold._t_sne": _names("TSNE"),
    "sklearn.metrics._classification": _names(CLASSIFICATION_METRICS),
    "sklearn.metrics._dist_metrics": _names(
        """
        BrayCurtisDistance32 BrayCurtisDistance64 CanberraDistance32 CanberraDistance64
        ChebyshevDistance32 ChebyshevDistance64 DiceDistance32 DiceDistance64
        EuclideanDistance32 EuclideanDistance64 HammingDistance32 HammingDistance64
        HaversineDistance32 HaversineDistance64 JaccardDistance32 JaccardDistance64
        KulsinskiDistance32 KulsinskiDistance64 MahalanobisDistance32 MahalanobisDistance64
        ManhattanDistance32 ManhattanDistance64 MatchingDistance32 MatchingDistance64
        MinkowskiDistance32 MinkowskiDistance64 PyFuncDistance32 PyFuncDistance64
        RogersTanimotoDistance32 RogersTanimotoDistance64 RussellRaoDistance32
        RussellRaoDistance64 SEuclideanDistance32 SEuclideanDistance64 SokalMichenerDistance32
        SokalMichenerDistance64 SokalSneathDistance32 SokalSneathDistance64 newObj
        """
    ),
    "sklearn.metrics._ranking": _names(RANKING_METRICS),
    "sklearn.metrics._regression": _names(REGRESSION_METRICS),
    "sklearn.metrics._scorer": _names(
        """
        _CurveScorer _PassthroughScorer _Scorer negative_likelihood_ratio
        positive_likelihood_ratio
        """
    ),
    "sklearn.metrics.cluster._supervised": _names(CLUSTER_METRICS),
    "sklearn.mixture._bayesian_mixture": _names("BayesianGaussianMixture"),
    "sklearn.mixture._gaussian_mixture": _names("GaussianMixture"),
    "sklearn.model_selection._classification_threshold": _names(
        """
        FixedThresholdClassifier TunedThresholdClassifierCV
        """
    ),
    "sklearn.model_selection._search": _names("GridSearchCV RandomizedSearchCV"),
    "sklearn.model_selection._search_successive_halving": _names(
        """
        HalvingGridSearchCV HalvingRandomSearchCV
        """
    ),
    "sklearn.model_selection._split": _names(
        """
        GroupKFold GroupShuffleSplit KFold LeaveOneGroupOut LeaveOneOut LeavePGroupsOut
        LeavePOut PredefinedSplit RepeatedKFold RepeatedStratifiedKFold ShuffleSplit
        StratifiedGroupKFold StratifiedKFold StratifiedShuffleSplit TimeSeriesSplit
        """
    ),
    "sklearn.multiclass": _names(
        """
        OneVsOneClassifier OneVsRestClassifier OutputCodeClassifier _ConstantPredictor
        """
    ),
    "sklearn.multioutput": _names(
        """
        ClassifierChain MultiOutputClassifier MultiOutputRegressor RegressorChain
        """
    ),
    "sklearn.naive_bayes": _names(
        """
        BernoulliNB CategoricalNB ComplementNB GaussianNB MultinomialNB
        """
    ),
    "sklearn.neighbors._ball_tree": _names("BallTree BallTree32 BallTree64 newObj"),
    "sklearn.neighbors._classification": _names("KNeighborsClassifier RadiusNeighborsClassifier"),
    "sklearn.neighbors._graph": _names("KNeighborsTransformer RadiusNeighborsTransformer"),
    "sklearn.neighbors._kd_tree": _names("KDTree KDTree32 KDTree64 newObj"),
    "sklearn.neighbors._kde": _names("KernelDensity"),
    "sklearn.neighbors._lof": _names("LocalOutlierFactor"),
    "sklearn.neighbors._nca": _names("NeighborhoodComponentsAnalysis"),
    "sklearn.neighbors._nearest_centroid": _names("NearestCentroid"),
    "sklearn.neighbors._regression": _names("KNeighborsRegressor RadiusNeighborsRegressor"),
    "sklearn.neighbors._unsupervised": _names("NearestNeighbors"),
    "sklearn.neural_network._multilayer_perceptron": _names("MLPClassifier MLPRegressor"),
    "sklearn.neural_network._rbm": _names("BernoulliRBM"),
    "sklearn.neural_network._stochastic_optimizers": _names("AdamOptimizer SGDOptimizer"),
    "sklearn.pipeline": _names("FeatureUnion Pipeline"),
    "sklearn.preprocessing._data": _names(
        """
        Binarizer KernelCenterer MaxAbsScaler MinMaxScaler Normalizer PowerTransformer
        QuantileTransformer RobustScaler StandardScaler
        """
    ),
    "sklearn.preprocessing._discretization": _names("KBinsDiscretizer"),
    "sklearn.preprocessing._encoders": _names("OneHotEncoder OrdinalEncoder"),
    "sklearn.preprocessing._function_transformer": _names("FunctionTransformer"),
    "sklearn.preprocessing._label": _names("LabelBinarizer LabelEncoder MultiLabelBinarizer"),
    "sklearn.preprocessing._polynomial": _names("PolynomialFeatures SplineTransformer"),
    "sklearn.preprocessing._target_encoder": _names("TargetEncoder"),
    "sklearn.random_projection": _names("GaussianRandomProjection SparseRandomProjection"),
    "sklearn.semi_supervised._label_propagation": _names("LabelPropagation LabelSpreading"),
    "sklearn.semi_supervised._self_training": _names("SelfTrainingClassifier"),
    "sklearn.svm._classes": _names("LinearSVC LinearSVR NuSVC NuSVR OneClassSVM SVC SVR"),
    "sklearn.tree._classes": _names(
        """
        DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier ExtraTreeRegressor
        """
    ),
    "sklearn.tree._tree": _names("Tree"),
    "sklearn.utils._bunch": _names("Bunch"),
    "sklearn.utils._metadata_requests": _names("MetadataRequest MethodMetadataRequest"),
    "sklearn.utils.validation": _names("check_array"),
}

# Named globals replaced by a narrower stand-in when a pickle asks for them.
# Protocol-2 pickles write bytes as ``_codecs.encode(text, "latin1")``; any other codec is
# refused, so a file cannot pick a codec (or make codec lookup import a module).
LATIN1_ENCODE = ("_codecs", "encode")
