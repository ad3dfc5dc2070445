"""Numbers read from exchange replies: garbled fields are 0, never an internal error."""
from decimal import Decimal

import pytest

from exchanges import bitvavo, okx
from exchanges._kit import number_or_zero, whole_or_zero


@pytest.mark.parametrize("field, whole", [
    ("1700000000123", 1700000000123), (1700000000123, 1700000000123), ("12.9", 12), ("-3.5", -3),
    ("", 0), (None, 0), ("abc", 0), ("NaN", 0), ("Infinity", 0), ("-inf", 0), (float("nan"), 0),
])
def test_whole_or_zero_reads_a_time_or_a_count(field, whole):
    assert whole_or_zero(field) == whole


def test_number_or_zero_keeps_exact_decimals():
    assert number_or_zero("0.00001") == Decimal("0.00001") and number_or_zero("") == 0


def test_a_garbled_time_in_a_reply_maps_to_zero():
    assert okx._ticker({"instId": "BTC-USDT", "ts": "NaN"})["time"] == 0
    assert bitvavo._order({"market": "BTC-EUR", "orderId": "x", "created": "Infinity"})["time"] == 0
