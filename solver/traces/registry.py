"""Registry of trace formats and the ``FORMAT:PATH`` trace-spec parser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol, overload

import pandas as pd

from solver.traces._io import PathLike, check_sizes
from solver.traces.azure import load_azure
from solver.traces.gavel import load_gavel
from solver.traces.generic import load_generic_csv
from solver.traces.openb import load_openb
from solver.traces.pai import load_pai_tasks
from solver.traces.philly import load_philly
from solver.traces.sia import load_sia

__all__ = ["LOADERS", "TraceLoader", "load_trace", "parse_trace_spec"]


class TraceLoader(Protocol):
    """Signature shared by every registered loader."""

    def __call__(
        self, path: PathLike, *, chunksize: int | None = None, limit: int | None = None
    ) -> pd.DataFrame | Iterator[pd.DataFrame]:
        """Load ``path``; one table, or an iterator of tables when ``chunksize`` is given."""
        ...


LOADERS: Final[dict[str, TraceLoader]] = {
    "philly": load_philly,
    "gavel": load_gavel,
    "openb": load_openb,
    "pai": load_pai_tasks,
    "sia": load_sia,
    "azure": load_azure,
    "csv": load_generic_csv,
}
"""Format name → loader. All return canonical job tables except ``azure`` (request table).

``pai`` reads the full trace's ``pai_task_table.csv`` (not shipped; see :mod:`.pai`)."""


def parse_trace_spec(spec: str) -> tuple[str, Path]:
    """Split ``"FORMAT:PATH"`` into the format name and the path.

    Parameters
    ----------
    spec
        Trace spec, e.g. ``"philly:/data/philly/philly.csv"``. Only the first ``:`` separates.

    Returns
    -------
    tuple[str, pathlib.Path]
        Lower-cased format name and path.

    Raises
    ------
    ValueError
        If the spec has no ``:``, an empty path, or an unknown format.
    """
    fmt, sep, path = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or not fmt or not path:
        raise ValueError(
            f"trace {spec!r}: expected FORMAT:PATH with FORMAT one of {sorted(LOADERS)}"
        )
    if fmt not in LOADERS:
        raise ValueError(
            f"trace {spec!r}: unknown format {fmt!r}; known formats: {sorted(LOADERS)}"
        )
    return fmt, Path(path)


@overload
def load_trace(spec: str, chunksize: None = None, limit: int | None = None) -> pd.DataFrame: ...
@overload
def load_trace(spec: str, chunksize: int, limit: int | None = None) -> Iterator[pd.DataFrame]: ...
@overload
def load_trace(
    spec: str, chunksize: int | None = None, limit: int | None = None
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_trace(
    spec: str, chunksize: int | None = None, limit: int | None = None
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load a trace given as ``"FORMAT:PATH"`` with the registered loader.

    Parameters
    ----------
    spec
        ``FORMAT:PATH``; FORMAT is a key of :data:`LOADERS`.
    chunksize
        Passed to the loader: return an iterator of tables of at most this many rows.
    limit
        Passed to the loader: read at most this many rows.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        What the loader returns (canonical job table, or request table for ``azure``).

    Raises
    ------
    ValueError
        For a malformed spec, an unknown format (``trace 'x:/p': unknown format 'x' ...``) or a
        missing file (``trace 'philly:/x/y.csv': file not found``); bad values raise
        :class:`~solver.traces.schema.TraceFormatError` (also a ValueError).
    """
    check_sizes(chunksize, limit)
    fmt, path = parse_trace_spec(spec)
    if not path.exists():
        raise ValueError(f"trace {spec!r}: file not found")
    try:
        return LOADERS[fmt](path, chunksize=chunksize, limit=limit)
    except FileNotFoundError as exc:
        raise ValueError(f"trace {spec!r}: {exc}") from exc
