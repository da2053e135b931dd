"""Call-feature SIP of the user agent, sans-IO: anonymous calls (RFC 3323/3325) and forwarding by
302 redirect (RFC 3261 §21.3.3)."""

from __future__ import annotations

import pytest

from firmware.sip.ua import CallEnded, CallError
from tests.sip.test_ua import (
    MEDIA,
    PROXY,
    answer,
    challenge,
    events,
    incoming_call,
    make_ua,
    register_all,
    requests,
    responses,
)


def test_anonymous_call_withholds_the_identity_but_still_authenticates() -> None:
    ua = make_ua()
    register_all(ua)
    ua.place_call("1", "5551234", 1.0, MEDIA, anonymous=True)
    (invite,) = requests(ua, "INVITE", 1.0)
    assert invite.headers.lines("From")[0].startswith('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=')
    assert invite.headers.lines("Privacy") == ["id"]
    assert invite.headers.lines("P-Preferred-Identity") == ["<sip:alice@pbx.example.com>"]
    ua.receive(answer(invite, 407, "Proxy Authentication Required", extra=challenge()), PROXY, "udp", 1.1)
    (retry,) = requests(ua, "INVITE", 1.1)
    credentials = retry.headers.lines("Proxy-Authorization")[0]
    assert 'username="alice"' in credentials, "the account's digest user, not the From user"
    assert retry.headers.lines("From")[0].startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')


def test_a_normal_call_has_no_privacy_headers() -> None:
    ua = make_ua()
    register_all(ua)
    ua.place_call("1", "5551234", 1.0, MEDIA)
    (invite,) = requests(ua, "INVITE", 1.0)
    assert invite.headers.lines("From")[0].startswith('"Alice" <sip:alice@pbx.example.com>')
    assert not invite.headers.lines("Privacy") and not invite.headers.lines("P-Preferred-Identity")


def test_redirect_answers_302_with_the_target_as_contact() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.ringing(call, 1.05)
    responses(ua, 1.05)
    ua.redirect(call, "2125551234", 3.0)
    (moved,) = responses(ua, 3.0)
    assert (moved.status, moved.reason) == (302, "Moved Temporarily")
    assert [str(c.uri) for c in moved.contacts] == ["sip:2125551234@pbx.example.com"]
    assert events(ua) == [CallEnded(call, "redirected", 302, False)]
    with pytest.raises(CallError):
        ua.redirect(call, "200", 3.1)


def test_redirect_to_a_full_uri() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.redirect(call, "sip:voicemail@vm.example.com", 1.5)
    (moved,) = responses(ua, 1.5)
    assert [str(c.uri) for c in moved.contacts] == ["sip:voicemail@vm.example.com"]
