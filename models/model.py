"""The propensity model artifact: a LightGBM text model, a calibrator and its metadata.

An artifact is a directory::

    model.txt       LightGBM text model (never a pickle)
    metadata.json   feature names and order, categorical features, calibration (Platt, or a
                    stacked blend/heuristic over ``product_spend``), training
                    window, data fingerprint, metrics, library versions, program-config hash,
                    and the sha256 of model.txt
    program.yaml    the program config the tier features were computed under (optional)
    report.html     the evaluation report (written by training, not needed to serve)

:meth:`PropensityModel.load` refuses an artifact whose features differ from the code's
feature definition, whose model file is truncated or corrupt, or whose metadata is
missing or malformed, with an :class:`ArtifactError` that says which. The model file is
proven loadable before this process lets LightGBM parse it (LightGBM aborts the process
on a malformed file): its checksum, a structural check of the text
(:mod:`models.modelfile`) and a first load in a child process (:mod:`models.model_probe`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from models.artifact_files import METADATA_FILE, MODEL_FILE, sha256_file
from models.compiled import CompiledForest, CompileError, compile_forest
from models.errors import ArtifactError
from models.features import CATEGORICAL_FEATURES, FEATURE_NAMES
from models.features.definitions import MEMBER_FEATURES
from models.features.points_features import POINTS_FEATURES
from models.features.tier_features import TIER_FEATURES
from models.model_probe import ProbeFailed, probe_model
from models.modelfile import ModelFileError, check_model_text
from models.program import Program, ProgramConfigError, load_program

PROGRAM_FILE = "program.yaml"
FORMAT_VERSION = 1


def load_checked_booster(model_path: Path, expected_sha256: object, names: list[str],
                         objectives: tuple[str, ...] = ("binary",)) -> lgb.Booster:
    """The booster of ``model_path``, loaded only once it is proven loadable.

    LightGBM aborts the process on a malformed model file, so the bytes are read once and
    must match the recorded sha256, pass the structural check (:mod:`models.modelfile`)
    and load in a child process (:mod:`models.model_probe`) before this process parses
    those same bytes.
    """
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{model_path}: cannot be read ({exc})") from exc
    return checked_booster_bytes(data, str(model_path), expected_sha256, names, objectives)


def checked_booster_bytes(data: bytes, model_path: str, expected_sha256: object, names: list[str],
                          objectives: tuple[str, ...] = ("binary",)) -> lgb.Booster:
    """The booster of a LightGBM text model's bytes, with every check of :func:`load_checked_booster`."""
    if expected_sha256 != hashlib.sha256(data).hexdigest():
        raise ArtifactError(f"{model_path}: checksum mismatch (truncated or corrupt model file)")
    try:
        check_model_text(data, names, objectives)
        probe_model(data, len(names))
    except (ModelFileError, ProbeFailed) as exc:
        raise ArtifactError(f"{model_path}: not a loadable LightGBM model: {exc}") from exc
    try:
        return lgb.Booster(model_str=data.decode("ascii"))
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise ArtifactError(f"{model_path}: LightGBM cannot read the model ({exc})") from exc


#: The feature a stacked calibration reads beside the trees: the member's past spend on the offer's products.
SPEND_FEATURE = "product_spend"
#: Methods of a stacked calibration: the blend of trees and spend, the spend heuristic alone, and the same
#: two with the member model's term added (``member``: heuristic + member term; ``blend_member``).
STACKED_METHODS = ("blend", "heuristic", "member", "blend_member")
#: Stacked methods that read the member model (a second booster in the artifact).
MEMBER_METHODS = ("member", "blend_member")
#: Features that depend on the member and the request time only, never on the offer: equal for every
#: offer of one member in one request, so a term built from them cannot reorder that member's offers.
MEMBER_LEVEL_FEATURES: tuple[str, ...] = (
    *MEMBER_FEATURES, "exposures_all", "redemptions_all", "redemption_rate", "days_since_last_redemption",
    *TIER_FEATURES, *POINTS_FEATURES)
