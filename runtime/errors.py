"""The decision runtime's errors: the ``OffersRuntimeError`` sub-tree of :mod:`models.errors`.

Each class lives in the module that raises it (``StoreError`` in :mod:`runtime.stores.interfaces`,
``SettingsError`` in :mod:`runtime.settings`, ...) and descends from
:class:`OffersRuntimeError`; :mod:`models.errors` draws the whole tree.
"""

from __future__ import annotations

from models.errors import OffersError


class OffersRuntimeError(OffersError):
    """An error of the decision runtime (stores, logs, settings, coupons, models served)."""


class NotReady(OffersRuntimeError):
    """The model (or the decision setup) is not loaded yet; the HTTP layer answers 503."""
