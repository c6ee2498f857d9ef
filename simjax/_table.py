"""A small tidy table (columns of equal length) returned by sweeps and analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Table:
    """A tidy table: `columns[name]` are equal-length numpy arrays."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict]) -> Table:
        if not rows:
            return cls({})
        names = list(rows[0])
        return cls({n: np.asarray([r[n] for r in rows]) for n in names})

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self) -> list[dict]:
        names = list(self.columns)
        return [dict(zip(names, vals)) for vals in zip(*(self.columns[n].tolist() for n in names))]

    def where(self, **equal: Any) -> Table:
        mask = np.ones(len(self), bool)
        for k, v in equal.items():
            mask &= self.columns[k] == v
        return Table({k: v[mask] for k, v in self.columns.items()})

    def value(self, column: str = "value", **equal: Any) -> Any:
        """The `column` entry of the single row matching `equal`."""
        sub = self.where(**equal)
        if len(sub) != 1:
            raise KeyError(f"{len(sub)} rows match {equal}, expected exactly one")
        return sub.columns[column][0].item()
