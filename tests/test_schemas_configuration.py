"""schemas.configuration: our document-change broadcasts (doc_created/edited/deleted)."""

from __future__ import annotations

import pytest

import schemas


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


@pytest.mark.parametrize("name", ["doc_created", "doc_edited", "doc_deleted"])
def test_change_broadcasts(name):
    msg = schemas.build(name, {"Type": "device", "ID": "d-1", "Database": "account%2Fab",
                               "Rev": "2-abc", "Account-ID": "a" * 32, "Realm": "example.com",
                               "Username": "1000", "Password": "dropped"})
    assert (msg["Event-Category"], msg["Event-Name"]) == ("configuration", name)
    assert "Password" not in msg
    assert schemas.lookup("configuration", name).name == name
    assert schemas.validate(msg) is msg


def test_refusals():
    err = raised(schemas.build, "doc_edited", {"Type": 3})
    assert err.message_name == "doc_edited" and set(err.errors) == {"Type", "ID"}
    msg = schemas.build("doc_deleted", {"Type": "device", "ID": "d-1"})
    err = raised(schemas.validate, {**msg, "Event-Name": "doc_renamed"})
    assert "Event-Name: 'doc_renamed' is not one of ['doc_created', 'doc_edited', " \
           "'doc_deleted']" in str(err)
