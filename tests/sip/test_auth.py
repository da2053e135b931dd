"""Digest authentication: RFC vectors, an independent hashlib cross-check, and the client state machine."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from firmware.sip.auth import (
    AuthError,
    AuthFailed,
    Challenge,
    Credentials,
    DigestClient,
    build_authorization,
    digest_response,
    parse_challenges,
    select_challenge,
)

RFC7616_CHALLENGE_SHA256 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CHALLENGE_MD5 = RFC7616_CHALLENGE_SHA256.replace("SHA-256", "MD5")
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def params_of(value: str) -> dict[str, str]:
    """Parse our own Authorization value back (test helper, simple: no commas inside our values)."""
    assert value.startswith("Digest ")
    out = {}
    for part in value[len("Digest ") :].split(", "):
        key, _, val = part.partition("=")
        out[key] = val.strip('"')
    return out


def make_client(password: str = "secret", realm: str | None = None) -> DigestClient:
    counter = itertools.count(1)
    return DigestClient(Credentials("1001", password, realm), cnonce_factory=lambda: f"cn{next(counter)}")


# --- RFC vectors ---------------------------------------------------------------------------------------


def test_rfc2617_section_3_5_example() -> None:
    (ch,) = parse_challenges(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = build_authorization(
        ch,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
        nc=1,
    )
    p = params_of(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert p["qop"] == "auth" and p["nc"] == "00000001" and p["cnonce"] == "0a4f113b"
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert "algorithm" not in p  # not given in the challenge: RFC 2617 peers expect it omitted


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        (RFC7616_CHALLENGE_MD5, "8ca523f5e9506fed4657c9700eebdbec"),
        (RFC7616_CHALLENGE_SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(challenge: str, expected: str) -> None:
    (ch,) = parse_challenges(challenge)
    value = build_authorization(
        ch,
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce=RFC7616_CNONCE,
        nc=1,
    )
    p = params_of(value)
    assert p["response"] == expected
    assert p["algorithm"] == ch.algorithm


def test_sip_register_cross_checked_with_hashlib() -> None:
    nonce, cnonce, uri = "4f2a9c1e", "a1b2c3d4", "sip:pbx.example.net"
    value = build_authorization(
        Challenge(realm="asterisk", nonce=nonce, qop=("auth",)),
        username="1001",
        password="s3cret",
        method="REGISTER",
        uri=uri,
        cnonce=cnonce,
        nc=3,
    )
    ha1 = hashlib.md5(b"1001:asterisk:s3cret").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:pbx.example.net").hexdigest()
    want = hashlib.md5(f"{ha1}:{nonce}:00000003:{cnonce}:auth:{ha2}".encode()).hexdigest()
    assert params_of(value)["response"] == want
    assert params_of(value)["nc"] == "00000003"


def test_rfc2069_compatibility_without_qop() -> None:
    ch = Challenge(realm="biloxi.com", nonce="abc")
    value = build_authorization(
        ch, username="bob", password="zanzibar", method="INVITE", uri="sip:bob@biloxi.com", cnonce="x"
    )
    ha1 = hashlib.md5(b"bob:biloxi.com:zanzibar").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:bob@biloxi.com").hexdigest()
    p = params_of(value)
    assert p["response"] == hashlib.md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    assert "nc" not in p and "qop" not in p and "cnonce" not in p


def test_auth_int_used_only_when_alone_and_hashes_the_body() -> None:
    body = b"v=0\r\n"
    ch = Challenge(realm="r", nonce="n", qop=("auth-int",))
    p = params_of(
        build_authorization(
            ch, username="u", password="p", method="INVITE", uri="sip:x", cnonce="c", body=body
        )
    )
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(f"INVITE:sip:x:{hashlib.md5(body).hexdigest()}".encode()).hexdigest()
    assert p["qop"] == "auth-int"
    assert p["response"] == hashlib.md5(f"{ha1}:n:00000001:c:auth-int:{ha2}".encode()).hexdigest()
    both = Challenge(realm="r", nonce="n", qop=("auth-int", "auth"))
    assert (
        params_of(
            build_authorization(both, username="u", password="p", method="INVITE", uri="sip:x", cnonce="c")
        )["qop"]
        == "auth"
    )


@pytest.mark.parametrize(
    ("alg", "hname"), [("SHA-256-sess", "sha256"), ("MD5-sess", "md5"), ("SHA-512-256-sess", "sha512_256")]
)
def test_sess_variants(alg: str, hname: str) -> None:
    (ch,) = parse_challenges(f'Digest realm="r", nonce="n", qop="auth", algorithm={alg}')
    p = params_of(
        build_authorization(ch, username="u", password="p", method="REGISTER", uri="sip:r", cnonce="c")
    )

    def h(s: str) -> str:
        return hashlib.new(hname, s.encode()).hexdigest()

    ha1 = h(f"{h('u:r:p')}:n:c")
    assert p["response"] == h(f"{ha1}:n:00000001:c:auth:{h('REGISTER:sip:r')}")
    assert p["algorithm"] == alg


def test_sha512_256_response_uses_fips_sha512_256() -> None:
    """RFC 8760 §2 means FIPS 180-4 SHA-512/256 (own IV), not SHA-512 cut to 256 bits."""
    # FIPS 180-4 example: SHA-512/256("abc"), pinning what hashlib's sha512_256 computes.
    assert hashlib.new("sha512_256", b"abc").hexdigest() == (
        "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    )
    ch = Challenge(realm="r", nonce="n", algorithm="SHA-512-256", qop=("auth",))
    resp = digest_response(ch, username="u", password="p", method="M", uri="sip:r", qop="auth", cnonce="c")

    def h(s: str) -> str:
        return hashlib.new("sha512_256", s.encode()).hexdigest()

    assert resp == h(f"{h('u:r:p')}:n:00000001:c:auth:{h('M:sip:r')}")
    assert resp != hashlib.sha512(f"{h('u:r:p')}:n:00000001:c:auth:{h('M:sip:r')}".encode()).hexdigest()[:64]


def test_userhash_hides_username() -> None:
    (ch,) = parse_challenges('Digest realm="r", nonce="n", algorithm=SHA-256, userhash=true')
    p = params_of(build_authorization(ch, username="u", password="p", method="M", uri="sip:r", cnonce="c"))
    assert p["username"] == hashlib.sha256(b"u:r").hexdigest()
    assert p["userhash"] == "true"


# --- parsing ---------------------------------------------------------------------------------------------


def test_parse_full_challenge_case_insensitive() -> None:
    (ch,) = parse_challenges(
        'digest REALM="sip.example", Nonce="a\\"b\\\\c", Opaque="o", ALGORITHM=sha-256, '
        'qop="auth,auth-int", stale=TRUE, domain="sip:a sip:b"'
    )
    assert ch.realm == "sip.example"
    assert ch.nonce == 'a"b\\c'
    assert ch.algorithm == "SHA-256" and ch.qop == ("auth", "auth-int")
    assert ch.stale and ch.domain == ("sip:a", "sip:b") and ch.opaque == "o"


def test_escaped_nonce_is_re_escaped_in_the_answer() -> None:
    (ch,) = parse_challenges('Digest realm="r", nonce="a\\"b"')
    value = build_authorization(ch, username="u", password="p", method="M", uri="sip:r", cnonce="c")
    assert 'nonce="a\\"b"' in value


def test_several_challenges_in_one_value_and_other_schemes_skipped() -> None:
    chs = parse_challenges(
        'Negotiate YIIabc==, Basic realm="b", Digest realm="r", nonce="1", algorithm=MD5, '
        'Digest realm="r", nonce="2", algorithm=SHA-256'
    )
    assert [c.nonce for c in chs] == ["1", "2"]
    best = select_challenge(chs)
    assert best is not None and best.algorithm == "SHA-256"


def test_strongest_algorithm_across_headers_and_unknown_ignored() -> None:
    chs = parse_challenges(
        [
            'Digest realm="r", nonce="1", algorithm=MD5',
            'Digest realm="r", nonce="3", algorithm=SHA-512-256',
            'Digest realm="r", nonce="2", algorithm=SHA-256',
            'Digest realm="r", nonce="4", algorithm=SHA3-999',
        ]
    )
    best = select_challenge(chs)
    assert best is not None and best.nonce == "3"
    assert select_challenge(parse_challenges('Digest realm="r", nonce="4", algorithm=AKAv1-MD5')) is None
    assert select_challenge(parse_challenges('Digest realm="r", nonce="4", qop="auth-conf"')) is None


@pytest.mark.parametrize(
    "bad",
    [
        'Digest realm="r", nonce="unterminated',
        'Digest realm="r"',
        'Digest nonce="n"',
        'Digest realm="r", realm="s", nonce="n"',
        'Digest realm="r" nonce="n"',
        "Digest realm=, nonce=",
        '"Digest"',
        'Digest realm="r", nonce="n", @',
    ],
)
def test_malformed_challenges_raise_auth_error(bad: str) -> None:
    with pytest.raises(AuthError):
        parse_challenges(bad)


def test_malformed_challenge_through_client_raises_auth_error_only() -> None:
    with pytest.raises(AuthError, match="unterminated"):
        make_client().handle_challenge(401, ['Digest realm="r", nonce="x'], "REGISTER", "sip:r")
    with pytest.raises(AuthError, match="no supported"):
        make_client().handle_challenge(
            401, ['Digest realm="r", nonce="x", algorithm=FOO'], "REGISTER", "sip:r"
        )
    with pytest.raises(AuthError, match="without a Digest"):
        make_client().handle_challenge(401, ['Basic realm="r"'], "REGISTER", "sip:r")
    with pytest.raises(AuthError, match="status 403"):
        make_client().handle_challenge(403, [], "REGISTER", "sip:r")


# --- client state --------------------------------------------------------------------------------------

CHALLENGE = 'Digest realm="asterisk", nonce="n1", opaque="op", algorithm=MD5, qop="auth"'


def test_401_gives_authorization_and_407_proxy_authorization() -> None:
    client = make_client()
    (h401,) = client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    assert h401.name == "Authorization"
    (h407,) = make_client().handle_challenge(407, [CHALLENGE], "INVITE", "sip:2000@pbx")
    assert h407.name == "Proxy-Authorization"
    p = params_of(h407.value)
    assert p["uri"] == "sip:2000@pbx" and p["opaque"] == "op" and p["username"] == "1001"


def test_nonce_count_increments_on_preemptive_reuse() -> None:
    client = make_client()
    assert client.authorize("REGISTER", "sip:pbx") == []  # nothing cached yet
    (first,) = client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    (second,) = client.authorize("REGISTER", "sip:pbx")
    (third,) = client.authorize("INVITE", "sip:2000@pbx")
    assert [params_of(h.value)["nc"] for h in (first, second, third)] == ["00000001", "00000002", "00000003"]
    assert params_of(second.value)["cnonce"] != params_of(first.value)["cnonce"]
    assert third.name == "Authorization"


def test_second_401_not_stale_is_wrong_password() -> None:
    client = make_client(password="wrong")
    (h,) = client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    fresh = CHALLENGE.replace("n1", "n2")
    with pytest.raises(AuthFailed):
        client.handle_challenge(401, [fresh], "REGISTER", "sip:pbx", sent=[h.value])
    assert client.authorize("REGISTER", "sip:pbx") == []  # rejected credentials are not re-sent


def test_stale_nonce_retries_once() -> None:
    client = make_client()
    (h1,) = client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    stale = CHALLENGE.replace("n1", "n2") + ", stale=true"
    (h2,) = client.handle_challenge(401, [stale], "REGISTER", "sip:pbx", sent=[h1.value])
    assert params_of(h2.value)["nonce"] == "n2" and params_of(h2.value)["nc"] == "00000001"
    again = CHALLENGE.replace("n1", "n3") + ", stale=TRUE"
    with pytest.raises(AuthFailed, match="stale"):
        client.handle_challenge(401, [again], "REGISTER", "sip:pbx", sent=[h2.value])


def test_preemptive_nonce_expired_without_stale_is_retried_not_failed() -> None:
    client = make_client()
    client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    (pre,) = client.authorize("REGISTER", "sip:pbx")  # nc=2: a reused nonce the server may have dropped
    (retry,) = client.handle_challenge(
        401, [CHALLENGE.replace("n1", "n9")], "REGISTER", "sip:pbx", sent=[pre.value]
    )
    assert params_of(retry.value)["nonce"] == "n9"
    with pytest.raises(AuthFailed):
        client.handle_challenge(
            401, [CHALLENGE.replace("n1", "n10")], "REGISTER", "sip:pbx", sent=[retry.value]
        )


def test_same_nonce_rechallenged_is_wrong_password_even_when_reused() -> None:
    client = make_client()
    client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    (pre,) = client.authorize("REGISTER", "sip:pbx")
    with pytest.raises(AuthFailed):
        client.handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx", sent=[pre.value])


def test_realm_mismatch_and_selection() -> None:
    with pytest.raises(AuthError, match="configured realm"):
        make_client(realm="other").handle_challenge(401, [CHALLENGE], "REGISTER", "sip:pbx")
    client = make_client(realm="asterisk")
    headers = client.handle_challenge(
        407, ['Digest realm="proxy.carrier", nonce="p"', CHALLENGE], "INVITE", "sip:2000@pbx"
    )
    assert [params_of(h.value)["realm"] for h in headers] == ["asterisk"]


def test_any_realm_credentials_answer_every_realm() -> None:
    client = make_client()
    headers = client.handle_challenge(
        407, ['Digest realm="proxy.carrier", nonce="p"', CHALLENGE], "INVITE", "sip:2000@pbx"
    )
    assert sorted(params_of(h.value)["realm"] for h in headers) == ["asterisk", "proxy.carrier"]
    assert len(client.authorize("BYE", "sip:2000@pbx")) == 2


def test_rfc2069_preemptive_reuse_tracked_without_nc() -> None:
    client = make_client()
    legacy = 'Digest realm="old", nonce="a"'
    (first,) = client.handle_challenge(401, [legacy], "REGISTER", "sip:old")
    (pre,) = client.authorize("REGISTER", "sip:old")
    assert "nc=" not in pre.value
    (retry,) = client.handle_challenge(
        401, ['Digest realm="old", nonce="b"'], "REGISTER", "sip:old", sent=[pre.value]
    )
    with pytest.raises(AuthFailed):
        client.handle_challenge(
            401, ['Digest realm="old", nonce="c"'], "REGISTER", "sip:old", sent=[retry.value]
        )
    assert params_of(first.value)["nonce"] == "a"
