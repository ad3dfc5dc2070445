"""Orders: their size on the market's tick and lot (order_size), the currency one pays with
(paid_in), a fresh client order id
(new_client_id), and placing and canceling exactly once (place_once, cancel_once): never two
orders, never a failure reported for an order that exists, never a canceled order reported open.

Nothing here names an exchange; the exchange module supplies the send and lookup functions.
"""
import uuid
from decimal import Decimal

from exchanges._kit import PluginError, market_spec, plain, round_down, round_nearest

QUOTE_STEP = Decimal("0.00000001")   # a spot market buy's quote amount step, unless the spec says (quote_step)


def order_size(api, symbol, price, amount, quote_amount=False):
    """Price and amount as exact strings rounded to the market's tick and lot, checked against
    its minimum. `quote_amount` marks a spot market buy, whose amount is quote currency, rounded
    down to the spec's `quote_step` (QUOTE_STEP when the exchange states none)."""
    spec = market_spec(api, symbol)
    if quote_amount:
        step = spec.get("quote_step") or QUOTE_STEP
        quote = round_down(amount, step)
        if quote <= 0:
            raise PluginError(f"amount {plain(amount)} {symbol.quote} is below the quote step "
                              f"{plain(step)} of {symbol}")
        return None, plain(quote)
    size = round_down(amount, spec["amount_size"])
    if size <= 0 or size < spec["min_qty"]:
        raise PluginError(f"amount {plain(amount)} is below the minimum {plain(spec['min_qty'])} "
                          f"for {symbol} (lot size {plain(spec['amount_size'])})")
    px = None if price is None else plain(round_nearest(price, spec["tick_size"]))
    return px, plain(size)


def paid_in(symbol, order_type):
    """The currency an order pays with, for a refusal ("insufficient balance") that does not say
    which: the quote for a spot buy and for any swap order (its margin), the base for a spot sell."""
    return symbol.quote if order_type == "buy" or symbol.is_swap else symbol.base


def new_client_id():
    """A client order id every shipped exchange accepts: 32 letters and digits, starting with a
    letter (OKX clOrdId allows 1-32 of those; Binance and Bybit up to 36 of a wider set)."""
    return "fmz" + uuid.uuid4().hex[:29]


def place_once(send, find, api=None, client_id="", ids_never_reused=False):
    """Place an order exactly once: never two orders, never a failure for one that exists.

    `send()` places the order, with a client order id chosen beforehand (`client_id`, so every
    send is the same order) and the exchange's validity deadline (`api.post(..., deadline=True)`),
    and returns the answer; `find()` looks the client id up and returns the same answer, or None
    when the exchange has no such order.

    The model. OKX, Binance, Bybit, BingX and Bitvavo check a client id only among OPEN orders:
    once the first send has filled, a resend with the same id is a second order. So "not found"
    proves nothing while the first send may still be on its way or queued inside the exchange.
    What proves it is the deadline the request carried (OKX expTime, a recvWindow or access
    window with the signed timestamp elsewhere, --timeout after signing): past it, the exchange
    refuses the request however late it arrives. Hence, after an ambiguous send (no answer, 5xx,
    an "outcome unknown" code):
      1. look the client id up: found -> that order's answer (the usual case: the reply was lost);
      2. wait until the exchange's own clock is past the deadline (Api.wait_past);
      3. look it up again: found -> that order; absent -> proof that nothing was placed, and only
         then is the order sent again, as a new request with a new deadline;
      4. the same steps once for that second send; after it, nothing is sent a third time.
    Whenever proof is impossible (no deadline, the exchange's clock or the lookup unreachable),
    nothing is resent and the error says the order may exist and names its client id.
    Without `api`, nothing can be waited out, so an order not found is never sent again.

    `ids_never_reused=True` is for an exchange that refuses any client id an earlier order had,
    finished ones included (Alpaca): there a resend can never make a second order, so it goes at
    once, without a deadline; if it is refused, the first send arrived after all and is looked up.
    """
    try:
        return send()
    except PluginError as error:
        if not error.ambiguous:
            raise
        first = error
    found = _settle(find, first, api, client_id, wait=not ids_never_reused)
    if found is not None:
        return found
    try:
        return send()
    except PluginError as error:
        if not error.ambiguous:
            found = _lookup(find, error, client_id) if ids_never_reused else None
            if found is not None:
                return found              # the first send arrived late: its id refused this one
            raise PluginError(f"{error} (sent again after the first request, unanswered, was found not "
                              f"placed)", code=error.code) from None
        second = error
    found = _settle(find, second, api, client_id, wait=not ids_never_reused)
    if found is not None:
        return found
    if ids_never_reused:
        raise _outcome_unknown(second, client_id, "sent twice without an answer (the exchange takes a "
                               "client id once, so at most one order exists)") from None
    raise PluginError(f"{second}; sent twice with client order id {client_id}, each time without an "
                      f"answer, and looked up after each deadline: no order was placed") from None


