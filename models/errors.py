"""The project's exception tree: one root, one documented sub-tree per package.

Every error this project raises on purpose descends from :class:`OffersError`, so a caller
(the CLI, the HTTP layer, a notebook) can tell "the product refused something, with a
message meant for a person" from a bug. Classes keep a builtin second base where callers
rely on it (``ValueError`` for bad values, ``OSError`` for files)::

    OffersError
    ├── CoreError                      models/: the pure core
    │   ├── ProgramConfigError         a program YAML file is invalid (every problem listed)
    │   ├── YamlSyntaxError            a YAML file does not parse
    │   ├── ArtifactError              a model artifact cannot be loaded or used
    │   ├── ModelFileError             a model file fails its structural check
    │   ├── ProbeFailed                a model file crashed or failed the child-process probe
    │   ├── CompileError               lleaves could not compile the trees
    │   ├── RegistryError              the model registry refuses an operation
    │   └── OutOfRange                 a timestamp outside the supported range
    ├── DataDirError                   offerdata/: a data directory cannot be used
    │   ├── DataDirInvalid             validation found problems (the report is attached)
    │   ├── SourceUnavailable          an experiment's source file is missing
    │   ├── DatasetUnavailable         The Complete Journey cannot be loaded
    │   └── SplitError                 an experiment split is impossible
    ├── TrainingError                  training/: training cannot run on these inputs
    │   └── UpliftTrainingError
    ├── OffersRuntimeError             runtime/ (runtime/errors.py)
    │   ├── SettingsError              an OFFERS_* variable is invalid
    │   ├── ClockError                 OFFERS_CLOCK / --as-of cannot be used
    │   ├── StoreError                 the online store failed
    │   │   └── StoreUnavailable       it cannot be reached (HTTP: 503 with Retry-After)
    │   ├── EventLogError              the event or decision log cannot be written
    │   ├── InvalidCouponCode          a coupon code is malformed
    │   ├── CouponsRefused             coupons of a request cannot be redeemed
    │   ├── ModelRejected              the champion cannot be served
    │   ├── NotReady                   the model or setup is still loading
    │   └── AudienceError              ``offers batch`` inputs cannot be used
    └── ServiceError                   service/: an HTTP problem (status, type, title)
        └── BadRequest, Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed, ...

The HTTP layer maps ``ServiceError`` to its status and ``StoreUnavailable`` to 503 in one
place (:func:`service.errors.register_error_handlers`); the CLI turns any ``OffersError``
into its message and exit code 1 (:mod:`offers_cli.main`).
"""

from __future__ import annotations


class OffersError(Exception):
    """Root of every error this project raises on purpose (see the module docstring)."""


class CoreError(OffersError):
    """An error of the pure core (``models``): a config, artifact or value it cannot use."""


class ArtifactError(CoreError):
    """A model artifact is missing, corrupt, or does not match the code's features."""


class RegistryError(CoreError):
    """The registry is missing, or a version or alias does not exist."""
