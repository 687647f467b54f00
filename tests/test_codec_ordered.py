"""codec.encode_ordered is codec.encode for the values the ledger builds in canonical
shape (results and events): the same bytes, or the same refusal."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain import codec
from cloudchain.chaincode.codes import Code
from cloudchain.ledger import (
    MAX_EVENT_ATTRIBUTES,
    MAX_EVENT_STRING_CHARS,
    Event,
    MalformedError,
    TxResult,
)

names = st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z")
texts = st.text(max_size=40)  # any code point but lone surrogates (msgpack refuses those)
events = st.builds(
    Event,
    names,
    st.lists(st.tuples(names, texts), max_size=5).map(tuple),
)
results = st.builds(
    TxResult,
    st.sampled_from(list(Code)) | st.integers(0, 2**32 - 1),
    names | st.just(""),
    texts,
    st.lists(events, max_size=4).map(tuple),
    st.integers(1, 2**63 - 1),
    st.integers(0, 10_000),
)


@given(results)
def test_a_result_encodes_as_codec_encode_encodes_it(result):
    assert result.to_bytes() == codec.encode(result.to_obj())
    assert TxResult.from_bytes(result.to_bytes()) == result


@given(events)
def test_an_event_in_encoding_order_encodes_as_codec_encode_encodes_it(event):
    assert codec.encode_ordered(event.ordered()) == codec.encode(event.to_obj())


def test_a_lone_surrogate_is_refused_as_encode_refuses_it():
    result = TxResult(Code.OK, "", "\ud800", (), 1, 0)
    with pytest.raises(codec.CodecError):
        codec.encode(result.to_obj())
    with pytest.raises(codec.CodecError):
        result.to_bytes()


def test_events_from_lists_are_normalised_and_bad_ones_named():
    listed = Event("transfer", [["amount", "5"], ["to", "ab"]])  # type: ignore[arg-type]
    assert listed.attributes == (("amount", "5"), ("to", "ab"))
    assert listed == Event("transfer", (("amount", "5"), ("to", "ab")))
    for bad, where in [
        (lambda: Event("Transfer"), "event.type"),
        (lambda: Event("t", (("Key", "v"),)), "event.attribute.key"),
        (lambda: Event("t", (("k", 5),)), "event.attribute.value"),  # type: ignore[arg-type]
        (lambda: Event("t", (("k", "v" * (MAX_EVENT_STRING_CHARS + 1)),)), "attribute.value"),
        (lambda: Event("t", (("k", "v"),) * (MAX_EVENT_ATTRIBUTES + 1)), "event.attributes"),
        (lambda: Event("t", (("k",),)), "pairs"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(MalformedError, match=where):
            bad()