def _settle(find, failure, api, client_id, wait=True):
    """After an ambiguous send: the order's answer if it exists, None once it provably does not
    (looked up after the request's deadline); PluginError "outcome unknown" when unprovable.
    With wait=False, a first lookup that finds nothing is enough (ids_never_reused)."""
    found = _lookup(find, failure, client_id)
    if found is not None or not wait:
        return found
    if api is None or failure.deadline is None or not api.wait_past(failure.deadline):
        raise _outcome_unknown(failure, client_id, "its deadline could not be waited out, so it may "
                               "still be taken") from None
    return _lookup(find, failure, client_id)


def _lookup(find, failure, client_id):
    """find(), or "outcome unknown" when it fails, even on a reply it cannot read (KeyError...):
    the order may exist, and the robot must be told so rather than read "internal error"."""
    try:
        return find()
    except Exception as error:
        raise _outcome_unknown(failure, client_id, f"looking it up failed too ({_why(error)})") from None


def _why(error):
    """What went wrong in a lookup, for the trader: a PluginError's own text, else its type too."""
    return str(error) if isinstance(error, PluginError) else f"{type(error).__name__}: {error}"


def _outcome_unknown(failure, client_id, why):
    return PluginError(f"{failure}; outcome unknown, {why}: the order may exist (client order id "
                       f"{client_id}), look at open orders and history before placing it again",
                       ambiguous=True)


CANCELED = ("canceled", "partial-canceled")


def cancel_once(send, lookup, api=None):
    """Cancel an order; never report a canceled order as not canceled.

    `send()` cancels (with the exchange's validity deadline where its cancels take one) and
    returns `(True, raw)`; `lookup()` returns the order as `(order, raw)` in the FMZ shape.
    - A refused cancel is explained by the order: already canceled -> True (a second cancel
      succeeds, as FMZ reads "no error"); filled -> an error saying it filled; else the refusal.
    - An unanswered cancel is looked up: canceled -> True; filled -> the error saying so; still
      open -> with a deadline, looked up again once it has passed (a late cancel is then refused
      by the exchange): canceled -> True, else "still open"; without one, the error says the
      cancel may still take effect. Either way the robot may cancel again.
    """
    try:
        return send()
    except PluginError as error:
        failure = error
    if failure.rate_limited or (failure.code is None and not failure.ambiguous):
        raise failure
    order, raw = _order_after(lookup, failure)
    if _settled(failure, order):
        return True, raw
    if not failure.ambiguous:
        raise failure
    if api is None or failure.deadline is None or not api.wait_past(failure.deadline):
        raise PluginError(f"{failure}; looked up, the order is still {order.get('status')}: the cancel may "
                          f"still take effect, cancel again to be sure") from None
    order, raw = _order_after(lookup, failure)
    if _settled(failure, order):
        return True, raw
    raise PluginError(f"{failure}; looked up after the cancel's deadline, the order is still open "
                      f"({order.get('status')}): the cancel did not take effect") from None


def _order_after(lookup, failure):
    """The order looked up after a failed cancel; a refusal stands if the lookup fails too."""
    try:
        return lookup()
    except Exception as error:                # a reply it cannot read counts as a failed lookup
        if not failure.ambiguous:
            raise failure from None
        raise PluginError(f"{failure}; looking the order up failed too ({_why(error)}): it may or may not "
                          f"be canceled") from None


def _settled(failure, order):
    """True when the looked-up order is canceled; a filled order raises, as nothing is left to
    cancel; False while it is still open."""
    if order.get("status") in CANCELED:
        return True
    if order.get("status") == "filled":
        raise PluginError(f"{failure}: the order has already filled ({order.get('deal_amount')} at "
                          f"{order.get('avg_price')}), nothing is left to cancel", code=failure.code) from None
    return False
