"""The supervisor's restart back-off: doubling from half a second, capped at eight."""

from __future__ import annotations

from pathlib import Path

from couponapi.db.supervisor import backoff_delays, read_state


def test_backoff_doubles_then_stays_capped() -> None:
    assert backoff_delays() == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff_delays(first=3, most=10) == [3, 6, 10]


def test_no_state_file_means_not_supervised(tmp_path: Path) -> None:
    assert read_state(None) is None
    assert read_state(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text('{"postgres": ')
    assert read_state(tmp_path / "torn.json") is None
    (tmp_path / "s.json").write_text('{"postgres": "up", "restarts": 2}')
    assert read_state(tmp_path / "s.json") == {"postgres": "up", "restarts": 2}
