"""Page tokens: signed positions, readable only with the key and the query that issued them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.service import page_tokens
from server.service.decisions import ModerationQuery
from server.service.domain import MODERATOR, AnswerQuery, PageQuery
from server.service.errors import InvalidRequest

QUERY = PageQuery("D10", "AIPTPDV5700", None, "created_at desc", 20)


def test_a_token_reads_back_as_the_position_it_was_issued_for() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1_700_000_000, 42))
    assert page_tokens.read(b"k" * 32, QUERY, token, 2) == (1_700_000_000, 42)


# A token as the service issues it: the replicas of one deployment, old and new, read
# each other's tokens, so its form is fixed.
ISSUED = (
    "eyJxIjoiZWFhMWZlMWM0MDZiZGUxNTkxMTU3NjkzNjNjOTZjMmQiLCJrIjpbMTcwMDAwMDAwMCw0Ml19"
    ".Bop8gk2nzGa2CIbF-JGEhg"
)


def test_a_token_is_issued_in_the_form_every_replica_reads() -> None:
    assert page_tokens.issue(b"k" * 32, QUERY, (1_700_000_000, 42)) == ISSUED
    assert page_tokens.read(b"k" * 32, QUERY, ISSUED, 2) == (1_700_000_000, 42)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"j" * 32, QUERY, token, 2)


@pytest.mark.parametrize("token", ["", ".", "a.b.c", "!!!.???", "eyJ9.AAAA", "é" * 300])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, QUERY, token, 2)


def test_a_token_of_another_order_is_refused_even_with_a_key_of_the_same_length() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    other = PageQuery("D10", "AIPTPDV5700", None, "created_at asc", 20)
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, other, token, 2)


def signed(payload: bytes, secret: bytes = b"k" * 32) -> str:
    """A token of any payload, signed as the service signs its own."""
    signature = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return f"{page_tokens._b64(payload)}.{page_tokens._b64(signature)}"


def payload_of(query: PageQuery, key: list[object]) -> bytes:
    return json.dumps({"q": page_tokens._query_digest(query), "k": key}).encode()


def test_the_service_s_own_signature_over_a_payload_it_did_not_issue_reads_back() -> None:
    assert page_tokens.read(b"k" * 32, QUERY, signed(payload_of(QUERY, [5, 6])), 2) == (5, 6)


@pytest.mark.parametrize("key", [[1], [1, 2, 3], []])
def test_a_key_of_another_length_is_refused(key: list[int]) -> None:
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, QUERY, page_tokens.issue(b"k" * 32, QUERY, tuple(key)), 2)


@pytest.mark.parametrize("value", [-1, 2**63, 2**64, "1", 1.0, None, [1]])
def test_a_key_value_outside_0_to_2_63_or_not_an_integer_is_refused(value: object) -> None:
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, QUERY, signed(payload_of(QUERY, [1, value])), 2)


@pytest.mark.parametrize("value", [0, 2**63 - 1])
def test_the_ends_of_the_range_are_accepted(value: int) -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (value, value))
    assert page_tokens.read(b"k" * 32, QUERY, token, 2) == (value, value)


@pytest.mark.parametrize("byte", range(16))
def test_a_signature_changed_in_any_byte_is_refused(byte: int) -> None:
    payload, signature = page_tokens.issue(b"k" * 32, QUERY, (1, 2)).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[byte] ^= 0x01
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, QUERY, f"{payload}.{page_tokens._b64(bytes(raw))}", 2)


def test_a_signature_cut_short_or_made_longer_is_refused() -> None:
    payload, signature = page_tokens.issue(b"k" * 32, QUERY, (1, 2)).split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    for changed in (raw[:15], raw[:4], raw + b"\0", b""):
        with pytest.raises(page_tokens.BadPageToken):
            page_tokens.read(b"k" * 32, QUERY, f"{payload}.{page_tokens._b64(changed)}", 2)


@pytest.mark.parametrize(
    "other",
    [
        PageQuery("E20", "AIPTPDV5700", None, "created_at desc", 20),
        PageQuery("D10", "OTHER", None, "created_at desc", 20),
        PageQuery("D10", "AIPTPDV5700", "en-GB", "created_at desc", 20),
    ],
)
def test_a_token_of_another_organisation_product_or_locale_is_refused(other: PageQuery) -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, other, token, 2)


def test_a_token_of_another_page_size_reads_back() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (1, 2))
    other_size = PageQuery("D10", "AIPTPDV5700", None, "created_at desc", 50)
    assert page_tokens.read(b"k" * 32, other_size, token, 2) == (1, 2)


def test_a_token_is_url_safe_without_padding() -> None:
    token = page_tokens.issue(b"k" * 32, QUERY, (2**63 - 1, 2**62))
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert len(token.split(".")[1]) == 22  # 16 bytes of signature, unpadded


@given(
    key=st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)),
    trkref=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True),
    sku=st.text(min_size=1, max_size=100),
    locale=st.none() | st.sampled_from(["en-GB", "fr-FR", "zh-Hant-TW"]),
)
def test_any_valid_position_of_any_query_reads_back(
    key: tuple[int, int], trkref: str, sku: str, locale: str | None
) -> None:
    query = PageQuery(trkref, sku, locale, "helpful desc", 20)
    assert page_tokens.read(b"k" * 32, query, page_tokens.issue(b"k" * 32, query, key), 2) == key


def test_a_float_is_a_key_value_only_where_a_relevance_order_holds_its_relevance() -> None:
    searched = replace(QUERY, order="relevance", search="battery")
    token = page_tokens.issue(b"k" * 32, searched, (0.25, 5, 6))
    assert page_tokens.read(b"k" * 32, searched, token, 3) == (0.25, 5, 6)
    for key in ((0.25, 5.0, 6), (1, 5, 6.5)):
        with pytest.raises(page_tokens.BadPageToken):
            page_tokens.read(b"k" * 32, searched, signed(payload_of(searched, list(key))), 3)


def test_a_token_is_bound_to_the_role_whose_view_it_pages_through() -> None:
    answers = AnswerQuery("D10", 7, 20)
    for shoppers in (QUERY, answers):
        moderators = replace(shoppers, role=MODERATOR)
        for issued, asked in [(shoppers, moderators), (moderators, shoppers)]:
            token = page_tokens.issue(b"k" * 32, issued, (1, 2))
            with pytest.raises(page_tokens.BadPageToken):
                page_tokens.read(b"k" * 32, asked, token, 2)
            assert page_tokens.read(b"k" * 32, issued, token, 2) == (1, 2)
    pending = replace(answers, role=MODERATOR, status="pending")
    token = page_tokens.issue(b"k" * 32, pending, (1, 2))
    with pytest.raises(page_tokens.BadPageToken):
        page_tokens.read(b"k" * 32, replace(pending, status=None), token, 2)


def test_a_shoppers_token_is_issued_as_before_roles() -> None:
    """A shopper's view adds nothing to the digest: tokens issued before stay valid."""
    digest = hashlib.sha256(json.dumps(["answers", "D10", 7]).encode()).hexdigest()[:32]
    assert page_tokens._query_digest(AnswerQuery("D10", 7, 20)) == digest


