"""Settings: defaults run offline; env vars and CLI flags override in that order; bad values are named."""
from __future__ import annotations

from pathlib import Path

import pytest

from chatrec.errors import ConfigError
from chatrec.settings import DEFAULT_CATALOG, Settings


def test_defaults_are_offline_and_local():
    s = Settings.load(env={})
    assert s.catalog == DEFAULT_CATALOG and DEFAULT_CATALOG.exists()
    assert s.host == "127.0.0.1"
    assert s.db_url == "sqlite:///.chatrec/chatrec.db"
    assert s.embedder == "all-MiniLM-L6-v2"


def test_env_then_cli_precedence():
    env = {"CHATREC_MODEL": "none", "CHATREC_PORT": "9000", "CHATREC_PRIVACY": "yes", "CHATREC_HOME": "/tmp/h"}
    s = Settings.load({"port": 8001, "model": None}, env=env)
    assert (s.model, s.port, s.privacy, s.home) == ("none", 8001, True, Path("/tmp/h"))
    assert s.db_url == "sqlite:////tmp/h/chatrec.db"
    assert Settings.load({"db": "postgresql+psycopg://u@h/db"}, env=env).db_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("env, message", [
    ({"CHATREC_PORT": "http"}, "CHATREC_PORT='http' is not a valid int"),
    ({"CHATREC_TEMPERATURE": "warm"}, "CHATREC_TEMPERATURE='warm' is not a valid float"),
    ({"CHATREC_PRIVACY": "maybe"}, "CHATREC_PRIVACY='maybe' is not a valid bool"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env=env)


def test_settle_heap_freezes_what_start_up_built():
    import gc

    from chatrec.services import settle_heap

    built = [object() for _ in range(1000)]
    try:
        settle_heap()
        assert gc.isenabled() and gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()

