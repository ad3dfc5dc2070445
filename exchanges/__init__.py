"""The exchanges this plugin serves, registered by name: `POST /OKX` is served by `exchanges/okx.py`.

Adding an exchange is one module in this folder plus one line in EXCHANGES below; the core
(fmz_plugin.py) never names an exchange. The contract an exchange module fulfils:

Constants
    NAME        how the exchange is written in messages and in the banner ("OKX").
    BASE_URL    the default REST host; `--base-url NAME=URL` replaces it (testnet, proxy, fake).
    HOSTS       optional {"futures": URL}: other REST hosts, reached with `api.get(..., host=
                "futures")`; `--base-url NAME.futures=URL` replaces one alone.
    CLOCK_ERRORS, RATE_LIMIT_ERRORS
                the exchange's error codes (strings) for "timestamp out of window" and "too many
                requests"; _kit.Api resyncs the clock or waits once when it sees them.
    RATE_LIMITS {"VERB /path": (requests, seconds)}: the exchange's documented limits, which
                _kit's throttle keeps each key (signed calls) or the process (public) under; a
                value may instead be a _kit.Limit (or a list of them) saying what the exchange
                counts it per (IP, key, key + instrument) and a call's weight (see _kit.Limit).

Functions the core and _kit.Api call
    parse_keys(access_key, secret_key) -> keys   the docker's two strings; any object the
                                                 module's sign() understands.
    sign(request, keys, now_ms)                  the one place the signing scheme lives: adds
                                                 headers or query fields to the _kit.Request.
    check(status, reply)                         the one place the exchange's error codes
                                                 become a PluginError(message, code=code).
    server_time(api) -> ms                       the exchange's clock, for CLOCK_ERRORS.
    load_markets(api, kind) -> {symbol: market}  instrument specs for _kit.MARKETS ("spot"/"swap").
                                                 `_kit.markets(api, kinds)` serves `markets` from it.
                                                 Account settings read before trading (a position
                                                 mode) are kept per key in _kit.ACCOUNT_SETTINGS.

Protocol handlers, listed in the module's METHODS dict
    Each is `handler(api, **params)` and returns `(data, raw)`: `data` in the FMZ shape of
    that method (see fmz_plugin.py PROTOCOL), `raw` the exchange's own reply. Parameters
    arrive parsed and checked: `symbol` a _kit.Symbol, prices and amounts Decimal (price None
    for a market order), limits and times int (None when the docker sent none). A method the
    module does not list is answered "<NAME> does not support <method>".
    `trade(api, symbol, order_type, price, amount)`: order_type is FMZ's buy, sell, closebuy or
    closesell. The core refuses, before any handler runs, a close type on a spot symbol and a
    swap-only method (positions, margin_level, fundings) on a spot symbol.

Errors
    Raise _kit.PluginError with a message a trader can act on; anything else is a bug and is
    answered "internal error" by the core.
"""
from exchanges import binance, bingx, bybit, okx

EXCHANGES = {
    "okx": okx,
    "binance": binance,
    "bybit": bybit,
    "bingx": bingx,
}