#: What the member model may split on: the member-level features and, under a non-decreasing
#: constraint, ``product_spend`` (with a positive spend weight the served score stays strictly
#: increasing in spend within one member's request, so the heuristic's order and ties are kept).
MEMBER_MODEL_FEATURES: tuple[str, ...] = (*MEMBER_LEVEL_FEATURES, "product_spend")


def logit(raw: np.ndarray) -> np.ndarray:
    """logit of a probability-scale score, clipped away from 0 and 1 so it stays finite."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(raw / (1 - raw))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def log_spend(features: np.ndarray) -> np.ndarray:
    """log1p of the ``product_spend`` column (missing or negative spend counts as 0)."""
    spend = np.asarray(features[:, FEATURE_NAMES.index(SPEND_FEATURE)], dtype=np.float64)
    return np.log1p(np.clip(np.nan_to_num(spend, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the logit of the raw score: p = sigmoid(a * logit(raw) + b).

    Strictly increasing, so it never reorders (or ties) one member's offers.
    """

    a: float = 1.0
    b: float = 0.0

    method = "platt"

    def apply(self, raw: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities of the raw scores; ``features`` is not needed (accepted for symmetry)."""
        return _sigmoid(self.a * logit(raw) + self.b)

    def to_json(self) -> dict[str, Any]:
        """The metadata.json form (unchanged since format 1, so old readers still load it)."""
        return {"method": "platt", "a": self.a, "b": self.b}


@dataclass(frozen=True)
class StackedCalibration:
    """A logistic layer over the trees and the product-spend heuristic:
    p = sigmoid(a * logit(raw) + c * log1p(product_spend) + b).

    Fitted by training on out-of-sample validation scores, so the served score is still a
    calibrated probability while the within-member ranking mixes the model with the heuristic
    it must never rank below (docs/training.md, "The ranking floor"). ``method`` is
    ``blend`` (both weights fitted) or ``heuristic`` (spend only, ``a`` = 0: one member's offers
    are ranked exactly as by the heuristic, and equal spends stay tied).

    The ``member`` methods add ``d * logit(member_raw)``, the member model's score (a booster over
    :data:`MEMBER_MODEL_FEATURES`, non-decreasing in spend). ``member`` is the heuristic plus that
    term (``a`` = 0, ``d`` >= 0, ``c`` > 0): within one member's request the served score is a
    strictly increasing function of spend, so it ranks offers exactly as the heuristic does, while
    the member term moves members against each other (the pooled ranking).
    """

    a: float
    c: float
    b: float
    method: str = "blend"
    d: float = 0.0

    @property
    def uses_member(self) -> bool:
        """Whether the served score reads the member model."""
        return self.method in MEMBER_METHODS

    def apply(self, raw: np.ndarray, features: np.ndarray | None = None,
              member_raw: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities; needs the rows' features for their ``product_spend`` (and the
        member model's scores under a ``member`` method)."""
        if features is None:
            raise ValueError(f"a {self.method} calibration needs the feature matrix (its {SPEND_FEATURE} column)")
        return _sigmoid(self.logit(raw, features, member_raw))

    def logit(self, raw: np.ndarray, features: np.ndarray, member_raw: np.ndarray | None = None) -> np.ndarray:
        """The served log-odds: a * logit(raw) + c * log1p(product_spend) + d * logit(member_raw) + b."""
        out = self.a * logit(raw) + self.c * log_spend(features) + self.b
        if self.uses_member:
            if member_raw is None:
                raise ValueError(f"a {self.method} calibration needs the member model's scores")
            out = out + self.d * logit(member_raw)
        return out

    def to_json(self) -> dict[str, Any]:
        """The metadata.json form: method, the weights and the spend feature's name."""
        out = {"method": self.method, "a": self.a, "b": self.b, "spend_weight": self.c, "feature": SPEND_FEATURE}
        return out | ({"member_weight": self.d} if self.uses_member else {})


Calibrator = Calibration | StackedCalibration


