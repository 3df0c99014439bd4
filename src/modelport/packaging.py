"""Saving a model as an artifact folder and loading it back as a :class:`LoadedModel`.

This is where the framework-free artifact format meets the flavors: ``save`` picks a flavor,
infers the signature, lets the flavor write its files, records the input example, reference
profile and checksums, proves the artifact loads and predicts, and only then publishes the
folder (atomically). ``load_artifact`` verifies every checksum before the flavor reads a byte.
"""

from __future__ import annotations

import inspect
import json
import platform
import re
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.bundle import unpack
from modelport.artifact.checksums import checksum_tree, sha256_file, verify_files
from modelport.artifact.files import BUNDLE_SUFFIXES, copy_artifact
from modelport.artifact.manifest import MANIFEST_FILE, Manifest, read_manifest
from modelport.artifact.profile import build_profile
from modelport.artifact.signature import (
    Signature,
    TextTable,
    example_from_json,
    example_to_json,
    infer_signature,
    with_names_of,
)
from modelport.artifact.signing import VerifiedArtifact, trusted_signature, verify_artifact
from modelport.artifact.staging import staging_dir
from modelport.config import DEVICE_PATTERN, BundleLimits
from modelport.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    CodeNotTrusted,
    FlavorError,
    InvalidInput,
    ModelportError,
    PredictionFailed,
    SignatureError,
    UnsupportedModel,
)
from modelport.flavors import Flavor, Predictor, flavor_for_file, flavor_for_model, get_flavor
from modelport.ref import validate_name

EXAMPLE_FILE = "input_example.json"
PROFILE_FILE = "reference_profile.json"


