"""The compiled OrderQueue behaves as an OrderedDict of orders does."""

from __future__ import annotations

import gc
import random
import sys
import weakref
from collections import OrderedDict

import pytest

from engine import ExecutionEvent, Instrument, MatchingEngine, NewOrder, OrdType, Side, Trade
from engine.engine import compiled_status

cengine = pytest.importorskip("engine._cengine", reason="engine._cengine is not built")
if compiled_status() != "compiled fast paths":
    pytest.skip(f"engine._cengine is not in use: {compiled_status()}", allow_module_level=True)

OrderQueue = cengine.OrderQueue


class Item:
    """An order stand-in: compared by identity, as orders are."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Item({self.n})"


class EqualToAll(Item):
    """An object that claims equality with anything, so a lookup by == would find it."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = Item.__hash__


def test_random_operations_match_ordered_dict() -> None:
    rng = random.Random(11)
    items = [Item(n) for n in range(400)]
    queue, expected = OrderQueue(), OrderedDict()
    for _ in range(60_000):
        item = rng.choice(items)
        roll = rng.random()
        if roll < 0.45:
            queue[item] = None
            expected[item] = None
        elif roll < 0.75:
            if item in expected:
                del queue[item]
                del expected[item]
            else:
                with pytest.raises(KeyError):
                    del queue[item]
        elif roll < 0.82 and expected:
            last = rng.random() < 0.5
            assert queue.popitem(last=last) == expected.popitem(last=last)
        elif roll < 0.92 and item in expected:
            last = rng.random() < 0.7
            queue.move_to_end(item, last=last)
            expected.move_to_end(item, last=last)
        else:
            assert (item in queue) == (item in expected)
        assert len(queue) == len(expected)
        if expected:
            assert next(iter(queue)) is next(iter(expected))
    assert list(queue) == list(expected)


def test_drain_deep_level_from_front() -> None:
    items = [Item(n) for n in range(200_000)]
    queue = OrderQueue()
    for item in items:
        queue[item] = None
    for n, item in enumerate(items):
        assert next(iter(queue)) is item
        if n % 2:
            del queue[item]
        else:
            assert queue.popitem(last=False) == (item, None)
        if n % 1000 == 0:
            # The level keeps taking new orders at the back while it drains.
            queue[Item(-n)] = None
    assert len(queue) == 200


def test_members_are_compared_by_identity() -> None:
    first, second = EqualToAll(1), EqualToAll(2)
    queue = OrderQueue()
    queue[first] = None

    assert first in queue
    assert second not in queue
    queue[second] = None
    assert list(queue) == [first, second]


def test_set_again_keeps_place() -> None:
    a, b = Item(1), Item(2)
    queue = OrderQueue()
    queue[a] = None
    queue[b] = None
    queue[a] = None

    assert list(queue) == [a, b]
    assert queue[a] is None


def test_errors_name_the_problem() -> None:
    queue = OrderQueue()
    item = Item(1)
    with pytest.raises(KeyError):
        queue[item]
    with pytest.raises(KeyError):
        del queue[item]
    with pytest.raises(KeyError):
        queue.move_to_end(item)
    with pytest.raises(KeyError, match="empty"):
        queue.popitem()
    with pytest.raises(TypeError, match="value must be None"):
        queue[item] = 1
    with pytest.raises(TypeError, match="takes no arguments"):
        OrderQueue([item])


def test_change_during_iteration_raises() -> None:
    a, b = Item(1), Item(2)
    queue = OrderQueue()
    queue[a] = None
    queue[b] = None
    iterator = iter(queue)
    assert next(iterator) is a
    del queue[b]
    with pytest.raises(RuntimeError, match="changed during iteration"):
        next(iterator)
    with pytest.raises(StopIteration):
        next(iterator)


def test_repr_lists_the_orders() -> None:
    queue = OrderQueue()
    queue[Item(1)] = None
    queue[Item(2)] = None

    assert repr(queue) == "OrderQueue([Item(1), Item(2)])"


def test_references_are_released() -> None:
    item = Item(1)
    before = sys.getrefcount(item)
    queue = OrderQueue()
    queue[item] = None
    queue.move_to_end(item)
    assert sys.getrefcount(item) == before + 1
    del queue[item]
    assert sys.getrefcount(item) == before
    queue[item] = None
    del queue
    assert sys.getrefcount(item) == before


def test_cycle_through_queue_is_collected() -> None:
    queue = OrderQueue()
    item = Item(1)
    item.queue = queue  # type: ignore[attr-defined]
    queue[item] = None
    alive = weakref.ref(item)
    del queue, item
    gc.collect()

    assert alive() is None


