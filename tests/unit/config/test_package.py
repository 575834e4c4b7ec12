"""`connector.config` imports its modules on first use (a decode worker needs only `accounts`), and still
offers every name it always did."""

from __future__ import annotations

import pytest

import connector.config
from connector.config import load, secret, settings, specs


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("EOF_IS_SAFE", settings),
        ("Settings", settings),
        ("load_settings", load),
        ("KAFKA_ENV_PREFIX", load),
        ("Secret", secret),
        ("SPECS", specs),
        ("Spec", specs),
        ("ENV_PREFIX", specs),
    ],
)
def test_the_config_package_still_offers_each_name_of_its_modules(name: str, home: object) -> None:
    assert getattr(connector.config, name) is getattr(home, name)
    assert name in dir(connector.config)


def test_the_config_package_has_no_other_names() -> None:
    assert set(connector.config.__all__) <= set(dir(connector.config))
    with pytest.raises(AttributeError, match="no attribute 'Setings'"):
        getattr(connector.config, "Setings")  # noqa: B009 (mypy knows the names: it would refuse a typo)
