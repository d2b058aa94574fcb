"""whistle_tasks.core.signing: the media tokens (HMAC, expiry, what they grant)."""

from __future__ import annotations

import pytest

from whistle_tasks.core.signing import MediaGrant, TokenError, bucket_expiry, sign, verify

GRANT = MediaGrant("a" * 32, "msg-1", "message.wav", "read", 2_000_000_000, "md5-x")


def test_a_token_gives_back_its_grant():
    token = sign("k1", GRANT)
    assert verify("k1", token, now=1_999_999_999) == GRANT
    assert "." in token and "=" not in token and "/" not in token and "+" not in token


@pytest.mark.parametrize("change", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),          # signature
    lambda t: ("B" if t[0] != "B" else "C") + t[1:],                       # payload
    lambda t: t.replace(".", ""),
    lambda t: "",
])
def test_altered_tokens_are_refused(change):
    with pytest.raises(TokenError):
        verify("k1", change(sign("k1", GRANT)), now=0)


def test_another_key_and_expiry():
    token = sign("k1", GRANT)
    with pytest.raises(TokenError, match="bad signature"):
        verify("k2", token, now=0)
    with pytest.raises(TokenError, match="expired"):
        verify("k1", token, now=2_000_000_001)


def test_nothing_signs_without_a_key_or_with_a_bad_op():
    with pytest.raises(ValueError):
        sign("", GRANT)
    with pytest.raises(ValueError):
        sign("k", MediaGrant("a", "d", "n", "delete", 1))


def test_bucketed_expiry_is_stable_within_a_window():
    assert bucket_expiry(3600, now=7200) == bucket_expiry(3600, now=10_799) == 14_400
    assert bucket_expiry(3600, now=10_800) == 18_000
    for now in (7200, 9000, 10_799):
        assert 3600 <= bucket_expiry(3600, now=now) - now <= 7200