def test_compiled_engine_levels_use_the_queue() -> None:
    engines = {compiled: MatchingEngine([Instrument("AAA")], compiled=compiled) for compiled in (True, False)}
    for compiled, engine in engines.items():
        engine.process(NewOrder("S1", "c1", "AAA", Side.BUY, OrdType.LIMIT, 10, 100))
        level = engine.book("AAA").bids.best()
        assert level is not None
        assert type(level.orders) is (OrderQueue if compiled else OrderedDict)


def test_events_release_fields_and_class() -> None:
    engine = MatchingEngine([Instrument("AAA")], compiled=True)
    before = sys.getrefcount(ExecutionEvent), sys.getrefcount(Trade)
    for n in range(1_000):
        side = Side.BUY if n % 2 else Side.SELL
        engine.process(NewOrder("S1", f"c{n}", "AAA", side, OrdType.LIMIT, 10, 100))
    # Events built in Python, and of a subclass with a __dict__, are freed the same way.
    event = ExecutionEvent._make(range(27))
    subclass = type("Sub", (ExecutionEvent,), {})
    value = Item(1)
    sub_event = subclass._make(range(27))
    sub_event.note = value  # type: ignore[attr-defined]
    alive = weakref.ref(value)
    del event, sub_event, value, subclass
    gc.collect()

    assert alive() is None
    assert (sys.getrefcount(ExecutionEvent), sys.getrefcount(Trade)) == before


def test_deeply_nested_events_are_freed() -> None:
    event = ExecutionEvent._make(range(27))
    for _ in range(200_000):
        event = ExecutionEvent._make((event, *range(26)))
    del event


def _next_outcome(iterator: object) -> object:
    """Return the next item, or the name of the exception that next() raised."""
    try:
        return next(iterator)  # type: ignore[call-overload]
    except (StopIteration, RuntimeError) as error:
        return type(error).__name__


def _outcome_after_change(mapping_type: type, consumed: int, change: str) -> object:
    """Iterate two orders ``consumed`` times, apply ``change``, and call next() once more."""
    a, b, c = Item(1), Item(2), Item(3)
    mapping = mapping_type()
    mapping[a] = None
    mapping[b] = None
    iterator = iter(mapping)
    for _ in range(consumed):
        next(iterator)
    if change == "append":
        mapping[c] = None
    elif change == "delete":
        del mapping[a]
    elif change == "move":
        mapping.move_to_end(a)
    return _next_outcome(iterator)


@pytest.mark.parametrize("change", ["append", "delete", "move"])
@pytest.mark.parametrize("consumed", [0, 1, 2])
def test_iteration_change_as_ordered_dict(consumed: int, change: str) -> None:
    # Once an OrderedDict iterator has returned the last key, it ends with StopIteration
    # even if the dict then changes. Before that, a change raises RuntimeError.
    expected = _outcome_after_change(OrderedDict, consumed, change)

    assert _outcome_after_change(OrderQueue, consumed, change) == expected


def test_empty_queue_iterator_stays_empty() -> None:
    queue, expected = OrderQueue(), OrderedDict()
    iterators = iter(queue), iter(expected)
    item = Item(1)
    queue[item] = None
    expected[item] = None

    assert _next_outcome(iterators[0]) == _next_outcome(iterators[1])


def test_drain_from_back() -> None:
    items = [Item(n) for n in range(30_000)]
    queue = OrderQueue()
    for item in items:
        queue[item] = None
    drained = [queue.popitem()[0] for _ in items]

    assert drained == items[::-1]
    assert len(queue) == 0


def test_moves_to_front() -> None:
    items = [Item(n) for n in range(5_000)]
    queue = OrderQueue()
    for item in items:
        queue[item] = None
    for item in reversed(items):
        queue.move_to_end(item, last=False)

    assert list(queue) == items


def test_churn_after_deep_level() -> None:
    # A level that was 65,536 deep keeps one order, and new orders join and leave behind it.
    items = [Item(n) for n in range(1 << 16)]
    queue = OrderQueue()
    for item in items:
        queue[item] = None
    for item in items[1:]:
        del queue[item]
    for item in [Item(n) for n in range(60_000)]:
        queue[item] = None
        assert item in queue
        del queue[item]

    assert list(queue) == [items[0]]


def test_repr_of_recursive_order() -> None:
    class Holder(Item):
        def __repr__(self) -> str:
            return f"Holder({self.queue!r})"  # type: ignore[attr-defined]

    queue = OrderQueue()
    holder = Holder(1)
    holder.queue = queue  # type: ignore[attr-defined]
    queue[holder] = None

    assert repr(queue) == "OrderQueue([Holder(...)])"
