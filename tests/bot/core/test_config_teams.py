"""The `teams` section: routes checked at load, with messages that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.core.config import config_from_dict
from deskbot.bot.core.config_teams import TeamRoute, TeamsConfig
from deskbot.bot.core.errors import ConfigError


def test_a_file_without_the_section_is_the_one_queue_desk(tmp_path: Path) -> None:
    teams = config_from_dict({}, root=tmp_path).teams
    assert teams.names == ("general",)
    assert teams.team_for("customer_request", "refund_request") == "general"


def test_routes_load_and_the_reason_comes_before_the_intent(tmp_path: Path) -> None:
    raw = {
        "teams": {
            "default": "support",
            "routes": {
                "billing": {"intents": ["refund_request", "invoice"]},
                "tech": {"intents": "app_crash", "reasons": ["form_failed"]},
            },
        }
    }
    teams = config_from_dict(raw, root=tmp_path).teams
    assert teams.names == ("support", "billing", "tech")
    assert teams.routes["tech"] == TeamRoute(intents=("app_crash",), reasons=("form_failed",))
    assert teams.team_for("unclear", "invoice") == "billing"
    assert teams.team_for("form_failed", "invoice") == "tech"
    assert teams.team_for("unclear", None) == "support"


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        ({"routes": {"Billing": {}}}, "teams.routes: 'Billing' cannot name a team"),
        ({"default": "a b"}, "teams.default: 'a b' cannot name a team"),
        ({"routes": {"b": {"intent": ["x"]}}}, "unknown key(s) ['intent'] in section 'teams."),
        ({"routes": {"b": {"reasons": ["angry"]}}}, "teams.routes.b.reasons has unknown handoff"),
        ({"routes": {"b": ["x"]}}, "teams.routes.b must be a mapping, got list"),
        ({"routes": ["b"]}, "teams.routes must be a mapping, got list"),
        ({"routes": {"b": {"intents": [1]}}}, "teams.routes.b.intents[0] must be a string"),
        ({"defualt": "x"}, "unknown key(s) ['defualt'] in section 'teams'; known: ['default',"),
        (
            {"routes": {"a": {"intents": ["refund"]}, "b": {"intents": ["refund"]}}},
            "teams.routes: intent 'refund' is routed to both 'a' and 'b'",
        ),
    ],
)
def test_malformed_routes_name_the_key(
    tmp_path: Path, teams: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"teams": teams}, root=tmp_path)
    assert str(err.value).startswith(message), str(err.value)


def test_routed_intents_the_model_does_not_know_are_named() -> None:
    teams = TeamsConfig(
        routes={"a": TeamRoute(intents=("refund", "card_lost")), "b": TeamRoute(intents=("x",))}
    )
    assert teams.unknown_intents(["refund", "card_lost", "other"]) == ["x"]
    assert TeamsConfig().unknown_intents([]) == []


def test_routes_built_by_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="teams.routes.reasons has unknown handoff reason"):
        TeamRoute(reasons=("angry",))
    with pytest.raises(ConfigError, match="routed to both"):
        TeamsConfig(
            routes={"a": TeamRoute(reasons=("unclear",)), "b": TeamRoute(reasons=("unclear",))}
        )
