"""Every setting is documented with its environment variable, and the README lists them all."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_names_its_variable_and_is_in_the_readme() -> None:
    for name, field in Settings.model_fields.items():
        variable = f"TOKENBUDGET_{name.upper()}"
        assert field.description and field.description.startswith(variable + ":"), name
        assert f"`{variable}`" in README, variable


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TOKENBUDGET_PARTITIONS", "3")
    monkeypatch.setenv("TOKENBUDGET_SCORING", "false")
    settings = Settings()
    assert settings.partitions == 3 and settings.scoring is False
