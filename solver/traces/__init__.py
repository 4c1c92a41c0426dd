"""Loaders of public GPU-cluster and LLM-serving traces into one canonical schema.

Every job loader returns a pandas DataFrame whose first columns are
:data:`~solver.traces.schema.CANONICAL_COLUMNS` (see :mod:`solver.traces.schema` for types and
units), followed by trace-specific extras. Node loaders return the canonical node table and
:func:`load_azure` returns the canonical request table. Loaders take a path and, with
``chunksize``, return an iterator of tables read with pandas' chunked reader. Bad values raise
:class:`~solver.traces.schema.TraceFormatError` (a ValueError) naming file, row, column and
value. See ``docs/traces.md``.

=====================  ==============================================  =====================
format (``LOADERS``)   file                                            loader
=====================  ==============================================  =====================
``philly``             ``philly/philly.csv``                           :func:`load_philly`
``gavel``              ``gavel/traces/msr/seed=S/<vc>.trace.gz``       :func:`load_gavel`
``openb``              ``openb_pod_list_*.csv``                        :func:`load_openb`
``pai``                ``pai_task_table.csv`` (full trace only)        :func:`load_pai_tasks`
``sia``                ``*_workloads/**/workload-N.csv``               :func:`load_sia`
``azure``              ``AzureLLMInferenceTrace_{conv,code}.csv``      :func:`load_azure`
``csv``                canonical CSV                                   :func:`load_generic_csv`
=====================  ==============================================  =====================
"""

from solver.traces.azure import LOAD_COLUMNS, load_azure, requests_to_load
from solver.traces.gavel import load_gavel, load_gavel_throughputs
from solver.traces.generic import load_generic_csv
from solver.traces.openb import load_openb, load_openb_nodes
from solver.traces.pai import load_pai_machines, load_pai_tasks
from solver.traces.philly import load_philly, load_philly_machines
from solver.traces.registry import LOADERS, TraceLoader, load_trace, parse_trace_spec
from solver.traces.samples import write_samples
from solver.traces.schema import (
    CANONICAL_COLUMNS,
    JOB_KINDS,
    NODE_COLUMNS,
    REQUEST_COLUMNS,
    TraceFormatError,
    validate_job_table,
    validate_node_table,
    validate_request_table,
)
from solver.traces.sia import PROFILE_COLUMNS, SIA_CLUSTER_GPU_TYPES, load_sia, load_sia_profiles

__all__ = [
    "CANONICAL_COLUMNS",
    "JOB_KINDS",
    "LOADERS",
    "LOAD_COLUMNS",
    "NODE_COLUMNS",
    "PROFILE_COLUMNS",
    "REQUEST_COLUMNS",
    "SIA_CLUSTER_GPU_TYPES",
    "TraceFormatError",
    "TraceLoader",
    "load_azure",
    "load_gavel",
    "load_gavel_throughputs",
    "load_generic_csv",
    "load_openb",
    "load_openb_nodes",
    "load_pai_machines",
    "load_pai_tasks",
    "load_philly",
    "load_philly_machines",
    "load_sia",
    "load_sia_profiles",
    "load_trace",
    "parse_trace_spec",
    "requests_to_load",
    "validate_job_table",
    "validate_node_table",
    "validate_request_table",
    "write_samples",
]
