"""Importers of randomized experiments into the data contract (Starbucks promotion, Hillstrom e-mail)."""

from offerdata.experiments.hillstrom import write_hillstrom
from offerdata.experiments.source import SourceUnavailable
from offerdata.experiments.starbucks import write_starbucks

__all__ = ["SourceUnavailable", "write_hillstrom", "write_starbucks"]
