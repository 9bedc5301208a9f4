"""Members' typed attribute columns (``attr_<name>``): reading them and their kinds.

A members table may carry any number of attribute columns, named ``attr_`` followed by
lower-case letters, digits or ``_``. Their type is the column's own: in Parquet the
physical type (string, integer, float, boolean or timestamp; validation refuses lists,
structs and binaries); in CSV, where every value is text, a column whose non-null values
all parse as numbers is numeric and any other column is a string. Uplift models use them
as features: numbers and booleans as they are, strings as categories, timestamps as
seconds since the epoch.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import pandas as pd

from models.data_contract import ATTRIBUTE_NAME_RE, ATTRIBUTE_PREFIX
from offerdata.tables import require_table

AttributeKind = Literal["numeric", "category"]


def attribute_columns(columns: list[str]) -> list[str]:
    """The well-formed attribute column names among ``columns``, in order."""
    return [c for c in columns if c.startswith(ATTRIBUTE_PREFIX) and re.match(ATTRIBUTE_NAME_RE, c)]


def _typed(series: pd.Series, from_csv: bool) -> pd.Series:
    """One attribute column as float64 (numbers, booleans, timestamps) or pandas string (the rest)."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(series):
        seconds = pd.to_datetime(series).astype("datetime64[ns]").astype("int64") / 1e9
        return seconds.where(series.notna())
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    if from_csv:
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.notna().sum() == series.notna().sum():
            return numbers.astype("float64")
    return series.astype("string")


def read_attributes(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """``member_id`` and every attribute column of the members table, typed (see the module doc)."""
    path = require_table(data_dir, "members")
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    else:
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        frame = pd.read_parquet(path, columns=["member_id", *attribute_columns(list(names))])
    out = pd.DataFrame({"member_id": frame["member_id"].astype(str)})
    for name in attribute_columns(list(frame.columns)):
        out[name] = _typed(frame[name], path.suffix == ".csv")
    return out


def attribute_kinds(frame: pd.DataFrame) -> dict[str, AttributeKind]:
    """Each attribute column of a :func:`read_attributes` frame: numeric or category."""
    return {c: ("numeric" if pd.api.types.is_float_dtype(frame[c]) else "category")
            for c in attribute_columns(list(frame.columns))}