TERMS = ModerationQuery("blocked_terms", "D10")


@given(st.text(max_size=200))
def test_a_text_key_reads_back_for_its_list_only(text: str) -> None:
    token = page_tokens.issue(b"k" * 32, TERMS, (text,))
    assert page_tokens.text_after(b"k" * 32, TERMS, token) == text
    for other in (ModerationQuery("blocked_terms", "E20"), ModerationQuery("queue", "D10")):
        with pytest.raises(InvalidRequest):
            page_tokens.text_after(b"k" * 32, other, token)


def test_no_token_is_the_first_page_of_texts() -> None:
    assert page_tokens.text_after(b"k" * 32, TERMS, "") is None


@pytest.mark.parametrize("key", [(7,), ("a", "b"), ()])
def test_a_key_that_is_not_one_text_is_refused_on_a_list_of_texts(key: tuple[object, ...]) -> None:
    token = page_tokens.issue(b"k" * 32, TERMS, key)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest) as raised:
        page_tokens.text_after(b"k" * 32, TERMS, token)
    assert raised.value.violations == [page_tokens.NOT_A_PAGE_TOKEN]
    with pytest.raises(InvalidRequest):
        page_tokens.text_after(b"j" * 32, TERMS, page_tokens.issue(b"k" * 32, TERMS, ("a",)))