class LoadedModel:
    """A verified, loaded artifact: checks every input against the signature, then predicts.

    >>> model = modelport.load("churn@production")
    >>> model.predict(rows)            # the primary output ("predictions")
    >>> model.predict_outputs(rows)    # every output by name, e.g. "probabilities" too
    """

    def __init__(
        self,
        manifest: Manifest,
        predictor: Predictor,
        path: Path,
        trusted_by: str | None = None,
        version: int | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.path = path
        self.version = version
        """The registered version this is (None: loaded from a folder or bundle)."""
        self.manifest_sha256 = manifest_sha256
        """The manifest SHA-256 the registry recorded for that version, which the files were
        checked against (None: loaded from a folder or bundle)."""
        self.trusted_by = trusted_by
        """Why this model was loaded as it is, without the safety checks (None: it was not):
        ``"registry: alice"``, ``"signature: sha256:..."`` or ``"--trust-unsafe"``."""
        self._predictor = predictor

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def predictor(self) -> Predictor:
        """The flavor's predictor, whose native model (``.model``, LightGBM's ``.booster``) a
        converter reads; predicting through it skips the signature checks."""
        return self._predictor

    def predict(self, data: object) -> np.ndarray:
        """Predict and return the primary (first) output only, computing nothing else."""
        primary = [self.signature.outputs[0].name] if self.signature.outputs else None
        return next(iter(self.predict_outputs(data, primary).values()))

    def predict_outputs(
        self, data: object, outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Predict and return the named outputs (default: all), in signature order.

        ``data``: numpy array, pandas DataFrame, list of records, or dict of arrays.
        Raises SignatureError when it does not match the signature, InvalidInput when an
        output name is unknown, PredictionFailed (one line) when the model refuses values.
        """
        self.check_outputs(outputs)
        inputs = self.signature.coerce(data)
        try:
            return self.predict_arrays(inputs, outputs)
        except ModelportError:
            raise
        except Exception as exc:  # the model refused values the signature let through
            raise PredictionFailed(self.name, exc) from exc

    def predict_arrays(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Predict on inputs already in canonical form (``signature.coerce``'s result).

        The server calls this from a worker thread with a whole batch.
        """
        result = self._predictor.predict(inputs, outputs)
        if outputs is None:
            return result
        return {name: arr for name, arr in result.items() if name in outputs}

    def check_outputs(self, outputs: Collection[str] | None) -> None:
        """Raise InvalidInput naming the first requested output the model does not have."""
        known = [spec.name for spec in self.signature.outputs]
        if outputs is None or not known:
            return
        unknown = [name for name in outputs if name not in known]
        if unknown:
            listed = ", ".join(known)
            raise InvalidInput(
                f"model {self.name!r} has no output {unknown[0]!r} (outputs: {listed})"
            )

    def input_example(self) -> dict[str, np.ndarray] | None:
        """The example recorded at save time, in canonical form (used for warm-up)."""
        if self.manifest.input_example is None:
            return None
        data = json.loads((self.path / self.manifest.input_example).read_text("utf-8"))
        return example_from_json(self.signature, data)

    def reference_profile(self) -> dict[str, Any] | None:
        """The per-feature summary of the training data, if one was recorded."""
        if self.manifest.reference_profile is None:
            return None
        profile: dict[str, Any] = json.loads(
            (self.path / self.manifest.reference_profile).read_text("utf-8")
        )
        return profile

    def __repr__(self) -> str:
        return f"<LoadedModel {self.name!r} flavor={self.manifest.flavor!r}>"


def save(
    model: object,
    path: str | Path,
    *,
    name: str | None = None,
    input_example: object = None,
    reference_data: object = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    flavor: str | None = None,
    flavor_options: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    trust_unsafe: bool = False,
) -> Manifest:
    """Write ``model`` as an artifact folder at ``path`` (which must not exist yet).

    The signature comes from ``input_example`` (recommended: it also fixes the output
    signature and is used to warm the model up), else from the model itself where the
    flavor can tell. ``reference_data`` (e.g. the training set) is summarized for drift.
    ``trust_unsafe`` skips the flavor's safety checks (the pickle allow-list) for a model
    whose every part you trust.

    >>> modelport.save(clf, "out/churn", input_example=X[:5], reference_data=X_train)
    """
    target = Path(path)
    model_name = validate_name(name or target.name)
    chosen = get_flavor(flavor) if flavor else flavor_for_model(model)
    if flavor:
        _require_model(chosen, model)
    signature, example = _signature_for(chosen, model, input_example)
    with staging_dir(target) as tmp:
        options = dict(flavor_options or {})
        saved = chosen.save(model, tmp, options, **_save_kwargs(chosen.save, trust_unsafe, example))
        example_file = profile_file = None
        if example is not None:
            example_file = _write_json(tmp / EXAMPLE_FILE, example_to_json(signature, example))
        if reference_data is not None:
            profile = build_profile(signature, _coerce(signature, reference_data, "reference_data"))
            profile_file = _write_json(tmp / PROFILE_FILE, profile)
        if example is not None:
            # Prove the files load and predict before publishing, and learn the outputs. A
            # model object's own code already runs in this process, so loading it is trusted.
            trust = _trusting(chosen.load, trust_unsafe or runs_code(chosen))
            outputs = chosen.load(tmp, saved.options, signature, **trust).predict(example)
            signature = signature.with_outputs(outputs)
        manifest = Manifest(
            name=model_name,
            flavor=chosen.NAME,
            signature=signature,
            files=checksum_tree(tmp),
            flavor_options=saved.options,
            framework={"name": saved.framework, "version": saved.framework_version},
            python_version=platform.python_version(),
            modelport_version=_dist_version("modelport"),
            requirements=list(saved.requirements),
            created_at=datetime.now(UTC).isoformat(),
            input_example=example_file,
            reference_profile=profile_file,
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            tags={validate_name(k, "tag key"): str(v) for k, v in (tags or {}).items()},
            description=description,
            lineage=dict(lineage or {}),
        )
        (tmp / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def load_artifact(
    path: str | Path,
    *,
    manifest_sha256: str | None = None,
    public_key: str | Path | None = None,
    trust_unsafe: bool = False,
    trusted_by: str | None = None,
    trusted_keys: Sequence[Path] = (),
    version: int | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Verify and load the artifact folder at ``path``: every load path comes through here.

    ``manifest_sha256`` (recorded by the registry) also pins the manifest itself. Every file's
    checksum is verified before the flavor deserializes anything. With ``public_key`` (a PEM
    Ed25519 public key file) the artifact must also carry a valid signature by that key
    (:func:`modelport.artifact.signing.verify_artifact`), checked before anything else; an
    unsigned, otherwise-signed or edited artifact raises a SigningError.

    Trust decides whether the artifact may run its own code: a pyfunc model (a flavor with
    ``RUNS_CODE``) loads only when trusted, and a trusted artifact's pickles load without the
    allow-list. It is trusted when signed by ``public_key`` or by one of ``trusted_keys``, or
    when ``trust_unsafe`` is given: pass that only for a version registered as trusted
    (``ModelVersion.trusts_unsafe``) or on a person's explicit request (``--trust-unsafe``),
    never because a file says so; ``trusted_by`` says who, for the record. ``version`` is
    the registered version the folder holds, if it is one.

    ``device`` (``cpu``, ``cuda``, ``cuda:N``) is where the model runs: a flavor whose
    ``load`` takes a ``device`` keyword gets it; any other runs on the CPU only and refuses
    a GPU device (FlavorError) rather than silently running elsewhere.
    """
    if re.fullmatch(DEVICE_PATTERN, device) is None:
        raise InvalidInput(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    root = Path(path)
    signer = None
    verified: VerifiedArtifact | None
    if public_key is not None:
        verified = verify_artifact(root, Path(public_key), manifest_sha256=manifest_sha256)
    else:
        verified = trusted_signature(root, trusted_keys, manifest_sha256=manifest_sha256)
    if verified is not None:
        manifest, signer = verified.manifest, f"signature: {verified.key_fingerprint}"
    else:
        if manifest_sha256 is not None:
            manifest_file = root / MANIFEST_FILE
            if not manifest_file.is_file():
                raise ArtifactNotFound(str(root))
            if sha256_file(manifest_file) != manifest_sha256:
                raise ArtifactCorrupted(
                    MANIFEST_FILE, "sha256 does not match the registry's record"
                )
        manifest = read_manifest(root)
        verify_files(root, manifest.files)
    flavor = get_flavor(manifest.flavor)
    trusted = (trusted_by or "--trust-unsafe") if trust_unsafe else signer
    if runs_code(flavor) and trusted is None:
        scan = getattr(flavor, "find_unsafe", None)
        found = [] if scan is None else scan(root, manifest.flavor_options)
        raise CodeNotTrusted(manifest.name, manifest.flavor, describe_findings(found))
    kwargs = _hook_kwargs(flavor.load, trusted is not None, manifest.files, device)
    if device != "cpu" and "device" not in kwargs:
        raise FlavorError(
            f"the {manifest.flavor} flavor runs on the CPU only; it cannot load on {device!r}"
        )
    predictor = flavor.load(root, manifest.flavor_options, manifest.signature, **kwargs)
    return LoadedModel(manifest, predictor, root, trusted, version, manifest_sha256)


def runs_code(flavor: Flavor) -> bool:
    """True for a flavor whose artifacts are code that runs when loaded (pyfunc)."""
    return bool(getattr(flavor, "RUNS_CODE", False))


def describe_findings(found: Sequence[tuple[str, str]]) -> str:
    """``find_unsafe``'s findings in one line: the first, and how many more (empty: none)."""
    if not found:
        return ""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{found[0][0]!r}: {found[0][1]}{more}"


def find_unsafe(path: str | Path) -> list[tuple[str, str]]:
    """``(file, reason)`` for what in the artifact at ``path`` a safe load would refuse, or
    that looks dangerous (pyfunc code), found without running it; empty when nothing is.

    Checksums are verified first, so what was checked is what will be loaded.
    """
    root = Path(path)
    manifest = read_manifest(root)
    verify_files(root, manifest.files)
    scan: Callable[[Path, Mapping[str, Any]], list[tuple[str, str]]] | None = getattr(
        get_flavor(manifest.flavor), "find_unsafe", None
    )
    return [] if scan is None else scan(root, manifest.flavor_options)


def _trusting(hook: Callable[..., object], trust_unsafe: bool) -> dict[str, bool]:
    """``{"trust_unsafe": True}`` when trusting and the hook takes it; else nothing, so
    flavors whose formats run no code (and plugins) need not declare the keyword."""
    if trust_unsafe and "trust_unsafe" in inspect.signature(hook).parameters:
        return {"trust_unsafe": True}
    return {}


def _save_kwargs(
    hook: Callable[..., object], trust_unsafe: bool, example: Mapping[str, np.ndarray] | None
) -> dict[str, Any]:
    """The optional keywords a flavor's ``save`` declares: trust, and the input example in
    canonical form (for a flavor that needs one to export the model, such as torch)."""
    kwargs: dict[str, Any] = dict(_trusting(hook, trust_unsafe))
    if example is not None and "input_example" in inspect.signature(hook).parameters:
        kwargs["input_example"] = example
    return kwargs


def _hook_kwargs(
    hook: Callable[..., object],
    trust_unsafe: bool,
    checksums: Mapping[str, str],
    device: str = "cpu",
) -> dict[str, Any]:
    """The optional keywords a flavor's ``load`` declares: trust, the verified checksums
    (for a flavor that reads files again itself, such as pyfunc's source importer), and
    the device, for a flavor that can run on a GPU."""
    kwargs: dict[str, Any] = dict(_trusting(hook, trust_unsafe))
    parameters = inspect.signature(hook).parameters
    if "checksums" in parameters:
        kwargs["checksums"] = dict(checksums)
    if "device" in parameters:
        kwargs["device"] = device
    return kwargs


def import_artifact(
    source: str | Path,
    path: str | Path,
    *,
    name: str,
    input_example: object = None,
    reference_data: object = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    trust_unsafe: bool = False,
    limits: BundleLimits | None = None,
) -> Manifest:
    """Make a verified artifact folder at ``path`` from what a user has at ``source``.

    ``source`` may be an artifact folder, a ``.tar`` bundle, a plain model file
    (``.pkl``/``.joblib``, ``.onnx``, XGBoost ``.json``/``.ubj``, LightGBM ``.txt``) or a
    TensorFlow SavedModel folder (``saved_model.pb`` inside, and no manifest).
    A plain pickle file is read through the allow-list unless ``trust_unsafe``; an artifact
    folder or bundle is copied as it is (see :func:`find_unsafe`).
    """
    src = Path(source)
    if src.is_dir() and (src / "saved_model.pb").is_file() and not (src / MANIFEST_FILE).exists():
        chosen, kind = get_flavor("tensorflow"), "SavedModel folder"
    elif src.is_dir():
        return copy_artifact(src, Path(path), name, metrics, tags, description)
    elif not src.is_file():
        raise ArtifactNotFound(str(src))
    elif src.suffix.lower() in BUNDLE_SUFFIXES:
        with tempfile.TemporaryDirectory(prefix="modelport-unpack-") as tmp:
            unpacked = unpack(src, Path(tmp) / "artifact", limits)
            return copy_artifact(unpacked, Path(path), name, metrics, tags, description)
    else:
        chosen, kind = flavor_for_file(src), f"{src.suffix.lower()} file"
    model = chosen.read_file(src, **_trusting(chosen.read_file, trust_unsafe))
    _require_model(chosen, model, src.name)
    return save(
        model,
        path,
        name=name,
        input_example=input_example,
        reference_data=reference_data,
        metrics=metrics,
        tags=tags,
        description=description,
        flavor=chosen.NAME,
        lineage={"source": src.name, "conversion": f"{kind} -> {chosen.NAME}"},
        trust_unsafe=trust_unsafe,
    )


def _require_model(flavor: Flavor, model: object, source: str | None = None) -> None:
    """Refuse what is not a model (a pickled dict, say) before anything is written: what
    neither the flavor handles nor has a ``predict`` would only fail when first used."""
    if flavor.handles(model) or callable(getattr(model, "predict", None)):
        return
    where = f" read from {source!r}" if source else ""
    raise UnsupportedModel(
        f"a {type(model).__qualname__}{where}: it is not a model (it has no predict method)"
    )


def _signature_for(
    flavor: Flavor, model: object, example: object
) -> tuple[Signature, dict[str, np.ndarray] | None]:
    if example is not None:
        own = _model_signature(flavor, model)
        signature = infer_signature(example)
        if own is not None and declares_inputs(flavor) and _fits_declared(signature, own):
            # The model says what it takes (an ONNX graph, an exported program, a Keras
            # input layer): that is the signature, and the example must fit it.
            what = "input_example (checked against the inputs the model declares)"
            return own, _coerce(own, example, what)
        if isinstance(example, TextTable):  # text (a CSV file): read with the model's types
            signature = _text_signature(signature, own, example)
        elif not isinstance(example, Mapping):  # a bare array maps onto a single input
            signature = with_names_of(signature, own)
        return signature, _coerce(signature, example, "input_example")
    inferred = flavor.infer_signature(model)
    if inferred is None:
        raise FlavorError(
            f"cannot tell what a {type(model).__name__} takes as input; pass input_example="
        )
    return inferred, None


def declares_inputs(flavor: Flavor) -> bool:
    """True for a flavor whose model files declare their inputs (``DECLARES_INPUTS``): its
    ``infer_signature`` reads a declaration, not a guess such as scikit-learn's feature count."""
    return bool(getattr(flavor, "DECLARES_INPUTS", False))


def _fits_declared(example: Signature, declared: Signature) -> bool:
    """Whether the example is tensors for tensor inputs; a table example (a DataFrame) for a
    graph of one-column inputs keeps the table's signature, whose columns feed those inputs."""
    return example.kind == "tensors" and declared.kind == "tensors"


def _model_signature(flavor: Flavor, model: object) -> Signature | None:
    """What the model says it takes, as a hint beside an example; None if it cannot say."""
    try:
        return flavor.infer_signature(model)
    except Exception:  # a flavor's guess must never stop a save that has an example
        return None


def _text_signature(inferred: Signature, own: Signature | None, table: TextTable) -> Signature:
    """A CSV example's signature: the model's own column types where it has them (a code
    column it encodes as text stays text), else the types the text suggests."""
    if own is None or own.kind != "columns" or not set(own.input_names) <= set(table.names):
        return inferred
    try:
        own.coerce(table)
    except SignatureError:
        return inferred
    return Signature("columns", own.inputs)


def _coerce(signature: Signature, data: object, what: str) -> dict[str, np.ndarray]:
    try:
        return signature.coerce(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{what} does not match the signature: {exc}") from None


def _write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data, allow_nan=False, separators=(",", ":")), encoding="utf-8")
    return path.name
