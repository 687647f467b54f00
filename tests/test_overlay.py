"""Overlay: buffered writes over a reader, iterated lazily in key order."""

from hypothesis import given
from hypothesis import strategies as st

from cloudchain.chaincode.context import Overlay
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV

keys = st.binary(min_size=1, max_size=3)
writes = st.dictionaries(keys, st.one_of(st.none(), st.binary(max_size=2)), max_size=12)


@given(writes, writes, writes, st.binary(max_size=1))
def test_nested_overlays_iterate_like_the_merged_dictionary(base, middle, top, prefix):
    store = ChainStore(MemoryKV())
    store.commit(store.diff({k: v for k, v in base.items() if v is not None}))
    committed = _Committed(store)
    lower = Overlay(committed)
    lower.writes.update(middle)
    upper = Overlay(lower)
    upper.writes.update(top)
    expected = {k: v for k, v in base.items() if v is not None}
    for layer in (middle, top):
        for key, value in layer.items():
            if value is None:
                expected.pop(key, None)
            else:
                expected[key] = value
    assert list(upper.iterate(prefix)) == sorted(
        (k, v) for k, v in expected.items() if k.startswith(prefix)
    )
    first = next(iter(upper.iterate(prefix)), None)  # stopping early is fine
    assert first == (
        min(((k, v) for k, v in expected.items() if k.startswith(prefix)), default=None)
    )


class _Committed:
    def __init__(self, store):
        self._store = store

    def get(self, key):
        return self._store.get(key)

    def iterate(self, prefix=b""):
        return self._store.iterate(prefix)
