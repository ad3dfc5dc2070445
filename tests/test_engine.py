"""The shared fake engine's swap rules (tests/fakes/engine.py), checked directly: every fake
relies on them, so a wrong rule here would make every exchange's swap tests agree on a mistake."""
from decimal import Decimal as D

import pytest

from tests.fakes.engine import Engine, Refused

BTC, ETH, INVERSE = ("BTC", "USDT", "swap"), ("ETH", "USDT", "swap"), ("BTC", "USD", "swap")


@pytest.fixture
def engine():
    return Engine(now_ms=lambda: 1_700_000_000_000)


def refusal(call, *args, **kwargs):
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def test_open_long_takes_margin_at_the_fill_price(engine):
    # asks 50000.1 x 10, 50000.2 x 20: 10 contracts of 0.01 BTC at 50000.1, leverage 10
    order = engine.place(BTC, "buy", "market", D(10))
    assert order["status"] == "filled" and order["filled"] == 10
    (position,) = engine.open_positions()
    assert (position["side"], position["size"], position["avg"]) == ("long", 10, D("50000.1"))
    assert position["margin"] == D("500.001")
    assert engine.balances["USDT"] == [D("99499.999"), D("500.001")]


def test_reduce_releases_margin_share_and_profit(engine):
    engine.place(BTC, "buy", "market", D(10))
    engine.place(BTC, "sell", "market", D(4), reduce_only=True)       # at bid 50000: -0.004 USDT
    assert engine.positions[(BTC, "long")]["size"] == 6
    assert engine.balances["USDT"] == [D("99699.9954"), D("300.0006")]
    engine.place(BTC, "sell", "market", D(6), reduce_only=True)
    assert engine.open_positions() == [] and engine.balances["USDT"][1] == 0


def test_net_mode_sell_beyond_long_flips_to_short(engine):
    engine.place(BTC, "buy", "market", D(10))
    engine.place(BTC, "sell", "market", D(15))
    (position,) = engine.open_positions()
    assert (position["side"], position["size"]) == ("short", 5)


def test_closing_more_than_held_is_refused_whole(engine):
    assert refusal(engine.place, BTC, "sell", "market", D(1), reduce_only=True) == "no_position"
    engine.place(BTC, "buy", "market", D(3))
    assert refusal(engine.place, BTC, "sell", "market", D(4), reduce_only=True) == "close_exceeds_position"
    assert engine.positions[(BTC, "long")]["size"] == 3


def test_resting_close_reserves_contracts_until_canceled(engine):
    engine.place(BTC, "buy", "market", D(3))
    order = engine.place(BTC, "sell", "limit", D(2), price=D("60000"), reduce_only=True)
    assert engine.closable(BTC, "long") == 1
    assert refusal(engine.place, BTC, "sell", "market", D(2), reduce_only=True) == "close_exceeds_position"
    engine.cancel(order["id"])
    assert engine.closable(BTC, "long") == 3


def test_hedge_mode_keeps_both_sides(engine):
    engine.set_hedge_mode(True)
    assert refusal(engine.place, ETH, "buy", "market", D(1)) == "position_side_required"
    engine.place(ETH, "buy", "market", D(2), position_side="long")
    engine.place(ETH, "sell", "market", D(3), position_side="short")
    assert {(p["side"], p["size"]) for p in engine.open_positions()} == {("long", 2), ("short", 3)}
    engine.place(ETH, "buy", "market", D(3), position_side="short")          # buy+short closes
    assert [p["side"] for p in engine.open_positions()] == ["long"]
    assert refusal(engine.set_hedge_mode, False) == "position_mode_busy"


def test_leverage_bounds_and_effect(engine):
    assert refusal(engine.set_leverage, ETH, 51) == "leverage_too_high"
    assert refusal(engine.set_leverage, ETH, 0) == "bad_leverage"
    assert refusal(engine.set_leverage, ("NOPE", "USDT", "swap"), 5) == "unknown_symbol"
    engine.set_leverage(ETH, 50)
    engine.place(ETH, "buy", "market", D(100))                # 100 x 0.1 ETH at 3000.01 / 50
    assert engine.positions[(ETH, "long")]["margin"] == D("600.002")


def test_inverse_swap_is_margined_in_coin(engine):
    engine.place(INVERSE, "buy", "market", D(100))            # 100 x 100 USD / 50000.1 / 10
    position = engine.positions[(INVERSE, "long")]
    assert position["margin"] == D("0.01999996")
    assert engine.balances["BTC"][1] == D("0.01999996")
    assert engine.unrealised(position) < 0                    # mark 50000 is below the entry


def test_insufficient_margin(engine):
    assert refusal(engine.place, BTC, "buy", "limit", D(100000), price=D(40000)) == "insufficient_margin"


def test_funding_next_settlement_on_interval(engine):
    funding = engine.funding(ETH)
    assert funding["interval"] == 4 * 3_600_000 and funding["time"] % funding["interval"] == 0
    assert 0 < funding["time"] - 1_700_000_000_000 <= funding["interval"]
