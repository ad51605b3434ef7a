"""The compiled ClOrdID (11) index behaves as the dict it replaces."""

from __future__ import annotations

import gc
import random
import weakref

import pytest

from engine.engine import compiled_status

cengine = pytest.importorskip("engine._cengine", reason="engine._cengine is not built")
if compiled_status() != "compiled fast paths":
    pytest.skip(f"engine._cengine is not in use: {compiled_status()}", allow_module_level=True)

ClOrdIdIndex = cengine.ClOrdIdIndex


class Key:
    """A non-str key whose hash collides with every other Key, as an adversarial dict key."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.name == self.name


class InsertingKey(Key):
    """A colliding key whose next comparison inserts another key into an index."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.pending: tuple[object, Key] | None = None

    def insert_into(self, index: object, key: Key) -> None:
        self.pending = (index, key)

    def __eq__(self, other: object) -> bool:
        if self.pending is not None:
            (index, key), self.pending = self.pending, None
            index[key] = "inserted by __eq__"  # type: ignore[index]
        return super().__eq__(other)

    __hash__ = Key.__hash__


def test_random_operations_match_dict() -> None:
    rng = random.Random(5)
    index, expected = ClOrdIdIndex(), {}
    keys = [f"c{n}" for n in range(3_000)] + ["", "é", "\u20ac1", "\U0001f600"]
    for step in range(40_000):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.6:
            index[key] = expected[key] = step
        elif roll < 0.75 and key in expected:
            del index[key]
            del expected[key]
        else:
            assert index.get(key) == expected.get(key)
            assert (key in index) == (key in expected)
    assert len(index) == len(expected)
    assert sorted(index) == sorted(expected)
    assert sorted(index.items()) == sorted(expected.items())
    assert sorted(index.keys()) == sorted(expected.keys())
    assert sorted(index.values()) == sorted(expected.values())


def test_equal_strings_are_one_key() -> None:
    index = ClOrdIdIndex()
    index["".join(["ab", "c"])] = 1
    index["abc"] = 2

    assert len(index) == 1
    assert index["abc"] == 2


def test_colliding_non_str_keys() -> None:
    index = ClOrdIdIndex()
    for n in range(50):
        index[Key(str(n))] = n
    del index[Key("10")]

    assert len(index) == 49
    assert index[Key("49")] == 49
    assert Key("10") not in index
    assert index.get(Key("10"), "none") == "none"


def test_eq_that_inserts_during_probe() -> None:
    index = ClOrdIdIndex()
    first, second = Key("a"), InsertingKey("b")
    index[first] = 1
    index[second] = 2
    del index[first]
    second.insert_into(index, Key("p"))
    index[Key("new")] = 3

    assert len(index) == 3
    assert sorted(key.name for key in index) == ["b", "new", "p"]


def test_missing_key_raises_key_error() -> None:
    index = ClOrdIdIndex()
    with pytest.raises(KeyError, match="c1"):
        index["c1"]
    with pytest.raises(KeyError, match="c1"):
        del index["c1"]


def test_unhashable_key_raises_type_error() -> None:
    index = ClOrdIdIndex()
    with pytest.raises(TypeError, match="unhashable"):
        index[["c1"]] = 1


def test_repr_and_arguments() -> None:
    index = ClOrdIdIndex()
    index["c1"] = 1

    assert repr(index) == "ClOrdIdIndex(1 ClOrdIDs)"
    with pytest.raises(TypeError, match="takes no arguments"):
        ClOrdIdIndex({"c1": 1})


def test_cycle_through_index_is_collected() -> None:
    class Holder:
        pass

    index = ClOrdIdIndex()
    holder = Holder()
    holder.index = index  # type: ignore[attr-defined]
    index["c1"] = holder
    alive = weakref.ref(holder)
    del index, holder
    gc.collect()

    assert alive() is None
