"""schemas.presence and schemas.notification: message waiting and voicemail-to-e-mail, with
their contracts (keys, bindings, who serves them)."""

from __future__ import annotations

import pytest

import schemas
from schemas import contracts
from schemas.presence import mwi_account


def test_mwi_update_counts_are_integers_and_to_is_required():
    msg = schemas.build("mwi_update", {"To": "1000@example.com", "Messages-New": "2",
                                       "Messages-Saved": 1, "Subscription-Call-ID": "abc"})
    assert msg["Event-Category"] == "presence" and msg["Subscription-Call-ID"] == "abc"
    with pytest.raises(schemas.MessageError) as info:
        schemas.build("mwi_update", {"Messages-New": "two", "Messages-Saved": 0})
    text = str(info.value)
    assert "To: missing" in text and "Messages-New" in text


@pytest.mark.parametrize(("to", "account"), [
    ("1000@Example.COM", ("example.com", "1000")),
    ("sip:1000@example.com", ("example.com", "1000")),
    ("nobody", ("", "nobody")),
    (None, ("", "")),
])
def test_mwi_account(to, account):
    assert mwi_account({"To": to}) == account


def test_mwi_contracts_keys_and_bindings():
    update = schemas.build("mwi_update", {"To": "1000@Ex.com", "Messages-New": 0,
                                          "Messages-Saved": 0})
    assert contracts.MWI_UPDATE.address(update) == ("callmgr", "mwi.update.ex%2Ecom.1000", None)
    assert contracts.MWI_UPDATE.binding == "mwi.update.#"
    query = schemas.build("mwi_query", {"Username": "1000", "Realm": "Ex.com"})
    assert contracts.MWI_QUERY.address(query) == ("callmgr", "mwi.query.ex%2Ecom",
                                                  "callflow.mwi_query")
    assert "mwi.query.*" in contracts.bindings_of("callflow")
    # a malformed update still has a key (its consumer's validation says what is wrong)
    assert contracts.MWI_UPDATE.key({}) == "mwi.update._._"


def test_voicemail_new_is_persistent_and_served_by_notify():
    msg = schemas.build("voicemail_new", {"Account-ID": "a", "Voicemail-Box": "b",
                                          "Voicemail-Name": "m", "Voicemail-Length": "4200",
                                          "Caller-ID-Number": "+14155550100"})
    assert contracts.VOICEMAIL_NEW.address(msg) == ("callmgr", "notification.voicemail.new",
                                                    "notify.voicemail_new")
    assert contracts.VOICEMAIL_NEW.persistent
    assert contracts.bindings_of("notify") == ("notification.voicemail.new",)
    with pytest.raises(schemas.MessageError, match="Voicemail-Name: missing"):
        schemas.build("voicemail_new", {"Account-ID": "a", "Voicemail-Box": "b"})