def _number(cal: dict[str, Any], key: str, default: float | None, where: str) -> float:
    """``cal[key]`` as a finite float (``default`` when absent and allowed); ArtifactError otherwise."""
    value = cal.get(key, default)
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ArtifactError(f"{where}: malformed calibration: {key!r} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{where}: malformed calibration: {key!r} must be a number, got {value!r}") from exc
    if not np.isfinite(out):
        raise ArtifactError(f"{where}: malformed calibration: {key!r} is not finite ({value!r})")
    return out


def parse_calibration(cal: object, where: str) -> Calibrator:
    """The calibrator recorded in metadata.json; :class:`ArtifactError` naming what is malformed.

    A missing calibration is the identity Platt (as format 1 always read it); ``platt`` (or
    no method, older artifacts) is Platt scaling; ``blend`` and ``heuristic`` are stacked
    over ``product_spend`` and need all three weights.
    """
    if cal is None:
        return Calibration()
    if not isinstance(cal, dict):
        raise ArtifactError(f"{where}: malformed calibration {cal!r}: expected an object")
    method = cal.get("method", "platt")
    if method == "platt":
        return Calibration(_number(cal, "a", 1.0, where), _number(cal, "b", 0.0, where))
    if method not in STACKED_METHODS:
        raise ArtifactError(f"{where}: unknown calibration method {method!r} (expected platt, blend or heuristic)")
    if cal.get("feature") != SPEND_FEATURE:
        raise ArtifactError(f"{where}: malformed {method} calibration: feature must be {SPEND_FEATURE!r}, "
                            f"got {cal.get('feature')!r}")
    out = StackedCalibration(a=_number(cal, "a", None, where), c=_number(cal, "spend_weight", None, where),
                             b=_number(cal, "b", None, where), method=str(method),
                             d=_number(cal, "member_weight", None, where) if method in MEMBER_METHODS else 0.0)
    if method == "member" and not (out.a == 0.0 and out.d >= 0.0 and out.c > 0.0):
        raise ArtifactError(f"{where}: malformed member calibration: needs a = 0, member_weight >= 0 and "
                            f"spend_weight > 0 (else it could reorder a member's offers), got {cal!r}")
    return out


def check_member_booster(booster: lgb.Booster, where: str) -> None:
    """Refuse a member model that splits on a feature outside :data:`MEMBER_MODEL_FEATURES`.

    Its score must be the same for every offer of one member's request except through
    ``product_spend``; a split on an offer feature would let the member term reorder offers.
    """
    splits = booster.feature_importance("split")
    used = [n for n, k in zip(booster.feature_name(), splits, strict=True) if k > 0 and n not in MEMBER_MODEL_FEATURES]
    if used:
        raise ArtifactError(f"{where}: the member model splits on offer-level features {used[:5]}")


def _member_entry(meta: dict[str, Any], where: str) -> tuple[str, str]:
    """The member model's text and sha256 from metadata.json; ArtifactError when malformed."""
    entry = meta.get("member_model")
    if not isinstance(entry, dict):
        raise ArtifactError(f"{where}: the calibration needs a member model, but 'member_model' is "
                            f"{'missing' if entry is None else 'not an object'}")
    text, digest = entry.get("text"), entry.get("sha256")
    if not isinstance(text, str) or not isinstance(digest, str):
        raise ArtifactError(f"{where}: malformed 'member_model': expected its model 'text' and 'sha256' strings, "
                            f"got keys {sorted(entry)!r}")
    return text, digest


