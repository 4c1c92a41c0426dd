r"""Run a backend under a hard wall-clock deadline, in a child process.

Solvers do not always honour their own time limits (HiGHS has been measured running 42 s
past a 10 s limit), and building a large model takes time too. :func:`run_backend`
therefore forks a child in its own session that builds the model, takes the warm start
(the caller's hint, or :func:`~solver.heuristics.pricing.warm_start`, which the parent
makes meanwhile) and runs the backend, decodes the assignment and sends it back through a
pipe; incumbents are
streamed as they are found. The parent kills the child's whole process group (the child
and any solver binary it started) once the deadline plus ``grace_s`` passes, and keeps
the best decision it received. The warm start, when it satisfies every row, is sent first,
so a backend killed before finding anything still returns a decision (status ``feasible``,
message "killed at the deadline; best incumbent returned"), and a backend never returns a
decision worse than its warm start: CP-SAT's presolve can make a complete hint infeasible
(symmetry breaking), after which its own solutions on large instances were measured worse than
the hint it was given (large s4: 1696.9 against the warm start's 1685.0).

:func:`start_backend` splits this in two for a caller that has no warm start yet: the child
builds the model and runs the backend's hint-free ``prepare`` step (the RINS stage solves its
LP relaxation there) while the caller computes the hint, which :meth:`BackendRun.send_hint`
then passes on; :meth:`BackendRun.result` waits for the answer as :func:`run_backend` does. A
hint that never comes ends the child at the deadline (``no_solution``). The message of a
result the child returns says when the backend started ("solver started at 0.15 s": model,
warm start and hint done, in seconds since the deadline started); the child also sends that
time as soon as the solver starts, and every :class:`~solver.methods.MethodOutput` of a run
carries it as ``build_s``, also when the child is killed at the deadline.

The child first gives itself its own HiGHS task scheduler, and again after the warm start
(:func:`solver.heuristics.pricing.warm_start` solves an LP with HiGHS; the child makes it
when the parent sends none). HiGHS keeps one per process,
started with the first MIP's thread count; a forked child inherits the parent's (e.g. from
a host application's own highspy use) but not its worker threads. Measured without the
reset: the child's HiGHS refused a run with another thread count (model status "Not Set")
or, with 2 threads in both, waited for the missing workers until the deadline.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from formulations.linear import BuildTimeout
from formulations.model import ExactModel
from formulations.structure import ModelTooLarge
from solver.compiled import CompiledInstance
from solver.heuristics.pricing import warm_start
from solver.methods import MethodOutput
from solver.result import Decision, Status
from solver.stop import Deadline

__all__ = ["Backend", "BackendResult", "BackendRun", "Prepare", "run_backend", "start_backend"]

#: Seconds after the deadline before the child is killed (the contract allows 1 s in total).
GRACE_S = 0.1
#: Seconds kept back from the solver for decoding and sending the result.
DECODE_RESERVE_S = 0.4
#: The warm start the parent makes (no hint given) may take at most this share of the time left, so a
#: backend still gets it as its first incumbent under a tight limit (xl at 3 s: ``lp-greedy`` took the
#: whole time and ``cpsat`` ended with no decision; now with greedy's).
WARM_START_SHARE = 0.5


@dataclass(frozen=True)
class BackendResult:
    """What a backend reports: claimed status, assignment, model objective, proven bound."""

    status: Status
    values: npt.NDArray[np.float64] | None
    objective: float | None
    bound: float | None
    message: str = ""


#: ``report(values, objective, bound)`` streams an incumbent to the parent.
Report = Callable[[npt.NDArray[np.float64], float, float | None], None]
#: ``backend(model, hint_values, time_limit_s, seed, report) -> BackendResult``.
Backend = Callable[[ExactModel, npt.NDArray[np.float64], float, int, Report], BackendResult]
#: ``prepare(model, deadline)``: a backend's work that needs no hint (:func:`start_backend`).
Prepare = Callable[[ExactModel, Deadline], None]


def run_backend(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, backend: Backend,
                skip_families: frozenset[str] = frozenset(), grace_s: float = GRACE_S) -> MethodOutput:
    """Build the exact model and run ``backend`` on it within ``deadline`` (hard).

    Without a ``hint`` the warm start (:func:`~solver.heuristics.pricing.warm_start`) is made
    in this process while the child builds the model, and then sent to it.

    Returns
    -------
    MethodOutput
        The final result if the child finished, else its best streamed incumbent
        (``feasible``), else ``no_solution``; the best streamed incumbent also replaces a
        final decision with a higher objective (the final bound is kept). Never raises for
        infeasibility or time-outs.
    """
    if hint is not None:
        return start_backend(ci, deadline, seed, backend, hint=hint, skip_families=skip_families,
                             grace_s=grace_s).result()
    # no hint: the child builds the model while this process makes the warm start (two cores)
    run = start_backend(ci, deadline, seed, backend, late_hint=True, skip_families=skip_families, grace_s=grace_s)
    try:
        start: Decision | None = warm_start(ci, deadline.sub(WARM_START_SHARE))
    except Exception:  # the child then makes it itself and reports what fails
        start = None
    run.send_hint(start)
    return run.result()


def start_backend(ci: CompiledInstance, deadline: Deadline, seed: int, backend: Backend, *,
                  hint: Decision | None = None, late_hint: bool = False, prepare: Prepare | None = None,
                  skip_families: frozenset[str] = frozenset(), grace_s: float = GRACE_S) -> BackendRun:
    """Start ``backend`` in a child process and return at once (:meth:`BackendRun.result` waits).

    Parameters
    ----------
    hint
        The warm start (None: the child computes :func:`~solver.heuristics.pricing.warm_start`).
    late_hint
        The hint is not known yet: the child builds the model, runs ``prepare`` and then waits
        for :meth:`BackendRun.send_hint` (``hint`` is ignored). This lets a backend do its
        hint-free work (build the model, solve the LP relaxation) on the second core while the
        caller runs the heuristics that make the hint.
    prepare
        ``prepare(model, deadline)``, run in the child after the model is built and before
        the hint is read; what it computes stays in the child for the backend.
    """
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    hint_recv, hint_send = ctx.Pipe(duplex=False) if late_hint else (None, None)
    proc = ctx.Process(target=_child, args=(ci, deadline, None if late_hint else hint, hint_recv, seed, backend,
                                            prepare, skip_families, send), daemon=True)
    proc.start()
    send.close()
    if hint_recv is not None:
        hint_recv.close()
    return BackendRun(proc, recv, hint_send, deadline.start + deadline.limit_s + grace_s)


class BackendRun:
    """A backend running in its child process (:func:`start_backend`)."""

    def __init__(self, proc: Any, recv: Connection, hint_send: Connection | None, end: float) -> None:
        self._proc, self._recv, self._hint_send, self._end = proc, recv, hint_send, end
        self._sender: threading.Thread | None = None

    def send_hint(self, hint: Decision | None) -> None:
        """Send the late hint (None: the child computes the warm start itself). Returns at once: a
        thread writes it, since the child reads it only after its ``prepare`` step and a large
        decision does not fit in the pipe's buffer."""
        conn = self._hint_send
        if conn is None or self._sender is not None:
            raise RuntimeError("this run takes no (more) hint")

        def write() -> None:
            with contextlib.suppress(OSError):  # the child has ended or been killed (EPIPE)
                conn.send(hint)

        self._sender = threading.Thread(target=write, daemon=True)
        self._sender.start()

    def cancel(self) -> None:
        """Kill the child (and any solver process it started) without waiting for a result."""
        self._kill()
        self._recv.close()

    def result(self) -> MethodOutput:
        """Wait for the child's final answer, at most until the deadline plus the grace time
        (see :func:`run_backend` for what is returned)."""
        proc, recv = self._proc, self._recv
        best: tuple[Any, ...] | None = None  # ("solution", decision, objective, bound) with the lowest objective
        build_s: float | None = None  # from ("started", seconds): when the solver started
        streamed_bound: float | None = None  # the highest bound streamed with any incumbent
        final: tuple[Any, ...] | None = None
        while final is None:
            left = self._end - time.perf_counter()
            if left <= 0:
                break
            if recv.poll(min(left, 0.05)):
                try:
                    msg = recv.recv()
                except EOFError:
                    break
                if msg[0] == "final":
                    final = msg
                elif msg[0] == "started":
                    build_s = msg[1]
                else:
                    if msg[3] is not None:
                        streamed_bound = msg[3] if streamed_bound is None else max(streamed_bound, msg[3])
                    if best is None or msg[2] < best[2]:
                        best = msg
            elif not proc.is_alive() and not recv.poll(0):
                break
        killed = proc.is_alive() and final is None
        self._kill()
        recv.close()
        if final is not None:
            _, status, decision, objective, bound, message = final
            if status is Status.INFEASIBLE and best is not None:
                # a streamed incumbent satisfies every row (the warm start is only sent when it
                # does): the claim is a solver fault (CBC made it once when stopped within a
                # second of starting). A failed backend (status error) stays an error.
                return MethodOutput(best[1], Status.FEASIBLE, streamed_bound,
                                    f"{message}; claimed infeasible, but an incumbent satisfies every row: claim "
                                    "dropped, best incumbent returned", best[2], build_s=build_s)
            if status not in (Status.INFEASIBLE, Status.ERROR):
                if streamed_bound is not None:
                    bound = streamed_bound if bound is None else max(bound, streamed_bound)  # all are global bounds
                if best is not None and (decision is None or objective is None
                                         or best[2] < objective - 1e-9 * max(1.0, abs(objective))):
                    note = "no final solution" if decision is None else f"final objective {objective:.6g}"
                    decision, objective = best[1], best[2]
                    status = Status.FEASIBLE
                    message = (message + "; " if message else "") + f"{note}: best incumbent returned"
            return MethodOutput(decision, status, bound, message, objective, build_s=build_s)
        note = "killed at the deadline" if killed else "backend process ended without a result"
        if best is not None:
            return MethodOutput(best[1], Status.FEASIBLE, streamed_bound, f"{note}; best incumbent returned", best[2],
                                build_s=build_s)
        return MethodOutput(None, Status.NO_SOLUTION, None, note, build_s=build_s)

    def _kill(self) -> None:
        proc = self._proc
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.join(0.2)  # a killed child is reaped later by multiprocessing if it is slow to go
        if self._sender is not None:  # a hint too large for the pipe, never read: EPIPE once the child is gone
            self._sender.join(1.0)
        if self._hint_send is not None and (self._sender is None or not self._sender.is_alive()):
            self._hint_send.close()  # never under a writing thread (it would write to a closed handle)


