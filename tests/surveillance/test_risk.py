"""Pre-trade risk gate: each control at its boundary, reject reasons, texts and the collar."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.commands import NewOrder, ReplaceOrder
from engine.events import Trade
from engine.orders import PRICE_SCALE, OrdRejReason, OrdType, Side
from surveillance.risk import ACCEPT, InstrumentConfig, RiskControl, RiskDecision, RiskGate

CENT = PRICE_SCALE // 100
SESSION = "FIX.4.4:FIXGW->BRK1"
# A 2.5 % collar around 223.82 is 218.2245-229.4155, so the band's edges fall between ticks.
COLLAR_2_5_PCT = Decimal("2.5")


def px(text: str) -> int:
    """Return a decimal price string in engine price units."""
    return int(Decimal(text) * PRICE_SCALE)


def instrument(symbol: str = "AMZN", **overrides: object) -> InstrumentConfig:
    values: dict[str, object] = {
        "symbol": symbol,
        "tick_size": CENT,
        "max_order_qty": 1_000_000,
        "max_notional": 50_000_000 * PRICE_SCALE,
        "reference_price": px("223.82"),
    }
    values.update(overrides)
    return InstrumentConfig(**values)  # type: ignore[arg-type]


def limit(qty: int, price: str | None, symbol: str = "AMZN") -> NewOrder:
    return NewOrder(
        SESSION, "c1", symbol, Side.BUY, OrdType.LIMIT, qty, None if price is None else px(price)
    )


def market(qty: int, symbol: str = "AMZN") -> NewOrder:
    return NewOrder(SESSION, "c1", symbol, Side.SELL, OrdType.MARKET, qty, None)


def trade(price: str, symbol: str = "AMZN") -> Trade:
    return Trade("T1", symbol, px(price), 100, Side.BUY, "O1", SESSION, "O2", SESSION)


# Each control accepts at its limit and rejects one step past it.

BOUNDARIES = [
    # (instrument overrides, accepted order, rejected order, control)
    ({"lot_size": 100}, limit(200, "223.82"), limit(150, "223.82"), RiskControl.LOT_SIZE),
    ({"lot_size": 100}, limit(100, "223.82"), limit(0, "223.82"), RiskControl.LOT_SIZE),
    ({}, limit(1, "223.82"), limit(-1, "223.82"), RiskControl.LOT_SIZE),
    ({}, limit(1, "223.83"), limit(1, "223.825"), RiskControl.TICK_SIZE),
    ({"tick_size": 5 * CENT}, limit(1, "223.85"), limit(1, "223.84"), RiskControl.TICK_SIZE),
    ({}, limit(1, "223.82"), limit(1, "0"), RiskControl.TICK_SIZE),
    ({}, limit(1, "223.82"), limit(1, None), RiskControl.TICK_SIZE),
    (
        {"reference_price": None},
        limit(1_000_000, "1.00"),
        limit(1_000_001, "1.00"),
        RiskControl.MAX_ORDER_QTY,
    ),
    (
        {"max_notional": 22_382 * PRICE_SCALE},
        limit(100, "223.82"),
        limit(100, "223.83"),
        RiskControl.MAX_NOTIONAL,
    ),
    (
        {"max_notional": 22_382 * PRICE_SCALE},
        limit(100, "223.82"),
        limit(101, "223.82"),
        RiskControl.MAX_NOTIONAL,
    ),
    ({}, limit(1, "246.20"), limit(1, "246.21"), RiskControl.PRICE_COLLAR),
    ({}, limit(1, "201.44"), limit(1, "201.43"), RiskControl.PRICE_COLLAR),
    (
        {"collar_pct": COLLAR_2_5_PCT},
        limit(1, "229.41"),
        limit(1, "229.42"),
        RiskControl.PRICE_COLLAR,
    ),
    (
        {"collar_pct": COLLAR_2_5_PCT},
        limit(1, "218.23"),
        limit(1, "218.22"),
        RiskControl.PRICE_COLLAR,
    ),
]


@pytest.mark.parametrize("overrides, accepted, rejected, control", BOUNDARIES)
def test_control_boundary(
    overrides: dict[str, object], accepted: NewOrder, rejected: NewOrder, control: RiskControl
) -> None:
    gate = RiskGate([instrument(**overrides)])
    assert gate.check(accepted) is ACCEPT
    decision = gate.check(rejected)
    assert decision.accepted is False
    assert decision.control is control
    assert decision.ord_rej_reason is control.ord_rej_reason


def test_unknown_instrument() -> None:
    decision = RiskGate([instrument()]).check(limit(1, "10.00", symbol="XYZ"))
    assert decision == RiskDecision(
        accepted=False,
        control=RiskControl.UNKNOWN_INSTRUMENT,
        ord_rej_reason=OrdRejReason.UNKNOWN_SYMBOL,
        text="Symbol (55) 'XYZ' is not an instrument of this venue",
        limit="",
        value="XYZ",
    )


@pytest.mark.parametrize(
    "control, reason",
    [
        (RiskControl.UNKNOWN_INSTRUMENT, OrdRejReason.UNKNOWN_SYMBOL),
        (RiskControl.MAX_ORDER_QTY, OrdRejReason.ORDER_EXCEEDS_LIMIT),
        (RiskControl.MAX_NOTIONAL, OrdRejReason.ORDER_EXCEEDS_LIMIT),
        (RiskControl.PRICE_COLLAR, OrdRejReason.PRICE_EXCEEDS_CURRENT_PRICE_BAND),
        (RiskControl.TICK_SIZE, OrdRejReason.INVALID_PRICE_INCREMENT),
        (RiskControl.LOT_SIZE, OrdRejReason.INCORRECT_QUANTITY),
    ],
)
def test_ord_rej_reason_mapping(control: RiskControl, reason: OrdRejReason) -> None:
    assert control.ord_rej_reason is reason


def test_reason_codes_stable() -> None:
    assert {control.value for control in RiskControl} == {
        "RISK_UNKNOWN_INSTRUMENT",
        "RISK_MAX_ORDER_QTY",
        "RISK_MAX_NOTIONAL",
        "RISK_PRICE_COLLAR",
        "RISK_TICK_SIZE",
        "RISK_LOT_SIZE",
    }


def test_accept_constant() -> None:
    assert ACCEPT == RiskDecision(True, None, None, "", "", "")


# Texts name the field, the value and the limit.

TEXTS = [
    (
        limit(2_000_000, "200.00"),
        "OrderQty (38) 2000000 exceeds the maximum order quantity 1000000 for AMZN",
        "1000000",
        "2000000",
    ),
    (
        limit(100, "250.00"),
        "Price (44) 250.00 is outside the collar 201.44-246.20 (10% around reference 223.82) "
        "for AMZN",
        "201.44-246.20",
        "250.00",
    ),
    (
        limit(300_000, "200.00"),
        "Notional 60000000 (OrderQty (38) 300000 x Price (44) 200.00) exceeds the maximum "
        "notional 50000000 for AMZN",
        "50000000",
        "60000000",
    ),
    (
        market(300_000),
        "Notional 67146000 (OrderQty (38) 300000 x reference price 223.82) exceeds the maximum "
        "notional 50000000 for AMZN",
        "50000000",
        "67146000",
    ),
    (
        limit(100, "223.825"),
        "Price (44) 223.825 is not a positive multiple of the tick size 0.01 for AMZN",
        "0.01",
        "223.825",
    ),
    (
        limit(100, None),
        "Price (44) is missing on a limit order for AMZN",
        "0.01",
        "",
    ),
]


@pytest.mark.parametrize("order, text, limit_text, value_text", TEXTS)
def test_reject_text(order: NewOrder, text: str, limit_text: str, value_text: str) -> None:
    decision = RiskGate([instrument()]).check(order)
    assert decision.text == text
    assert decision.limit == limit_text
    assert decision.value == value_text


def test_lot_size_text() -> None:
    decision = RiskGate([instrument(lot_size=100)]).check(limit(150, "223.82"))
    assert decision.text == (
        "OrderQty (38) 150 is not a positive multiple of the lot size 100 for AMZN"
    )
    assert (decision.limit, decision.value) == ("100", "150")


def test_fractional_collar_text() -> None:
    decision = RiskGate([instrument(collar_pct=Decimal("2.5"))]).check(limit(1, "230.00"))
    assert "(2.5% around reference 223.82)" in decision.text
    assert decision.limit == "218.23-229.41"


# The first failing control wins, in the documented order.

PRECEDENCE = [
    (limit(150, "223.825", symbol="XYZ"), RiskControl.UNKNOWN_INSTRUMENT),
    (limit(150, "223.825"), RiskControl.LOT_SIZE),
    (limit(2_000_000, "999.995"), RiskControl.TICK_SIZE),
    (limit(2_000_000, "999.00"), RiskControl.MAX_ORDER_QTY),
    (limit(900_000, "999.00"), RiskControl.MAX_NOTIONAL),
]


@pytest.mark.parametrize("order, control", PRECEDENCE)
def test_first_failing_control_wins(order: NewOrder, control: RiskControl) -> None:
    gate = RiskGate([instrument(lot_size=100)])
    assert gate.check(order).control is control


# Market orders.


def test_market_order_skips_collar() -> None:
    assert RiskGate([instrument()]).check(market(100)) is ACCEPT


def test_market_notional_at_reference() -> None:
    gate = RiskGate([instrument(max_notional=22_382 * PRICE_SCALE)])
    assert gate.check(market(100)) is ACCEPT
    assert gate.check(market(101)).control is RiskControl.MAX_NOTIONAL


def test_market_notional_without_reference() -> None:
    gate = RiskGate([instrument(reference_price=None, max_notional=PRICE_SCALE)])
    assert gate.check(market(1_000_000)) is ACCEPT
    gate.on_trade(trade("10.00"))
    assert gate.check(market(1)).control is RiskControl.MAX_NOTIONAL


@pytest.mark.parametrize(
    "order, control",
    [(market(175), RiskControl.LOT_SIZE), (market(2_000_000), RiskControl.MAX_ORDER_QTY)],
)
def test_market_quantity_controls(order: NewOrder, control: RiskControl) -> None:
    gate = RiskGate([instrument(lot_size=50, max_order_qty=1_000_000)])
    assert gate.check(order).control is control


# The collar reference follows trades unless a static reference is configured.


def test_collar_follows_last_trade() -> None:
    gate = RiskGate([instrument(reference_price=None)])
    assert gate.reference_price("AMZN") is None
    assert gate.check(limit(1, "1000.00")) is ACCEPT

    gate.on_trade(trade("100.00"))
    assert gate.reference_price("AMZN") == px("100.00")
    assert gate.check(limit(1, "110.00")) is ACCEPT
    assert gate.check(limit(1, "110.01")).control is RiskControl.PRICE_COLLAR

    gate.on_trade(trade("105.00"))
    assert gate.check(limit(1, "110.01")) is ACCEPT
    assert gate.check(limit(1, "94.49")).control is RiskControl.PRICE_COLLAR


def test_static_reference_ignores_trades() -> None:
    gate = RiskGate([instrument()])
    gate.on_trade(trade("100.00"))
    assert gate.reference_price("AMZN") == px("223.82")
    assert gate.check(limit(1, "110.00")).control is RiskControl.PRICE_COLLAR


def test_trade_moves_only_its_symbol() -> None:
    gate = RiskGate([instrument(reference_price=None), instrument("AAPL", reference_price=None)])
    gate.on_trade(trade("100.00", symbol="AAPL"))
    assert gate.reference_price("AAPL") == px("100.00")
    assert gate.reference_price("AMZN") is None


def test_trade_in_unknown_symbol_ignored() -> None:
    gate = RiskGate([instrument()])
    gate.on_trade(trade("1.00", symbol="XYZ"))
    assert gate.reference_price("XYZ") is None


def test_replace_checked_like_new_order() -> None:
    gate = RiskGate([instrument()])
    replace = ReplaceOrder(
        SESSION, "c2", "c1", "AMZN", Side.BUY, OrdType.LIMIT, 2_000_000, px("223.82")
    )
    assert gate.check(replace).control is RiskControl.MAX_ORDER_QTY
    assert gate.check(
        ReplaceOrder(SESSION, "c2", "c1", "AMZN", Side.BUY, OrdType.LIMIT, 10, px("223.82"))
    ) is ACCEPT


@given(
    reference_cents=st.integers(min_value=1, max_value=10_000_000),
    price_cents=st.integers(min_value=1, max_value=20_000_000),
    collar_tenths=st.integers(min_value=1, max_value=1000),
)
def test_collar_matches_decimal_reference(
    reference_cents: int, price_cents: int, collar_tenths: int
) -> None:
    collar_pct = Decimal(collar_tenths) / 10
    gate = RiskGate(
        [
            instrument(
                reference_price=reference_cents * CENT,
                collar_pct=collar_pct,
                max_order_qty=1,
                max_notional=10**9 * PRICE_SCALE,
            )
        ]
    )
    reference = Decimal(reference_cents) / 100
    band = reference * collar_pct / 100
    low = (reference - band).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    high = (reference + band).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    price = Decimal(price_cents) / 100

    decision = gate.check(limit(1, str(price)))

    assert decision.accepted is (low <= price <= high)
    if not decision.accepted:
        assert decision.limit == f"{low}-{high}"


# Configuration checks are bugs in the caller, so they raise.


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"symbol": ""}, "symbol must not be empty"),
        ({"tick_size": 0}, "tick_size for AMZN must be a positive int, got 0"),
        ({"lot_size": -1}, "lot_size for AMZN must be a positive int, got -1"),
        ({"max_order_qty": True}, "max_order_qty for AMZN must be a positive int, got True"),
        ({"max_notional": 1.5}, "max_notional for AMZN must be a positive int, got 1.5"),
        ({"reference_price": 0}, "reference_price for AMZN must be positive or None"),
        ({"collar_pct": Decimal(0)}, "collar_pct for AMZN must be above 0 and at most 100"),
        ({"collar_pct": Decimal(101)}, "collar_pct for AMZN must be above 0 and at most 100"),
    ],
)
def test_invalid_instrument_config(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        instrument(**overrides)


def test_duplicate_instrument() -> None:
    with pytest.raises(ValueError, match="'AMZN' is configured twice"):
        RiskGate([instrument(), instrument()])


def test_stop_order_checked_at_stop_px() -> None:
    gate = RiskGate([_stop_instrument()])
    within = _stop_order(stop_px=100 * PRICE_SCALE, qty=1_000)
    over = _stop_order(stop_px=100 * PRICE_SCALE, qty=20_000)
    assert gate.check(within).accepted
    rejected = gate.check(over)
    assert not rejected.accepted
    assert rejected.control is RiskControl.MAX_NOTIONAL
    assert "StopPx (99)" in rejected.text


def _stop_instrument() -> InstrumentConfig:
    return InstrumentConfig(
        symbol="STP", tick_size=PRICE_SCALE // 100, lot_size=1, reference_price=None,
        collar_pct=Decimal(10), max_order_qty=1_000_000, max_notional=1_000_000 * PRICE_SCALE,
    )


def _stop_order(*, stop_px: int, qty: int) -> NewOrder:
    return NewOrder(
        session_id="S", cl_ord_id="C", symbol="STP", side=Side.BUY, ord_type=OrdType.STOP,
        order_qty=qty, price=None, stop_px=stop_px,
    )
