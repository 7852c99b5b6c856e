"""Run the Alembic migrations from code (``gridsvc migrate``, the tests)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def migration_beside(migration_file: str, filename: str) -> ModuleType:
    """Another migration, by its file name in the same folder as ``migration_file`` (a migration's ``__file__``).
    Why: a migration that changes a database function another created states the function's text as that
    text changed (``replaced_once``), and its downgrade puts the earlier text back."""
    path = Path(migration_file).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"revision_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replaced_once(text: str, old: str, new: str) -> str:
    """``text`` with ``old``, which it holds exactly once, replaced by ``new`` (else an AssertionError naming it:
    the earlier text is not what the migration was written against)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def pending(url: str) -> str | None:
    """Why the database's schema is not the one this code expects, or None when it is.

    Connects, so a server that cannot be reached raises here, before a command starts its work.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, pool

    script = ScriptDirectory.from_config(alembic_config(url))
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    head = script.get_current_head()
    if current == head:
        return None
    if current is None:
        return "the database has no gridsvc schema yet: run `gridsvc migrate`"
    if current in {revision.revision for revision in script.walk_revisions()}:
        return f"the database schema is at revision {current}, this gridsvc needs {head}: run `gridsvc migrate`"
    return f"the database schema is at revision {current}, newer than this gridsvc knows ({head}): update gridsvc"