def _child(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, hint_recv: Connection | None, seed: int,
           backend: Backend, prepare: Prepare | None, skip_families: frozenset[str], send: Connection) -> None:
    os.setsid()
    highspy.Highs.resetGlobalScheduler(False)  # see the module docstring
    try:
        send.send(("final", *_solve(ci, deadline, hint, hint_recv, seed, backend, prepare, skip_families, send)))
    except BaseException as exc:  # report, never hang the parent
        where = traceback.extract_tb(exc.__traceback__)[-1]
        send.send(("final", Status.ERROR, None, None, None,
                   f"{type(exc).__name__}: {exc} [{where.filename}:{where.lineno} {where.line}]"))
    finally:
        send.close()
        os._exit(0)


def _solve(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, hint_recv: Connection | None, seed: int,
           backend: Backend, prepare: Prepare | None, skip_families: frozenset[str],
           send: Connection) -> tuple[Any, ...]:
    try:
        model = ExactModel(ci, deadline, skip_families)
    except BuildTimeout as exc:
        return Status.NO_SOLUTION, None, None, None, str(exc)
    except ModelTooLarge as exc:
        return Status.ERROR, None, None, None, str(exc)
    if model.lm.infeasible_reason:
        return Status.INFEASIBLE, None, None, None, model.lm.infeasible_reason
    if model.lm.num_vars == 0:  # nothing to decide: every job unplaced, every node as it must be
        z = model.lm.constant
        return Status.OPTIMAL, model.decode(np.zeros(0)), z, z, "empty model"
    if prepare is not None:
        prepare(model, deadline)
    if hint_recv is not None:  # a late hint (start_backend): wait for the caller's warm start
        if not hint_recv.poll(max(0.0, deadline.remaining())):
            return Status.NO_SOLUTION, None, None, None, "time limit reached before the hint was sent"
        hint = hint_recv.recv()
    start = hint if hint is not None else warm_start(ci, deadline)
    highspy.Highs.resetGlobalScheduler(False)  # the warm start's LP may have started one (module docstring)
    hint_values = model.values_of(start)

    def report(values: npt.NDArray[np.float64], objective: float, bound: float | None) -> None:
        send.send(("solution", model.decode(values), objective, bound))

    if not model.lm.violated(hint_values):  # the warm start is the first incumbent
        report(hint_values, model.lm.evaluate(hint_values), None)
    limit = deadline.remaining() - min(DECODE_RESERVE_S, 0.2 * deadline.limit_s)
    if limit <= 0:
        return Status.NO_SOLUTION, None, None, None, "time limit reached after building the model"
    started_s = time.perf_counter() - deadline.start  # model, warm start and (late) hint done
    send.send(("started", started_s))
    res = backend(model, hint_values, limit, seed, report)
    decision = model.decode(res.values) if res.values is not None else None
    size = f"{model.lm.num_vars} variables, {len(model.lm.rows)} rows, solver started at {started_s:.2f} s"
    return res.status, decision, res.objective, res.bound, (res.message + "; " if res.message else "") + size
