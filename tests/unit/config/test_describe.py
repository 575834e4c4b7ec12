"""`rd-connector run --help` lists every setting of `SPECS`, grouped, with its default and meaning, in 80
columns (`connector.config.describe`)."""

from __future__ import annotations

import pytest

from connector.commands import run
from connector.config import SPECS
from connector.config.describe import GROUPS, default_of, grouped_specs


def test_every_spec_is_in_exactly_one_group() -> None:
    names = [name for _, group in GROUPS for name in group]
    assert sorted(names) == sorted(spec.name for spec in SPECS)
    assert [spec for _, specs in grouped_specs() for spec in specs] != []
    assert "Other" not in [title for title, _ in grouped_specs()]


def test_defaults_are_the_settings_defaults() -> None:
    defaults = {spec.name: default_of(spec) for spec in SPECS}
    assert defaults["group_id"] == "rd-connector"
    assert defaults["batch_max_bytes"] == "200000"
    assert defaults["token_store"] == "true"
    assert defaults["decode_workers"] == "auto"
    assert defaults["topics"] == "(unset)" and defaults["rd_access_token"] == "(unset)"


def test_run_help_lists_every_setting_in_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        run.cli(["--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    lines = help_text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for spec in SPECS:
        row = next(i for i, line in enumerate(lines) if line.split()[:1] == [spec.env])
        assert lines[row] == f"  {spec.env}  default: {default_of(spec)}"
        meaning = " ".join(line.strip() for line in lines[row + 1 : row + 6])
        assert meaning.startswith(" ".join(spec.help.split())), spec.env
    assert "RDC_KAFKA__<KEY>" in help_text and "[accounts.<name>]" in help_text
    for title, _ in GROUPS:
        assert f"{title}:" in lines
