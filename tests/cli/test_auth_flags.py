"""etcd's auth flags on `cairn serve`: --auth-token, --auth-token-ttl, --bcrypt-cost."""

from __future__ import annotations

import pytest

from cairn.cli.config import ConfigError, parse


def test_auth_defaults_are_etcds() -> None:
    member = parse([], environ={}).member
    assert (member.auth_token_ttl_s, member.bcrypt_cost) == (300, 10)


def test_auth_flags_and_their_environment_variables_are_read() -> None:
    member = parse(["--auth-token=simple", "--auth-token-ttl=5"], environ={}).member
    assert member.auth_token_ttl_s == 5
    assert parse([], environ={"ETCD_BCRYPT_COST": "4"}).member.bcrypt_cost == 4


def test_jwt_tokens_are_refused_because_they_are_not_built() -> None:
    with pytest.raises(ConfigError, match="jwt"):
        parse(["--auth-token=jwt,pub-key=a.pub,priv-key=a,sign-method=RS256"], environ={})


@pytest.mark.parametrize("cost", ["3", "32"])
def test_bcrypt_cost_outside_bcrypts_range_is_refused(cost: str) -> None:
    with pytest.raises(ConfigError, match="bcrypt-cost"):
        parse([f"--bcrypt-cost={cost}"], environ={})


def test_a_token_ttl_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="auth-token-ttl"):
        parse(["--auth-token-ttl=0"], environ={})
