"""`serve --server`: the HTTP server is a validated setting, granian unless told otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from couponapi.cli import _parser
from couponapi.config import Settings
from couponapi.servers import SERVERS


def test_granian_is_the_default_and_uvicorn_can_be_chosen() -> None:
    assert Settings.model_fields["server"].default == "granian"
    assert Settings(server="uvicorn").server == "uvicorn"
    assert _parser().parse_args(["serve", "--server", "uvicorn"]).server == "uvicorn"
    assert set(SERVERS) == {"uvicorn", "granian"}


def test_an_unknown_server_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(server="gunicorn")  # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--server", "gunicorn"])