@dataclass
class PropensityModel:
    """A loaded, checked propensity model ready to score feature matrices."""

    booster: lgb.Booster
    calibration: Calibrator
    metadata: dict[str, Any] = field(default_factory=dict)
    program: Program | None = None
    program_text: str | None = None
    model_file: Path | None = None  # the artifact's model.txt, when loaded from one
    compiled: CompiledForest | None = None  # set by :meth:`compile`; scores instead of the booster
    member_booster: lgb.Booster | None = None  # the member model, when the calibration reads one
    member_compiled: CompiledForest | None = None  # set by :meth:`compile` with a member model

    @property
    def predictor(self) -> str:
        """What scores rows: ``lleaves`` (compiled trees) or ``lightgbm`` (Booster.predict)."""
        return "lleaves" if self.compiled is not None else "lightgbm"

    def compile(self, cache_dir: Path | None = None) -> CompiledForest:
        """Score with lleaves-compiled trees from now on, once they reproduce the booster.

        Raises :class:`~models.compiled.CompileError` (and keeps ``Booster.predict``) when
        lleaves is missing, compiling fails or the compiled trees disagree with LightGBM.
        """
        if self.model_file is None:
            raise CompileError("only a model loaded from an artifact can be compiled")
        member = None
        if self.member_booster is not None:
            member = _compile_member(self.member_booster, cache_dir)
        self.compiled = compile_forest(self.booster, self.model_file,
                                       str(self.metadata.get("model_sha256") or sha256_file(self.model_file)),
                                       cache_dir)
        self.member_compiled = member
        return self.compiled

    def try_compile(self, cache_dir: Path | None = None) -> str | None:
        """:meth:`compile`, but a failure is returned (why) instead of raised: scores stay the same."""
        try:
            self.compile(cache_dir)
        except CompileError as exc:
            return str(exc)
        return None

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unversioned"))

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.get("feature_names", FEATURE_NAMES))

    def raw_score(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated model output (probability scale), single-threaded."""
        if self.compiled is not None:
            return self.compiled.predict(features)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def member_score(self, features: np.ndarray) -> np.ndarray | None:
        """The member model's score (probability scale), or None when the calibration does not read one."""
        if not (isinstance(self.calibration, StackedCalibration) and self.calibration.uses_member):
            return None
        if self.member_compiled is not None:
            return self.member_compiled.predict(features)
        if self.member_booster is None:
            raise ValueError(f"a {self.calibration.method} calibration needs the member model")
        return np.asarray(self.member_booster.predict(features, num_threads=1), dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Calibrated redemption probabilities for rows of ``features`` (FEATURE_NAMES order)."""
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(f"features has {features.shape[-1]} columns, but the model expects "
                             f"{len(self.feature_names)}")
        if isinstance(self.calibration, StackedCalibration):
            return self.calibration.apply(self.raw_score(features), features, self.member_score(features))
        return self.calibration.apply(self.raw_score(features), features)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log-odds) from LightGBM's pred_contrib; last column is the bias.

        Under a stacked calibration they are those of the served log-odds: the trees' scaled
        by ``a``, ``c * log1p(product_spend)`` added to ``product_spend`` and ``b`` to the bias;
        with a member model, its own contributions scaled by ``d`` are added (they sum to its log-odds).
        """
        contrib = np.asarray(self.booster.predict(features, pred_contrib=True, num_threads=1))
        cal = self.calibration
        if not isinstance(cal, StackedCalibration):
            return contrib
        out = contrib * cal.a
        out[:, FEATURE_NAMES.index(SPEND_FEATURE)] += cal.c * log_spend(features)
        out[:, -1] += cal.b
        if cal.uses_member and self.member_booster is not None:
            out += cal.d * np.asarray(self.member_booster.predict(features, pred_contrib=True, num_threads=1))
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write model.txt and metadata.json into ``directory`` (which must be new or empty)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        model_path = out / MODEL_FILE
        self.booster.save_model(str(model_path))
        meta = dict(self.metadata)
        meta.pop("member_model", None)
        if self.member_booster is not None:  # inside metadata.json: an artifact stays two files
            text = self.member_booster.model_to_string()
            meta["member_model"] = {"text": text, "sha256": hashlib.sha256(text.encode("ascii")).hexdigest(),
                                    "features": list(MEMBER_MODEL_FEATURES)}
        if self.program_text is not None:
            (out / PROGRAM_FILE).write_text(self.program_text)
        meta.update({
            "format_version": FORMAT_VERSION,
            "feature_names": self.feature_names,
            "categorical_features": [c for c in CATEGORICAL_FEATURES if c in self.feature_names],
            "calibration": self.calibration.to_json(),
            "model_sha256": sha256_file(model_path),
            "lightgbm_version": lgb.__version__,
        })
        (out / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        self.metadata = meta
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PropensityModel:
        """Load and check an artifact; raise :class:`ArtifactError` naming what is wrong."""
        path = Path(directory)
        meta_path, model_path = path / METADATA_FILE, path / MODEL_FILE
        if not path.is_dir():
            raise ArtifactError(f"model artifact {str(path)!r} does not exist")
        if not meta_path.is_file() or not model_path.is_file():
            raise ArtifactError(f"model artifact {str(path)!r} is incomplete: needs {MODEL_FILE} and {METADATA_FILE}")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{meta_path}: metadata is not valid JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise ArtifactError(f"{meta_path}: metadata must be a JSON object")
        if meta.get("objective") == "uplift":
            raise ArtifactError(f"{path.name} is an uplift model (per-offer incremental effects), not a propensity "
                                "model; load it with models.uplift.load_uplift (offers score / evaluate)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"{meta_path}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        names = meta.get("feature_names")
        if names != FEATURE_NAMES:
            missing = [n for n in FEATURE_NAMES if n not in (names or [])]
            extra = [n for n in (names or []) if n not in FEATURE_NAMES]
            raise ArtifactError(
                f"{path.name}: the artifact's {len(names or [])} features do not match the code's "
                f"{len(FEATURE_NAMES)} (missing {missing[:5]}, unexpected {extra[:5]}"
                f"{', or a different order' if not missing and not extra else ''}); retrain the model")
        booster = load_checked_booster(model_path, meta.get("model_sha256"), names)
        if booster.feature_name() != names:
            raise ArtifactError(f"{model_path}: the model's features differ from its metadata")
        program, program_text = None, None
        expected_program = meta.get("program_config_sha256")
        if expected_program:
            program_path = path / PROGRAM_FILE
            if not program_path.is_file():
                raise ArtifactError(f"{path.name}: trained under a program config, but {PROGRAM_FILE} is missing")
            program_text = program_path.read_text()
            if hashlib.sha256(program_text.encode()).hexdigest() != expected_program:
                raise ArtifactError(f"{program_path}: checksum mismatch (not the program the model was trained under)")
            try:
                program = load_program(program_path)
            except ProgramConfigError as exc:
                raise ArtifactError(f"{program_path}: {exc}") from exc
        calibration = parse_calibration(meta.get("calibration"), str(meta_path))
        member = None
        if isinstance(calibration, StackedCalibration) and calibration.uses_member:
            member = _load_member(meta, names, str(meta_path))
        return cls(booster=booster, calibration=calibration, metadata=meta, program=program,
                   program_text=program_text, model_file=model_path, member_booster=member)


def _load_member(meta: dict[str, Any], names: list[str], where: str) -> lgb.Booster:
    """The artifact's member model (text inside metadata.json), checked like model.txt and for
    the features it splits on."""
    text, digest = _member_entry(meta, where)
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ArtifactError(f"{where}: the member model is not a LightGBM text model ({exc})") from exc
    member = checked_booster_bytes(data, f"{where} member_model", digest, names)
    if member.feature_name() != names:
        raise ArtifactError(f"{where}: the member model's features differ from the metadata's")
    check_member_booster(member, f"{where} member_model")
    return member


def _compile_member(member: lgb.Booster, cache_dir: Path | None) -> CompiledForest:
    """The member model compiled like the trees; its text is written next to the compiled cache first
    (lleaves reads a file), under its sha256 so workers share it."""
    from models.compiled import default_cache_dir

    text = member.model_to_string()
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"member-{digest}.txt"
        if not path.is_file() or sha256_file(path) != digest:
            tmp = directory / f".member-{digest}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, path)
    except OSError as exc:
        raise CompileError(f"cannot write the member model for compiling ({exc})") from exc
    return compile_forest(member, path, digest, cache_dir)
