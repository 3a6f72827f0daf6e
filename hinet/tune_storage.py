"""Where an Optuna study lives: a journal file or an RDB (SQLite, PostgreSQL, MySQL), opened for many workers.

``--storage`` of ``python -m hinet.tune`` (see :mod:`hinet.tune`): a path ending in ``.log``/``.jsonl`` is a
journal file, anything with ``://`` an RDB URL; the default is the SQLite file ``<results>/optuna/<study>.db``.
A server that cannot be reached is one line naming ``--storage`` before any study or run exists.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from .atomic import ensure_dir
from .errors import UserError


def open_storage(where: str, *, heartbeat: int = 60) -> optuna.storages.BaseStorage:
    """Storage for ``where``: a path ending in ``.log``/``.jsonl`` (journal file), or an RDB URL.

    RDB storages get a heartbeat every ``heartbeat`` s (a trial silent for 3x that is failed by the
    next worker's ``fail_stale_trials`` and re-queued once, with its intermediate values); SQLite gets a
    60 s busy timeout so that concurrent workers wait for the write lock instead of failing.
    """
    import sqlalchemy.exc  # sqlalchemy (and the RDB storage) load only when a storage is opened: off start-up

    if where.endswith((".log", ".jsonl")) and "://" not in where:
        ensure_dir(Path(where).parent)  # errors name the folder in the way
        return JournalStorage(JournalFileBackend(str(Path(where))))
    if "://" not in where:
        raise ValueError(f"--storage {where!r}: expected an RDB URL (sqlite:///x.db, postgresql://..., "
                         f"mysql://...) or a journal file path ending in .log or .jsonl")
    engine_kwargs: dict = {"connect_args": check_database(where)}
    if where.startswith("sqlite:///"):
        db = where.removeprefix("sqlite:///")
        if db and db != ":memory:":
            ensure_dir(Path(db).parent)
    # Optuna >= 4.9 renamed RetryFailedTrialCallback / failed_trial_callback (old names deprecated).
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    retry_kw = "heartbeat_stale_trial_callback"
    if retry_cls is None:
        retry_cls, retry_kw = optuna.storages.RetryFailedTrialCallback, "failed_trial_callback"
    # Workers started together on a fresh database race to create its schema; the loser's INSERT of
    # the schema version fails (UNIQUE constraint, seen with two SQLite workers) and a retry finds the
    # schema complete. Optuna does not retry this itself.
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental; we use it deliberately
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(where, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                  grace_period=3 * heartbeat,
                                  **{retry_kw: retry_cls(max_retry=1, inherit_intermediate_values=True)})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):  # also "table ... exists"
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


CONNECT_TIMEOUT_S = 10  # a database server that does not answer within this is an error, not a hang


def check_database(where: str) -> dict:
    """Parse the RDB URL ``where`` and, for a database server, connect once (:data:`CONNECT_TIMEOUT_S`);
    returns the driver's connect arguments (SQLite: a 60 s busy timeout; servers: the connect timeout).
    A malformed URL, a missing driver or an unreachable, refusing or rejecting server is one line naming
    ``--storage`` (the password hidden), before any study or run exists."""
    import sqlalchemy  # off the start-up path of the command, as in open_storage
    from sqlalchemy.engine import make_url  # as sqlalchemy above

    try:
        url = make_url(where)
    except (sqlalchemy.exc.ArgumentError, ValueError) as err:
        raise UserError(f"--storage {where!r}: not a database URL ({err}); expected e.g. sqlite:///x.db or "
                        f"postgresql+psycopg://user@host:5432/db") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"timeout": 60}
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
    shown = url.render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as err:
        reason = " ".join(str(getattr(err, "orig", None) or err).split()[:60]) or type(err).__name__
        raise UserError(f"--storage {shown}: cannot reach the database ({reason}"
                        f"; waited at most {CONNECT_TIMEOUT_S} s)") from None
    return connect_args


def default_storage(results: Path, study: str) -> str:
    return f"sqlite:///{(results / 'optuna' / f'{study}.db').resolve()}"
